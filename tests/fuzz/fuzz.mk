# Fuzzing the readers of user input (issue 8): one libFuzzer target per reader, tests/fuzz/fuzz_<name>.c,
# built with clang and AddressSanitizer + UndefinedBehaviorSanitizer against the sources that read
# input (config, checkpoint, tasks), each with a seed corpus in tests/fuzz/corpus/<name>/ (the
# crashes found so far are in it, so they stay fixed).
#
#   make fuzz-build                    build every target into $(BUILD)/fuzz/
#   make fuzz [FUZZ_SECONDS=30]        build, then run each target in turn for FUZZ_SECONDS
#   make fuzz FUZZ_TARGETS=config      only some targets
#
# Included by the main Makefile (-include tests/fuzz/fuzz.mk) and run from the repository root; it
# also works alone, given a target: make -f tests/fuzz/fuzz.mk fuzz. It leaves the including
# Makefile's default goal alone, wherever it is included. New inputs go to $(BUILD)/fuzz/corpus/<name>/
# (never into the committed seeds); a crash is written to $(BUILD)/fuzz/crash-<name>-* and stops
# `make fuzz` with its reproducer command: $(BUILD)/fuzz/fuzz_<name> <file>. Replaying a corpus
# only (a regression check, seconds): $(BUILD)/fuzz/fuzz_<name> -runs=0 tests/fuzz/corpus/<name>.

FUZZ_GOAL    := $(.DEFAULT_GOAL)
FUZZ_CC      ?= clang
FUZZ_SECONDS ?= 30
FUZZ_OUT     := $(or $(BUILD),build)/fuzz
FUZZ_SAN     := -fsanitize=address,undefined -fno-sanitize-recover=all
FUZZ_CFLAGS  := -std=c11 -D_POSIX_C_SOURCE=200809L -g -O1 -fno-omit-frame-pointer $(FUZZ_SAN) -Wall -Wextra \
                -Isrc -Itests/fuzz
# system.c (make_dirs, for task.write_dir) and the encodings' kernels (linked because the encodings
# declare their pe.* config keys) bring OpenMP and OpenBLAS in, though no fuzzed path calls them.
FUZZ_LIBS    := -fopenmp -lopenblas -lcjson -lz -lm
# The sources that read input, and what they call; no model.
FUZZ_SRC     := src/config.c src/input.c src/rng.c src/checkpoint.c src/atomic_file.c src/error.c src/system.c \
                src/batch.c src/matmul.c $(wildcard src/tasks/*.c) $(wildcard src/pe/*.c)
FUZZ_OBJ     := $(FUZZ_SRC:src/%.c=$(FUZZ_OUT)/obj/%.o) $(FUZZ_OUT)/obj/fuzz_common.o
FUZZ_TARGETS ?= $(patsubst tests/fuzz/fuzz_%.c,%,$(filter-out tests/fuzz/fuzz_common.c,$(wildcard tests/fuzz/fuzz_*.c)))

.PHONY: fuzz fuzz-build
fuzz-build: $(FUZZ_TARGETS:%=$(FUZZ_OUT)/fuzz_%)

$(FUZZ_OUT)/obj/%.o: src/%.c
	@mkdir -p $(dir $@)
	$(FUZZ_CC) $(FUZZ_CFLAGS) -fsanitize=fuzzer-no-link -MMD -MP -c $< -o $@
$(FUZZ_OUT)/obj/fuzz_%.o: tests/fuzz/fuzz_%.c
	@mkdir -p $(dir $@)
	$(FUZZ_CC) $(FUZZ_CFLAGS) -fsanitize=fuzzer-no-link -MMD -MP -c $< -o $@
$(FUZZ_OUT)/fuzz_%: $(FUZZ_OUT)/obj/fuzz_%.o $(FUZZ_OBJ)
	$(FUZZ_CC) $(FUZZ_CFLAGS) -fsanitize=fuzzer $^ -o $@ $(FUZZ_LIBS)

# One target at a time (the machine is shared), each for FUZZ_SECONDS, starting from its seeds and
# from what earlier runs found; libFuzzer prints its execution count at the end (stat::number_of_executed_units).
fuzz: fuzz-build
	@for t in $(FUZZ_TARGETS); do \
	    mkdir -p $(FUZZ_OUT)/corpus/$$t; \
	    echo "fuzz: $$t for $(FUZZ_SECONDS) s"; \
	    $(FUZZ_OUT)/fuzz_$$t -max_total_time=$(FUZZ_SECONDS) -timeout=10 -rss_limit_mb=2048 -print_final_stats=1 \
	        -artifact_prefix=$(FUZZ_OUT)/crash-$$t- $(FUZZ_OUT)/corpus/$$t tests/fuzz/corpus/$$t \
	        2> $(FUZZ_OUT)/$$t.log || { tail -40 $(FUZZ_OUT)/$$t.log; exit 1; }; \
	    grep -E 'stat::number_of_executed_units|Done [0-9]+ runs' $(FUZZ_OUT)/$$t.log | sed "s/^/  $$t: /"; \
	done

-include $(wildcard $(FUZZ_OUT)/obj/*.d $(FUZZ_OUT)/obj/tasks/*.d)
.DEFAULT_GOAL := $(FUZZ_GOAL)
