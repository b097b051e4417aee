# servesim build. `make` builds ./servesim; `make run` runs the bundled
# quickstart; `make test` runs the unit and end-to-end suites, then the same
# suites built with AddressSanitizer and UndefinedBehaviorSanitizer.
# Missing Debian packages are installed by mk/deps.sh on the first build.

CC ?= cc
BUILD := build
WARN := -std=c11 -Wall -Wextra -Werror
DEFS := -D_POSIX_C_SOURCE=200809L -DSERVESIM_MODELS_DIR='"$(CURDIR)/models"'
OPT := -O2 -g
SAN := -O1 -g -fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=all

ifeq ($(filter clean,$(MAKECMDGOALS)),)
include $(BUILD)/deps.mk
endif

$(BUILD)/deps.mk: mk/deps.sh
	@sh mk/deps.sh $@

# The event core: no LLM code.
SIM_SRCS := $(wildcard sim/*.c)
# Everything else the simulator links (the CLI's main() is kept apart so that
# tests can link the rest).
LIB_SRCS := $(SIM_SRCS) $(wildcard models/*.c) $(wildcard policies/*.c) \
            $(wildcard traces/*.c) $(filter-out serve/main.c,$(wildcard serve/*.c))
TEST_SIM_SRCS := tests/check_main.c tests/sim_suites.c $(wildcard tests/test_sim_*.c)
TEST_ALL_SRCS := tests/check_main.c tests/all_suites.c tests/testutil.c $(wildcard tests/test_*.c)

obj = $(patsubst %.c,$(BUILD)/$(1)/%.o,$(2))

CFLAGS_opt = $(WARN) $(OPT) $(DEFS) -I. -I$(BUILD) $(DEP_CFLAGS) $(CHECK_CFLAGS)
CFLAGS_san = $(WARN) $(SAN) $(DEFS) -I. -I$(BUILD) $(DEP_CFLAGS) $(CHECK_CFLAGS)
LDFLAGS_san = -fsanitize=address,undefined

.PHONY: all run test test-fast test-san bench clean FORCE
all: servesim

$(BUILD)/version.h: FORCE
	@mkdir -p $(BUILD)
	@v=$$(git describe --always --dirty --tags 2>/dev/null || echo unknown); \
	 printf '#define SERVESIM_VERSION "%s"\n' "$$v" > $@.tmp; \
	 cmp -s $@.tmp $@ && rm -f $@.tmp || mv $@.tmp $@

$(BUILD)/opt/%.o: %.c $(BUILD)/deps.mk | $(BUILD)/version.h
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS_opt) -MMD -MP -c $< -o $@
$(BUILD)/san/%.o: %.c $(BUILD)/deps.mk | $(BUILD)/version.h
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS_san) -MMD -MP -c $< -o $@

servesim: $(call obj,opt,$(LIB_SRCS) serve/main.c)
	$(CC) -o $@ $^ $(DEP_LIBS) -lm

$(BUILD)/test_sim: $(call obj,opt,$(SIM_SRCS) $(TEST_SIM_SRCS))
	$(CC) -o $@ $^ $(DEP_LIBS) $(CHECK_LIBS) -lm
$(BUILD)/test_all: $(call obj,opt,$(LIB_SRCS) $(TEST_ALL_SRCS))
	$(CC) -o $@ $^ $(DEP_LIBS) $(CHECK_LIBS) -lm
$(BUILD)/test_sim_san: $(call obj,san,$(SIM_SRCS) $(TEST_SIM_SRCS))
	$(CC) $(LDFLAGS_san) -o $@ $^ $(DEP_LIBS) $(CHECK_LIBS) -lm
$(BUILD)/test_all_san: $(call obj,san,$(LIB_SRCS) $(TEST_ALL_SRCS))
	$(CC) $(LDFLAGS_san) -o $@ $^ $(DEP_LIBS) $(CHECK_LIBS) -lm

run: servesim
	./servesim run experiments/quickstart.json --out results/quickstart.h5

# Tests run from the repository root (they read models/ and experiments/).
test: test-fast test-san
test-fast: $(BUILD)/test_sim $(BUILD)/test_all servesim
	$(BUILD)/test_sim
	$(BUILD)/test_all
test-san: $(BUILD)/test_sim_san $(BUILD)/test_all_san
	ASAN_OPTIONS=detect_leaks=1 $(BUILD)/test_sim_san
	ASAN_OPTIONS=detect_leaks=1 UBSAN_OPTIONS=print_stacktrace=1 $(BUILD)/test_all_san

bench: servesim
	sh tests/bench.sh

clean:
	rm -rf $(BUILD) servesim

-include $(shell find $(BUILD) -name '*.d' 2>/dev/null)
