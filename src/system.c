#include "system.h"

#include <errno.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#if defined(__SSE2__)
#include <xmmintrin.h>
#endif

#include <cblas.h>

// Threads that reach the end of a parallel region first wait there for the others: libgomp spins
// for 300,000 iterations (~0.1-1 ms) by default before it sleeps. A shorter spin of 10,000
// iterations (tens of microseconds) measured fastest on the quiet 2-core machine (tiny model, 2
// threads: 27.2 ms a step against 31.1 at 1,000 and 28.4 at 100,000), and under load it gives a
// displaced thread's core back sooner; the thread governor below takes care of the rest of the load
// case. libgomp reads GOMP_SPINCOUNT once, in its constructor, before main, and nothing but the
// environment sets it; so when neither it nor OMP_WAIT_POLICY is set, the program re-executes itself
// with GOMP_SPINCOUNT added, from the executable's preinit array: that runs before any library's
// constructor, so nothing has happened yet (no output, no file). A user's own setting wins; if the
// re-execution fails, the program simply runs with libgomp's default.
#define DEFAULT_SPINCOUNT "GOMP_SPINCOUNT=10000"
static void default_spin_count(int argc, char **argv, char **envp) {
    (void)argc;
    int n = 0;
    for (; envp[n]; n++)
        if (strncmp(envp[n], "OMP_WAIT_POLICY=", 16) == 0 || strncmp(envp[n], "GOMP_SPINCOUNT=", 15) == 0) return;
    char **env = malloc(sizeof(char *) * (n + 2));
    if (!env) return;
    memcpy(env, envp, sizeof(char *) * n);
    env[n] = DEFAULT_SPINCOUNT;
    env[n + 1] = NULL;
    execve("/proc/self/exe", argv, env);
    free(env);
}
__attribute__((section(".preinit_array"), used)) static void (*const preinit_spin_count)(int, char **, char **) =
    default_spin_count;

// Subnormal floats (below 1.2e-38 in magnitude) flushed to zero, as results (FTZ, MXCSR bit 15) and
// as operands (DAZ, bit 6), on the calling thread. A product or sum that meets one takes a microcode
// assist of about a hundred cycles on Intel cores. Attention makes them: the probabilities of far keys
// are tiny, and the backward's dS = α·(dα - Σ α·dα) of those falls below 1e-38, which the products
// dS·K and dSᵀ·Q then read. With ALiBi's distance penalty at T = 2048 the backward took 1.55× no
// PE's (201 against 127 ms, one layer, 1 thread); flushed, the same (127 against 127). Values that
// small change no result that matters; TensorFlow flushes them on CPUs too.
static void flush_subnormals(void) {
#if defined(__SSE2__)
    _mm_setcsr(_mm_getcsr() | 0x8040);
#endif
}

// OpenBLAS first: matmul() runs OpenBLAS calls on OpenMP threads itself (matmul.c), so each call is
// single-threaded. The order matters with OpenBLAS's OpenMP build (Debian's libopenblas0-openmp):
// there openblas_set_num_threads(n) also calls omp_set_num_threads(n), so called last it left every
// parallel loop of the program on 1 thread, whatever run.threads said.
int set_threads(int threads) {
    if (threads <= 0) threads = omp_get_num_procs();
    openblas_set_num_threads(1);
    omp_set_num_threads(threads);
    if (!getenv("OMP_SCHEDULE")) omp_set_schedule(omp_sched_static, 0);
    // on this thread, then on the pool's (threads created later copy their creator's mode)
    flush_subnormals();
#pragma omp parallel
    flush_subnormals();
    return threads;
}

static long involuntary_switches(void) {
    struct rusage ru;
    return getrusage(RUSAGE_SELF, &ru) == 0 ? ru.ru_nivcsw : 0;
}

void governor_init(ThreadGovernor *g, int threads) {
    *g = (ThreadGovernor){.max = threads, .count = threads, .since_probe = PROBE_EVERY, .probe_every = PROBE_EVERY};
}

void governor_step_begin(ThreadGovernor *g) { g->switches = involuntary_switches(); }

// The count to try next, 0 for none: one down while other processes preempt this one; from a reduced
// count, one back up (a reduced count on cores of its own sees no preemption, so only a try tells
// whether the load has gone).
// Steps between tries after `losses` lost in a row: PROBE_EVERY, then the quick retry, then
// PROBE_EVERY doubled for each further loss up to PROBE_MAX (see system.h).
static int probe_interval(int losses) {
    if (losses <= 1) return losses == 0 ? PROBE_EVERY : PROBE_RETRY;
    int wait = PROBE_EVERY << (losses - 1 < 4 ? losses - 1 : 4);
    return wait < PROBE_MAX ? wait : PROBE_MAX;
}

static int count_to_try(const ThreadGovernor *g, int contended) {
    if (contended && g->count > 1) return g->count / 2;
    if (g->count < g->max) return 2 * g->count < g->max ? 2 * g->count : g->max;
    return 0;
}

int governor_observe(ThreadGovernor *g, double seconds, long switches) {
    // preempted more than 150 times a second: another process wants these cores (on the quiet
    // 2-core machine, 30-60 a second, from the kernel's own threads; with one busy process, 230-1000).
    // At least 5 times: in a step of a few milliseconds 2 stray preemptions already make a high rate
    // (a quiet 2.5 ms step of a one-layer model was taken for contention), so such short steps are
    // not judged at all.
    int contended = switches >= 5 && switches > 150 * seconds;
    if (!g->started) {  // the first step: its time and its preemptions are first touch's (see system.h)
        g->started = 1;
        return g->count;
    }
    g->since_probe++;
    if (g->trying) {  // the step ran at g->trying: keep the faster count, and try less often after a loss
        if (seconds < g->step_time) {
            g->count = g->trying, g->step_time = seconds;
            g->losses = 0;
            g->probe_every = probe_interval(g->losses);
        } else {  // the fastest step at count starts again: a load that has come since counts
            g->probe_every = probe_interval(++g->losses);
            g->step_time = 0;
        }
        g->trying = 0;
    } else {
        if (g->step_time == 0 || seconds < g->step_time) g->step_time = seconds;
        int next = count_to_try(g, contended);
        if (next && g->since_probe >= g->probe_every) {
            g->trying = next;
            g->since_probe = 0;
        }
    }
    g->dynamic = contended || g->count < g->max;
    return g->trying ? g->trying : g->count;
}

void governor_step_end(ThreadGovernor *g, double seconds) {
    omp_set_num_threads(governor_observe(g, seconds, involuntary_switches() - g->switches));
    if (!getenv("OMP_SCHEDULE")) omp_set_schedule(g->dynamic ? omp_sched_dynamic : omp_sched_static, g->dynamic);
}

int make_dirs(const char *path) {
    char buf[1024];
    snprintf(buf, sizeof buf, "%s", path);
    for (char *p = buf + 1; *p; p++) {
        if (*p != '/') continue;
        *p = '\0';
        if (mkdir(buf, 0777) != 0 && errno != EEXIST) return -1;
        *p = '/';
    }
    return mkdir(buf, 0777) != 0 && errno != EEXIST ? -1 : 0;
}

double now_seconds(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec * 1e-9;
}

// The smaller of /proc/meminfo's MemAvailable and the room left under this process's cgroup limit
// (v2 memory.max, or v1 limit_in_bytes), which a container's memory can be capped by.
static double read_number(const char *path) {
    FILE *f = fopen(path, "r");
    if (!f) return 0;
    char buf[64] = "";
    double v = fgets(buf, sizeof buf, f) && buf[0] >= '0' && buf[0] <= '9' ? strtod(buf, NULL) : 0;
    fclose(f);
    return v;
}

double available_memory_bytes(void) {
    double avail = 0;
    FILE *f = fopen("/proc/meminfo", "r");
    if (f) {
        char line[256];
        while (fgets(line, sizeof line, f))
            if (sscanf(line, "MemAvailable: %lf kB", &avail) == 1) {
                avail *= 1024;
                break;
            }
        fclose(f);
    }
    double limit = read_number("/sys/fs/cgroup/memory.max"), used = read_number("/sys/fs/cgroup/memory.current");
    if (limit <= 0) {
        limit = read_number("/sys/fs/cgroup/memory/memory.limit_in_bytes");
        used = read_number("/sys/fs/cgroup/memory/memory.usage_in_bytes");
    }
    // v1 reports "no limit" as a number near 2^63
    if (limit > 0 && limit < 1e18 && (avail <= 0 || limit - used < avail)) avail = limit > used ? limit - used : 0;
    return avail;
}
