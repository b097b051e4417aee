/* The C modules the CUDA program uses (plan, budget, runner, measurement
 * loops, layouts, GEMM set-up, table writer, NVML, keys),
 * included from C++ (.cu) files with C linkage. base.h spells its
 * no-return attribute the C11 way; C++ spells it [[noreturn]]. */
#ifndef CALIB_C_API_H
#define CALIB_C_API_H

#include <math.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#ifdef __cplusplus
#define _Noreturn [[noreturn]]
extern "C" {
#endif

#include "calib/budget.h"
#include "calib/gemm.h"
#include "calib/layout.h"
#include "calib/measure.h"
#include "calib/nvml.h"
#include "calib/plan.h"
#include "calib/runner.h"
#include "calib/table_writer.h"

#ifdef __cplusplus
}
#undef _Noreturn
#endif

#endif
