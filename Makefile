# copetrain: `make` builds the programs, `make test` builds and runs the tests, `make bench` the benchmark,
# `make test-portable` the fast tests built for a generic x86-64 under another OpenBLAS kernel, and
# `make sanitize` the tests and short runs of the programs under AddressSanitizer and UBSan.
#
# The core (everything in src/ but the programs' mains) is compiled twice: build/f with real=float
# for the programs and float tests, build/d with real=double for the gradient checks (tests/grad_*.c).
# BUILD=dir selects another build folder (handy when several builds share one tree), BINDIR=dir where
# the programs go (default: the repository root, where README runs them), so that a second
# configuration (other OPT, sanitizers) lives wholly in its own folder and leaves ./train alone.

# MPI=1 builds the programs with MPI (mpicc; src/dist.c) into build-mpi/, programs in build-mpi/bin,
# for `mpirun -np N build-mpi/bin/train` (README, "Several processes: MPI"). `make test` builds it
# too when mpicc is installed, for tests/test_mpi.sh.
ifeq ($(MPI),1)
CC      := mpicc
BUILD   ?= build-mpi
BINDIR  ?= build-mpi/bin
CFLAGS  += -DUSE_MPI
endif
MPI_BUILD  ?= build-mpi
HAVE_MPICC := $(shell command -v mpicc 2>/dev/null)

CC      ?= gcc
BUILD   ?= build
BINDIR  ?= .
# -mprefer-vector-width=512: the loops GCC vectorises itself use the whole AVX-512 register where
# the CPU has one. GCC's tunings for Intel CPUs (-march=native on an AVX-512 Xeon gives rocketlake)
# prefer 256 bits; GELU's forward then ran at 1.13 ns a value instead of 0.82, and whole steps 3-7%
# slower (1 thread). AMD's Zen 4 and 5 tunings prefer 512 already; a CPU without AVX-512 is unaffected.
# -falign-functions=64: every function starts on a cache line, so where its loops fall against the
# lines and the front end's 32- and 64-byte windows depends on its own code, not on the size of
# whatever the linker put before it. At GCC's 16 bytes, a change to cope.c moved attention.c's
# head_forward 16 bytes off a line and no-PE attention's forward went from 1.75-1.87 to 2.10-2.29 ms
# (tiny model's shape, 1 thread, AVX-512 Xeon); aligned, 1.81-1.96 whatever came before it.
OPT     ?= -O3 -march=native -mprefer-vector-width=512 -falign-functions=64
# -fno-math-errno: no code reads errno after a math function, and with it GCC keeps loops calling
# sqrt scalar (Adam's update); the results are the same (sqrt is correctly rounded either way).
CFLAGS  += -std=c11 -D_POSIX_C_SOURCE=200809L $(OPT) -fno-math-errno -fopenmp -Wall -Wextra -Isrc -MMD -MP
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

.PHONY: all test test-portable sanitize bench bench-mpi clean
all: $(BIN_PATHS)

# The objects depend on the compiler and flags they were built with, kept in $(BUILD)/flags: a make
# with other flags in the same folder (make OPT=..., or a changed default) compiles them again rather
# than linking objects of the old ones.
FLAGS_FILE := $(BUILD)/flags
FLAGS_NOW  := $(CC) $(CFLAGS)
$(shell mkdir -p $(BUILD) && { [ "`cat $(FLAGS_FILE) 2>/dev/null`" = '$(FLAGS_NOW)' ] || echo '$(FLAGS_NOW)' > $(FLAGS_FILE); })

$(BUILD)/f/%.o: src/%.c $(FLAGS_FILE)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -c $< -o $@
$(BUILD)/d/%.o: src/%.c $(FLAGS_FILE)
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

# SUITE picks the tests `make test` runs:
#   all       every test binary and every tests/test_*.sh (the default; about 7 minutes on 2 cores);
#   fast      the test binaries and the shell tests of the numerics (evaluation, sampling, every task,
#             the PyTorch cross-check): all but tests/test_train.sh, whose 4 minutes compare two runs
#             of one build on one machine (reruns, resume, signals, refusals), so that which target
#             or OpenBLAS kernel computes them does not matter;
#   sanitize  the test binaries and tests/smoke.sh (every program briefly), for slow builds.
SUITE ?= all
SUITE_all :=
SUITE_fast = $(TESTS_F) $(TESTS_D) tests/test_eval.sh tests/test_tasks_train.sh tests/test_crosscheck.sh \
             tests/test_tokenizers.sh
SUITE_sanitize = $(TESTS_F) $(TESTS_D) tests/smoke.sh
test: all $(BUILD)/bench $(TESTS_F) $(TESTS_D) $(TOOLS) $(if $(filter all,$(SUITE)),mpi-for-test)
	$(if $(filter $(SUITE),all fast sanitize),,$(error SUITE=$(SUITE): expected all, fast or sanitize))
	BUILD=$(BUILD) BIN=$(BINDIR) MPI_BIN=$(MPI_BUILD)/bin sh tests/run_tests.sh $(SUITE_$(SUITE))

# The MPI build of ./train for tests/test_mpi.sh, when mpicc is there (else the test says it skips).
.PHONY: mpi-for-test
mpi-for-test:
	$(if $(HAVE_MPICC),$(MAKE) MPI=1 BUILD=$(MPI_BUILD) BINDIR=$(MPI_BUILD)/bin OPT="$(OPT)" $(MPI_BUILD)/bin/train)

# The fast suite in a second configuration, in its own folders: a generic x86-64 target (no AVX, no
# FMA: other vector widths and library paths than -march=native) and another OpenBLAS kernel family
# (Debian's OpenBLAS picks one per CPU at run time; Nehalem is SSE-only, so it runs on every
# x86-64-v2 CPU and is no modern CPU's own). No test may depend on the bits these change.
# Then, on a CPU with AVX2, the same for the AVX2 width (x86-64-v3: AVX2 and FMA, no AVX-512) under
# OpenBLAS's Haswell kernels: with -march=native on an AVX-512 machine, the element-wise loops run their
# tests against the plain references (test_attention says which width) at each of the three widths.
PORTABLE_BUILD ?= build-portable
PORTABLE_OPT   ?= -O2 -march=x86-64-v2
PORTABLE_CORE  ?= Nehalem
AVX2_BUILD     ?= build-avx2
test-portable:
	OPENBLAS_CORETYPE=$(PORTABLE_CORE) $(MAKE) BUILD=$(PORTABLE_BUILD) BINDIR=$(PORTABLE_BUILD)/bin \
	    OPT="$(PORTABLE_OPT)" SUITE=fast test
	if grep -qw avx2 /proc/cpuinfo; then \
	    OPENBLAS_CORETYPE=Haswell $(MAKE) BUILD=$(AVX2_BUILD) BINDIR=$(AVX2_BUILD)/bin \
	        OPT="-O2 -march=x86-64-v3" SUITE=fast test; \
	else echo "test-portable: this CPU has no AVX2, so the AVX2 configuration does not run"; fi

# Everything built with AddressSanitizer (LeakSanitizer included) and UndefinedBehaviorSanitizer into
# its own folders, then the sanitize suite. Undefined behaviour aborts (no recovery), so it fails the
# test it happens in. allocator_may_return_null: a size too large to allocate returns NULL, as
# malloc does, so the tests of such refusals run (ASan would abort instead). The programs run with 2
# OpenMP threads: libgomp's and OpenBLAS's threads gave no false reports here, so there are no
# suppressions.
SANITIZE_BUILD ?= build-sanitize
SANITIZE_OPT   ?= -O1 -g -fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=undefined
sanitize:
	UBSAN_OPTIONS=print_stacktrace=1 ASAN_OPTIONS=allocator_may_return_null=1 $(MAKE) BUILD=$(SANITIZE_BUILD) BINDIR=$(SANITIZE_BUILD)/bin \
	    OPT="$(SANITIZE_OPT)" SUITE=sanitize test

# The training table (scripts/bench.sh), then evaluation memory at 1/4/16x the context, generation with
# and without the key/value cache, tokenisation speed, and ranks against threads (bench-mpi).
bench: all $(BUILD)/bench $(BUILD)/tools/tool_tokenizer_bench
	BUILD=$(BUILD) sh scripts/bench.sh
	@echo; echo "== evaluation memory, one sequence (./eval's inference mode against the training layout; planned)"
	@echo "| model | T' | inference | training layout | parameters |"; echo "|---|---|---|---|---|"
	@$(BUILD)/bench --eval-memory --set pe.type=cope
	@$(BUILD)/bench --eval-memory --vocab 50257 --set model.n_layers=12 --set model.d_model=768 \
	    --set model.n_heads=12 --set model.block_size=1024 --set pe.type=cope --set pe.npos=64
	@echo; echo "== generation (scripts/bench_sample.sh)"
	@BIN=$(BINDIR) sh scripts/bench_sample.sh
	@echo; echo "== tokenisation (GPT-2's files from scripts/fetch_data.sh gpt2; the text: Tiny Shakespeare if fetched)"
	@sh scripts/fetch_data.sh gpt2 >/dev/null 2>&1 || true
	@$(BUILD)/tools/tool_tokenizer_bench $(wildcard data/tinyshakespeare/input.txt)
	@echo; $(MAKE) --no-print-directory bench-mpi

# Ranks against threads (tests/../scripts/bench_mpi.sh): 1 rank × 2 threads and 2 ranks × 1 thread.
bench-mpi: all mpi-for-test
	BIN=$(BINDIR) MPI_BIN=$(MPI_BUILD)/bin sh scripts/bench_mpi.sh

clean:
	rm -rf $(BUILD) $(BIN_PATHS) $(PORTABLE_BUILD) $(AVX2_BUILD) $(SANITIZE_BUILD) $(MPI_BUILD)

-include $(shell find $(BUILD) -name '*.d' 2>/dev/null)
# tests/fuzz/ brings its own targets
-include tests/fuzz/fuzz.mk
