/* The C modules the CUDA program uses (plan, table writer, NVML, keys),
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

#include "calib/nvml.h"
#include "calib/plan.h"
#include "calib/planner.h"
#include "calib/table_writer.h"

#ifdef __cplusplus
}
#undef _Noreturn
#endif

#endif
