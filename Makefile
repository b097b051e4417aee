# servesim build. `make` builds ./servesim; `make run` runs the bundled
# quickstart; `make test` runs the unit and end-to-end suites, then the same
# suites built with AddressSanitizer and UndefinedBehaviorSanitizer.
# Missing Debian packages are installed by mk/deps.sh on the first build.

.DEFAULT_GOAL := all
CC ?= cc
BUILD := build
WARN := -std=c11 -Wall -Wextra -Werror
DEFS := -D_POSIX_C_SOURCE=200809L -DSERVESIM_MODELS_DIR='"$(CURDIR)/models"' \
        -DSERVESIM_TABLES_DIR='"$(CURDIR)/calib/tables"'
OPT := -O2 -g
SAN := -O1 -g -fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=all

# `make clean`, `make help` and `make calib` (the CUDA program, built on GPU
# machines that lack the simulator's packages) need no dependency check.
ifneq ($(filter-out clean help calib,$(or $(MAKECMDGOALS),all)),)
include $(BUILD)/deps.mk
endif

$(BUILD)/deps.mk: mk/deps.sh
	@sh mk/deps.sh $@

# The event core: no LLM code.
SIM_SRCS := $(wildcard sim/*.c)
# Everything else the simulator links, by layer: the tool (command line,
# sweeps, results files), the policies, the serving system, models and
# workloads. The CLI's main() is kept apart so that tests can link the rest.
LIB_SRCS := $(SIM_SRCS) $(wildcard models/*.c) $(wildcard traces/*.c) \
            $(wildcard serve/*.c) $(wildcard policies/*.c) \
            $(filter-out tool/main.c,$(wildcard tool/*.c))
TEST_SIM_SRCS := tests/check_main.c tests/sim_suites.c $(wildcard tests/test_sim_*.c)
TEST_ALL_SRCS := tests/check_main.c tests/all_suites.c tests/testutil.c $(wildcard tests/test_*.c)
# calib/'s host side (plans, synthetic tables, layer comparison, NVML loader,
# budget, measurement loops, runner, layouts, GEMM set-up, merge, sessions):
# no CUDA.
CALIB_HOST_SRCS := calib/plan.c calib/planner.c calib/table_writer.c calib/synth.c \
                   calib/layercmp.c calib/nvml.c calib/import_vidur.c calib/budget.c \
                   calib/measure.c calib/runner.c calib/layout.c calib/gemm.c calib/merge.c \
                   calib/session.c
# Two fake NVML libraries (tests/calib_fake_nvml.c), one whose init fails, for
# the NVML loader's fallback tests (tests/test_calib_nvml.c).
CALIB_FAKE_NVML := $(BUILD)/calib/fake_nvml/ok/libnvidia-ml.so.1 \
                   $(BUILD)/calib/fake_nvml/broken/libnvidia-ml.so.1

obj = $(patsubst %.c,$(BUILD)/$(1)/%.o,$(2))

CFLAGS_opt = $(WARN) $(OPT) $(DEFS) -I. -I$(BUILD) $(DEP_CFLAGS) $(CHECK_CFLAGS)
CFLAGS_san = $(WARN) $(SAN) $(DEFS) -I. -I$(BUILD) $(DEP_CFLAGS) $(CHECK_CFLAGS)
LDFLAGS_san = -fsanitize=address,undefined

.PHONY: all run test test-layers test-fast test-san bench fuzz calib-data test-calib-run clean FORCE
.PHONY: mpi test-mpi plots test-plots validate test-validate help figures
all: servesim

# The release (semantic versioning; CHANGELOG.md) and the commit built.
SEMVER := 0.1.0
$(BUILD)/version.h: FORCE
	@mkdir -p $(BUILD)
	@v=$$(git describe --always --dirty --tags 2>/dev/null || echo unknown); \
	 { printf '#define SERVESIM_SEMVER "%s"\n' "$(SEMVER)"; \
	   printf '#define SERVESIM_VERSION "%s"\n' "$$v"; } > $@.tmp; \
	 cmp -s $@.tmp $@ && rm -f $@.tmp || mv $@.tmp $@

$(BUILD)/opt/%.o: %.c $(BUILD)/deps.mk | $(BUILD)/version.h
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS_opt) -MMD -MP -c $< -o $@
$(BUILD)/san/%.o: %.c $(BUILD)/deps.mk | $(BUILD)/version.h
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS_san) -MMD -MP -c $< -o $@

servesim: $(call obj,opt,$(LIB_SRCS) tool/main.c)
	$(CC) -o $@ $^ $(DEP_LIBS) -lm

# servesim-mpi: the same program with sweeps spread over MPI ranks. Only
# tool/sweep_mpi.c differs (built with mpicc and -DSERVESIM_MPI); the core
# build never needs MPI.
MPICC ?= mpicc
MPI_SRCS := tool/sweep_mpi.c
$(BUILD)/mpi/%.o: %.c $(BUILD)/deps.mk | $(BUILD)/version.h
	@mkdir -p $(dir $@)
	$(MPICC) $(CFLAGS_opt) -DSERVESIM_MPI -MMD -MP -c $< -o $@
servesim-mpi: $(call obj,opt,$(filter-out $(MPI_SRCS),$(LIB_SRCS)) tool/main.c) \
              $(call obj,mpi,$(MPI_SRCS))
	$(MPICC) -o $@ $^ $(DEP_LIBS) -lm
mpi: servesim-mpi

$(BUILD)/test_sim: $(call obj,opt,$(SIM_SRCS) $(TEST_SIM_SRCS))
	$(CC) -o $@ $^ $(DEP_LIBS) $(CHECK_LIBS) -lm
$(BUILD)/test_all: $(call obj,opt,$(LIB_SRCS) $(CALIB_HOST_SRCS) $(TEST_ALL_SRCS)) \
                   | $(CALIB_FAKE_NVML)
	$(CC) -o $@ $(filter %.o,$^) $(DEP_LIBS) $(CHECK_LIBS) -lm
$(BUILD)/test_sim_san: $(call obj,san,$(SIM_SRCS) $(TEST_SIM_SRCS))
	$(CC) $(LDFLAGS_san) -o $@ $^ $(DEP_LIBS) $(CHECK_LIBS) -lm
$(BUILD)/test_all_san: $(call obj,san,$(LIB_SRCS) $(CALIB_HOST_SRCS) $(TEST_ALL_SRCS)) \
                       | $(CALIB_FAKE_NVML)
	$(CC) $(LDFLAGS_san) -o $@ $(filter %.o,$^) $(DEP_LIBS) $(CHECK_LIBS) -lm

run: servesim
	./servesim run experiments/quickstart.json --out results/quickstart.h5

# Tests run from the repository root (they read models/ and experiments/).
# calib-check compiles the CUDA calibration program when nvcc is there.
test: test-layers test-fast test-san calib-check test-calib-run test-mpi test-plots test-validate
test-layers:
	sh tests/layers_check.sh
test-fast: $(BUILD)/test_sim $(BUILD)/test_all servesim $(BUILD)/calib-tool
	$(BUILD)/test_sim
	$(BUILD)/test_all
test-san: $(BUILD)/test_sim_san $(BUILD)/test_all_san
	ASAN_OPTIONS=detect_leaks=1 $(BUILD)/test_sim_san
	ASAN_OPTIONS=detect_leaks=1 UBSAN_OPTIONS=print_stacktrace=1 $(BUILD)/test_all_san

# Debian's python3 (python3-h5py, python3-matplotlib), not a virtualenv's.
PYTHON ?= /usr/bin/python3
# A sweep over MPI ranks must equal the local one (tests/mpi_check.sh).
test-mpi: servesim servesim-mpi
	PYTHON=$(PYTHON) sh tests/mpi_check.sh
# The plot scripts, headless, on a small sweep (tests/plots_check.sh).
test-plots: servesim
	PYTHON=$(PYTHON) sh tests/plots_check.sh

# The validation suite's machinery on hand-made cases and two references (validate/).
test-validate: servesim
	$(PYTHON) validate/test_validate.py

# servesim against published end-to-end measurements (validate/README.md): signed errors
# per value, median |error| and worst case per engine generation. Validation only: nothing
# is fitted to these numbers.
validate: servesim
	$(PYTHON) validate/validate.py

# A small bundled sweep (a few seconds) and every plot of it, in results/plots/.
plots: servesim
	./servesim sweep experiments/plots_demo.json --out results/plots_demo.h5 --quiet
	MPLBACKEND=Agg $(PYTHON) plots/all.py results/plots_demo.h5 --out results/plots

bench: servesim
	sh tests/bench.sh

# The README's figures (docs/figures/), from the bundled experiments: the same
# commands as the plot test (tests/plots_check.sh), which checks their content.
figures: servesim
	./servesim sweep experiments/batch_policies.json --out results/batch_policies.h5 --quiet
	MPLBACKEND=Agg $(PYTHON) plots/batch_policies.py results/batch_policies.h5 --out docs/figures
	./servesim capacity experiments/quickstart.json --slo ttft_p90=300ms,tpot_p90=40ms \
	    --set workload.requests=300 -j 2 --out results/capacity_quickstart.h5 --quiet
	MPLBACKEND=Agg $(PYTHON) plots/capacity.py results/capacity_quickstart.h5 --out docs/figures
	./servesim run experiments/quickstart.json --set workload.requests=500 \
	    --out results/quickstart_500.h5 --quiet
	MPLBACKEND=Agg $(PYTHON) plots/timeline.py results/quickstart_500.h5 --out docs/figures

# The run-config reference, generated from the parser (tool/config_doc.h);
# a test fails when it is out of date.
docs/config.md: servesim
	@mkdir -p docs
	./servesim help config --markdown > $@.tmp && mv $@.tmp $@

# Calibration (calib/README.md): calib-tool is the host side; calib/calib.mk
# builds the CUDA program. calib-data regenerates the committed plans, the
# next H200 session's plan and the schedule calib/h200_run.sh follows (what
# the measured table, once there is one, has not covered yet, most valuable
# first) and the synthetic table the tests use.
CALIB_H200_TABLE := calib/tables/H200-141GB.json
$(BUILD)/calib-tool: $(call obj,opt,$(LIB_SRCS) $(CALIB_HOST_SRCS) calib/tool.c)
	$(CC) -o $@ $^ $(DEP_LIBS) -lm
# The fake NVML libraries of the NVML loader's tests (CALIB_FAKE_NVML, above).
$(BUILD)/calib/fake_nvml/ok/libnvidia-ml.so.1: tests/calib_fake_nvml.c
	@mkdir -p $(dir $@)
	$(CC) $(WARN) -O1 -fPIC -shared -o $@ $<
$(BUILD)/calib/fake_nvml/broken/libnvidia-ml.so.1: tests/calib_fake_nvml.c
	@mkdir -p $(dir $@)
	$(CC) $(WARN) -O1 -fPIC -shared -DFAKE_NVML_BROKEN -o $@ $<
# The stand-in for servesim-calib without a GPU (calib/stub.c), and the dry
# runs of calib/h200_run.sh with it (tests/calib_run_check.sh).
$(BUILD)/calib/servesim-calib-stub: $(call obj,opt,$(LIB_SRCS) $(CALIB_HOST_SRCS) calib/stub.c)
	@mkdir -p $(dir $@)
	$(CC) -o $@ $^ $(DEP_LIBS) -lm
test-calib-run: $(BUILD)/calib/servesim-calib-stub $(BUILD)/calib-tool
	PYTHON=$(PYTHON) sh tests/calib_run_check.sh
calib-data: $(BUILD)/calib-tool
	$(BUILD)/calib-tool plan --layer --gpu H200-141GB --out calib/plans/full.plan
	$(BUILD)/calib-tool plan --plan calib/plans/full.plan --gpu H200-141GB \
	    $(if $(wildcard $(CALIB_H200_TABLE)),--skip-covered $(CALIB_H200_TABLE)) \
	    --schedule calib/plans/h200.schedule --session calib/plans/h200.plan
	$(BUILD)/calib-tool plan --quick --layer --out calib/plans/quick.plan
	$(BUILD)/calib-tool synth --gpu H100-SXM-80GB --models Llama-3-8B \
	    --out tests/data/cost_table_synthetic.json
include calib/calib.mk

# Fuzzing with clang's libFuzzer: one target per trace format (plus "auto",
# format recognition), the trace source's options, the run-config reader,
# the experiment-file reader, the --set parser and the cost-table loader.
# `make fuzz` runs each for FUZZ_SECONDS (tests/fuzz/run.sh); `make
# fuzz-NAME` runs one (NAME: a target without its fuzz_ prefix, e.g.
# `make fuzz-set FUZZ_SECONDS=600`, `make fuzz-trace_azure`), and
# `make fuzz FUZZ_ONLY="set experiment"` a few.
FUZZ_CC ?= clang
FUZZ_SECONDS ?= 60
FUZZ_FORMATS := azure mooncake burstgpt lengths native_csv native_jsonl auto
FUZZ_NAMES := $(addprefix trace_,$(FUZZ_FORMATS)) source config experiment set cost_table
FUZZ_ONLY ?= $(FUZZ_NAMES)
FUZZ_TARGETS := $(addprefix $(BUILD)/fuzz/fuzz_,$(FUZZ_ONLY))
CFLAGS_fuzz = $(WARN) -O1 -g -fsanitize=fuzzer-no-link,address,undefined \
              -fno-sanitize-recover=all -DTRACE_BUF_BYTES=64 $(DEFS) -I. -I$(BUILD) \
              $(DEP_CFLAGS)
LDFLAGS_fuzz = -fsanitize=fuzzer,address,undefined

$(BUILD)/fuzz/%.o: %.c $(BUILD)/deps.mk | $(BUILD)/version.h
	@mkdir -p $(dir $@)
	$(FUZZ_CC) $(CFLAGS_fuzz) -MMD -MP -c $< -o $@
$(BUILD)/fuzz/fuzz_trace_%: tests/fuzz/fuzz_trace.c $(call obj,fuzz,$(LIB_SRCS))
	$(FUZZ_CC) $(CFLAGS_fuzz) $(LDFLAGS_fuzz) -DFUZZ_FORMAT='"$*"' -o $@ $^ $(DEP_LIBS) -lm
# The other targets: one file each, tests/fuzz/fuzz_<name>.c.
$(BUILD)/fuzz/fuzz_source $(BUILD)/fuzz/fuzz_config $(BUILD)/fuzz/fuzz_experiment \
$(BUILD)/fuzz/fuzz_set $(BUILD)/fuzz/fuzz_cost_table: \
$(BUILD)/fuzz/fuzz_%: $(BUILD)/fuzz/tests/fuzz/fuzz_%.o $(call obj,fuzz,$(LIB_SRCS))
	$(FUZZ_CC) $(LDFLAGS_fuzz) -o $@ $^ $(DEP_LIBS) -lm

.PHONY: $(addprefix fuzz-,$(FUZZ_NAMES))
fuzz: $(FUZZ_TARGETS)
	sh tests/fuzz/run.sh $(FUZZ_SECONDS) $(FUZZ_TARGETS)
$(addprefix fuzz-,$(FUZZ_NAMES)): fuzz-%: $(BUILD)/fuzz/fuzz_%
	sh tests/fuzz/run.sh $(FUZZ_SECONDS) $<

# Plugins (api/plugin.h, api/README.md): policies built outside servesim as
# shared objects it loads by name ("lib:policy"). `make plugin SRC=my.c`
# builds libmy.so next to my.c; the examples and the Python bridge go to
# build/plugins/, on servesim's plugin search path; tests/plugin_variants.c
# gives the broken and old plugins tests/test_plugin.c refuses or loads.
# `make install PREFIX=...` installs servesim, the policy-facing headers and
# servesim-plugin.pc, for building plugins outside this tree.
PLUGIN_DIR := $(BUILD)/plugins
DEFS += -DSERVESIM_PLUGIN_DIR='"$(CURDIR)/$(PLUGIN_DIR)"' -DSERVESIM_SOURCE_DIR='"$(CURDIR)"'
PLUGIN_CFLAGS = $(WARN) -O2 -g -fPIC -shared -fvisibility=hidden -I. $(DEP_CFLAGS)
PLUGIN_HDRS := $(wildcard api/*.h) sim/base.h sim/rbtree.h
EXAMPLE_PLUGINS := $(PLUGIN_DIR)/libexample.so $(PLUGIN_DIR)/libprefill_first.so
EXAMPLE_PLUGINS += $(PLUGIN_DIR)/libevict_example.so $(PLUGIN_DIR)/libscale_retain.so
TEST_PLUGINS := $(foreach v,bad_major bad_minor no_abi no_entry no_hook old_minor nondet\
                  v1_desc evict_builtin evict_no_victim,\
                  $(PLUGIN_DIR)/test/lib$(v).so)
$(PLUGIN_DIR)/lib%.so: examples/plugins/%.c $(PLUGIN_HDRS) $(BUILD)/deps.mk
	@mkdir -p $(dir $@)
	$(CC) $(PLUGIN_CFLAGS) -o $@ $<
$(PLUGIN_DIR)/test/lib%.so: tests/plugin_variants.c $(PLUGIN_HDRS) $(BUILD)/deps.mk
	@mkdir -p $(dir $@)
	$(CC) $(PLUGIN_CFLAGS) -DVARIANT_$* -o $@ $<
# The Python bridge as a subprocess (plugins/servesim_pipe.c): no libpython.
EXAMPLE_PLUGINS += $(PLUGIN_DIR)/libservesim_pipe.so
$(PLUGIN_DIR)/libservesim_pipe.so: plugins/servesim_pipe.c $(PLUGIN_HDRS) $(BUILD)/deps.mk
	@mkdir -p $(dir $@)
	$(CC) $(PLUGIN_CFLAGS) -o $@ $< -lcjson
# The Python bridge, where mk/deps.sh found python3-embed (python3-dev).
ifneq ($(PY_LIBS),)
EXAMPLE_PLUGINS += $(PLUGIN_DIR)/libservesim_py.so
endif
$(PLUGIN_DIR)/libservesim_py.so: plugins/servesim_py.c $(PLUGIN_HDRS) $(BUILD)/deps.mk
	@mkdir -p $(dir $@)
	$(CC) $(PLUGIN_CFLAGS) $(PY_CFLAGS) -o $@ $< $(PY_LIBS)
plugins: $(EXAMPLE_PLUGINS)
all: plugins
$(BUILD)/test_all $(BUILD)/test_all_san: | $(EXAMPLE_PLUGINS) $(TEST_PLUGINS)
test-mpi: plugins
.PHONY: plugin plugins install
plugin:
	@test -n "$(SRC)" || { echo "usage: make plugin SRC=my_policy.c" >&2; exit 2; }
	$(CC) $(PLUGIN_CFLAGS) -o $(dir $(SRC))lib$(basename $(notdir $(SRC))).so $(SRC)
# make bench's per-decision cost of built-in, C plugin and Python policies.
$(BUILD)/plugin_bench: $(call obj,opt,$(LIB_SRCS) tests/bench/plugin_bench.c) | $(EXAMPLE_PLUGINS)
	$(CC) -o $@ $(filter %.o,$^) $(DEP_LIBS) -lm
bench: $(BUILD)/plugin_bench
PREFIX ?= /usr/local
install: servesim
	install -d $(DESTDIR)$(PREFIX)/bin $(DESTDIR)$(PREFIX)/include/servesim/api \
	    $(DESTDIR)$(PREFIX)/include/servesim/sim $(DESTDIR)$(PREFIX)/lib/pkgconfig \
	    $(DESTDIR)$(PREFIX)/lib/servesim/plugins
	install -m 755 servesim $(DESTDIR)$(PREFIX)/bin/
	install -m 644 api/*.h $(DESTDIR)$(PREFIX)/include/servesim/api/
	install -m 644 sim/base.h sim/rbtree.h $(DESTDIR)$(PREFIX)/include/servesim/sim/
	sed 's|@PREFIX@|$(PREFIX)|' mk/servesim-plugin.pc.in \
	    > $(DESTDIR)$(PREFIX)/lib/pkgconfig/servesim-plugin.pc

clean:
	rm -rf $(BUILD) servesim servesim-mpi

help:
	@echo 'servesim make targets:'
	@echo '  make                  build ./servesim (same as make all, make servesim)'
	@echo '  make run              run experiments/quickstart.json into results/quickstart.h5'
	@echo '  make test             every check: layering, unit and end-to-end suites, sanitizers,'
	@echo '                        calibration dry runs, MPI, plots, validation (10+ minutes)'
	@echo '  make test-fast        the unit and end-to-end suites only (build/test_all)'
	@echo '  make test-san         the suites under AddressSanitizer and UBSan'
	@echo '  make test-plots       the plot scripts on a small sweep, checked by content'
	@echo '  make test-layers      the include layering (tests/layers_check.sh)'
	@echo '  make plots            a small bundled sweep and every plot of it, in results/plots/'
	@echo '  make bench            speed benchmarks (tests/bench.sh)'
	@echo '  make figures          the README figures (docs/figures/) from the bundled experiments'
	@echo '  make validate         servesim against published measurements (validate/)'
	@echo '  make mpi              ./servesim-mpi, sweeps spread over MPI ranks'
	@echo '  make fuzz             libFuzzer targets, FUZZ_SECONDS each (needs clang)'
	@echo '  make calib            the CUDA calibration program (GPU machines; calib/README.md)'
	@echo '  make calib-data       regenerate the calibration plans and synthetic table'
	@echo '  make docs/config.md   regenerate the config reference from the parser'
	@echo '  make clean            remove build/, servesim, servesim-mpi'
	@echo '  make help             this list'

-include $(shell find $(BUILD) -name '*.d' 2>/dev/null)
