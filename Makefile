# copetrain: `make` builds the programs, `make test` builds and runs the tests, `make bench` the benchmark.
#
# The core (everything in src/ but the programs' mains) is compiled twice: build/f with real=float
# for the programs and float tests, build/d with real=double for the gradient checks (tests/grad_*.c).
# BUILD=dir selects another build folder (handy when several builds share one tree), BINDIR=dir where
# the programs go (default: the repository root, where README runs them), so that a second
# configuration (other OPT, sanitizers) lives wholly in its own folder and leaves ./train alone.

CC      ?= gcc
BUILD   ?= build
BINDIR  ?= .
OPT     ?= -O3 -march=native
CFLAGS  += -std=c11 -D_POSIX_C_SOURCE=200809L $(OPT) -fopenmp -Wall -Wextra -Isrc -MMD -MP
LDLIBS  := -lopenblas -lcjson -lz -lm

PROGRAMS := $(filter $(wildcard src/*.c),src/train.c src/eval.c src/sample.c src/bench.c)
CORE_SRC := $(filter-out $(PROGRAMS),$(wildcard src/*.c src/pe/*.c src/tasks/*.c))
OBJ_F    := $(CORE_SRC:src/%.c=$(BUILD)/f/%.o)
OBJ_D    := $(CORE_SRC:src/%.c=$(BUILD)/d/%.o)
BINS     := $(notdir $(basename $(filter-out src/bench.c,$(PROGRAMS))))
# "train", not "./train", when BINDIR is the root: make names targets without a leading ./
BIN_PFX  := $(patsubst ./,,$(patsubst %/,%,$(BINDIR))/)
BIN_PATHS:= $(addprefix $(BIN_PFX),$(BINS))
TESTS_F  := $(patsubst tests/%.c,$(BUILD)/tests/%,$(wildcard tests/test_*.c))
TESTS_D  := $(patsubst tests/%.c,$(BUILD)/tests/%,$(wildcard tests/grad_*.c))
TOOLS    := $(patsubst tests/%.c,$(BUILD)/tools/%,$(wildcard tests/tool_*.c))

.PHONY: all test bench clean
all: $(BIN_PATHS)

$(BUILD)/f/%.o: src/%.c
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -c $< -o $@
$(BUILD)/d/%.o: src/%.c
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -DREAL_DOUBLE -c $< -o $@
$(BUILD)/libcore_f.a: $(OBJ_F)
	rm -f $@ && ar rcs $@ $^
$(BUILD)/libcore_d.a: $(OBJ_D)
	rm -f $@ && ar rcs $@ $^

$(BIN_PATHS): $(BIN_PFX)%: $(BUILD)/f/%.o $(BUILD)/libcore_f.a
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) $^ -o $@ $(LDLIBS)
$(BUILD)/bench: $(BUILD)/f/bench.o $(BUILD)/libcore_f.a
	$(CC) $(CFLAGS) $^ -o $@ $(LDLIBS)

$(BUILD)/tests/test_%: tests/test_%.c $(BUILD)/libcore_f.a
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -Itests $^ -o $@ $(LDLIBS)
$(BUILD)/tests/grad_%: tests/grad_%.c $(BUILD)/libcore_d.a
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -DREAL_DOUBLE -Itests $^ -o $@ $(LDLIBS)

# Helper programs of shell tests (tests/tool_*.c), built against the double core.
$(BUILD)/tools/tool_%: tests/tool_%.c $(BUILD)/libcore_d.a
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -DREAL_DOUBLE -Itests $^ -o $@ $(LDLIBS)

test: all $(TESTS_F) $(TESTS_D) $(TOOLS)
	BUILD=$(BUILD) BIN=$(BINDIR) sh tests/run_tests.sh

bench: $(BUILD)/bench
	BUILD=$(BUILD) sh scripts/bench.sh

clean:
	rm -rf $(BUILD) $(BIN_PATHS)

-include $(shell find $(BUILD) -name '*.d' 2>/dev/null)
