# calib/calib.mk: builds the CUDA calibration program build/calib/servesim-calib.
# Included by the top Makefile (`make calib`; `make test` compiles it when nvcc
# is there) and usable alone, with no other build dependency than the CUDA
# toolkit: `make -f calib/calib.mk` (the GPU machines have nvcc but not the
# simulator's Debian packages). It links the plain-C modules it shares with
# the simulator (plan, budget, runner, measurement loops, layouts, GEMM set-up,
# table writer, keys, NVML loader, base) and the toolkit's cuBLASLt; NVML
# itself is loaded at run time.
#
# On a GPU machine whose compiler differs from this project's (calib/h200_run.sh):
#   make -f calib/calib.mk CALIB_ARCHS=90 CALIB_WERROR= CALIB_BUILD=build/calib-h200
# builds for sm_90 only, without turning a new compiler's warnings into errors.

NVCC ?= $(firstword $(shell command -v nvcc 2>/dev/null) $(wildcard /usr/local/cuda/bin/nvcc))
CALIB_BUILD ?= build/calib
CALIB_CC ?= $(if $(CC),$(CC),cc)
CALIB_CUDA_HOME := $(patsubst %/bin/nvcc,%,$(NVCC))
# sm_80 and sm_90, and the newer families this nvcc knows; PTX of the newest
# for GPUs after it.
CALIB_WANT_ARCHS := 80 90 100 120
ifeq ($(origin CALIB_ARCHS),undefined)
CALIB_ARCHS := $(or $(if $(NVCC),$(filter $(CALIB_WANT_ARCHS),$(patsubst compute_%,%,$(shell $(NVCC) --list-gpu-arch 2>/dev/null)))),80 90)
endif
CALIB_COMMA := ,
CALIB_GENCODE := $(foreach a,$(CALIB_ARCHS),-gencode=arch=compute_$(a)$(CALIB_COMMA)code=sm_$(a)) \
                 -gencode=arch=compute_$(lastword $(CALIB_ARCHS))$(CALIB_COMMA)code=compute_$(lastword $(CALIB_ARCHS))
CALIB_VERSION := $(shell git describe --always --dirty --tags 2>/dev/null || echo unknown)
CALIB_WERROR ?= -Werror
CALIB_HOST_WARN := -std=c11 -Wall -Wextra -D_POSIX_C_SOURCE=200809L -I.
CALIB_CFLAGS := $(CALIB_HOST_WARN) $(CALIB_WERROR) -O2 -g
CALIB_NVFLAGS := -std=c++17 -O3 -g -I. --threads 0 -Xcompiler -Wall,-Wextra \
                 -DSERVESIM_VERSION='"$(CALIB_VERSION)"'
CALIB_C_SRCS := calib/plan.c calib/table_writer.c calib/nvml.c calib/budget.c \
                calib/measure.c calib/runner.c calib/layout.c calib/gemm.c \
                models/cost_key.c sim/base.c
CALIB_CU_SRCS := calib/calib.cu calib/kernels.cu
CALIB_OBJS := $(patsubst %.c,$(CALIB_BUILD)/obj/%.o,$(CALIB_C_SRCS)) \
              $(patsubst %.cu,$(CALIB_BUILD)/obj/%.o,$(CALIB_CU_SRCS))
CALIB_HEADERS := $(wildcard calib/*.h) models/cost_key.h

.PHONY: calib calib-check calib-cflags-check
ifneq ($(NVCC),)
calib: $(CALIB_BUILD)/servesim-calib

# What `make test` runs: the host C the program links compiles at -O3 with
# warnings as errors (what a GPU machine's compiler may report first), and
# the program builds, links and reads the plans (the H200 session's too).
calib-check: calib-cflags-check $(CALIB_BUILD)/servesim-calib
	$(CALIB_BUILD)/servesim-calib --dry-run --plan calib/plans/quick.plan
	$(CALIB_BUILD)/servesim-calib --dry-run --plan calib/plans/full.plan
	$(CALIB_BUILD)/servesim-calib --dry-run --plan calib/plans/h200.plan
	$(CALIB_BUILD)/servesim-calib --dry-run --only attn_prefill --start 100

$(CALIB_BUILD)/servesim-calib: $(CALIB_OBJS)
	$(NVCC) $(CALIB_GENCODE) -o $@ $^ -lcublasLt -ldl -Xlinker -rpath=$(CALIB_CUDA_HOME)/lib64

$(CALIB_BUILD)/obj/%.o: %.cu $(CALIB_HEADERS)
	@mkdir -p $(dir $@)
	$(NVCC) $(CALIB_NVFLAGS) $(CALIB_GENCODE) -c $< -o $@
else
calib:
	@echo "calib: nvcc not found (install the CUDA toolkit or set NVCC=/path/to/nvcc)"; exit 1
calib-check: calib-cflags-check
	@echo "calib: skipped: nvcc not found"
endif

# gcc 12 at -O3 found maybe-uninitialized reads that -O2 did not; every level
# is compiled here so that the GPU machine's build (whatever its flags) is not
# the first to see a warning.
calib-cflags-check:
	@for o in -O1 -O2 -O3 -Os; do for f in $(CALIB_C_SRCS); do \
	    $(CALIB_CC) $(CALIB_HOST_WARN) -Werror $$o -c $$f -o /dev/null || exit 1; \
	done; done; echo "calib: host C compiles without warnings at -O1, -O2, -O3, -Os"

$(CALIB_BUILD)/obj/%.o: %.c
	@mkdir -p $(dir $@)
	$(CALIB_CC) $(CALIB_CFLAGS) -MMD -MP -c $< -o $@

-include $(wildcard $(CALIB_BUILD)/obj/*/*.d)
