// Tests of src/system.c: the thread count the programs set, and the thread governor's decisions.
#include <omp.h>
#include <stdio.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cblas.h>

#include "check.h"
#include "system.h"

// set_threads leaves OpenMP at the count asked for and OpenBLAS at 1 thread per call. With OpenBLAS's
// OpenMP build, setting OpenBLAS's count also sets OpenMP's: done in the other order, every program
// ran its loops on 1 thread whatever run.threads said. And every thread flushes subnormals, the
// pool's too (threads that ran before it keep their float mode unless told).
// Whether the calling thread flushes subnormal floats to zero: as results (1e-30 · 1e-10) and as
// operands (a subnormal's bits compare equal to 0).
static int flushes_subnormals(void) {
    uint32_t bits = 0x100;
    float f;
    memcpy(&f, &bits, sizeof f);
    volatile float tiny = 1e-30f, scale = 1e-10f, sub = f;
    volatile float product = tiny * scale;
    return product == 0.0f && sub == 0.0f;
}

static void test_set_threads(void) {
    int before = omp_get_max_threads();
    omp_set_num_threads(3);
    int flushed_before = 0;  // the pool's threads have run before set_threads, so they do not copy its mode
#pragma omp parallel reduction(+ : flushed_before)
    flushed_before += flushes_subnormals();
    int got = set_threads(3);
    printf("     set_threads(3): returned %d, OpenMP %d threads, OpenBLAS %d\n", got, omp_get_max_threads(),
           openblas_get_num_threads());
    CHECK(got == 3 && omp_get_max_threads() == 3, "set_threads(3) left OpenMP at %d threads", omp_get_max_threads());
    CHECK(openblas_get_num_threads() == 1, "set_threads left OpenBLAS at %d threads", openblas_get_num_threads());
    omp_sched_t kind;
    int chunk;
    omp_get_schedule(&kind, &chunk);
    if (getenv("OMP_SCHEDULE")) {
        printf("     OMP_SCHEDULE=%s is set: the schedule is left to it\n", getenv("OMP_SCHEDULE"));
    } else {
        printf("     run-time schedule: %s\n", kind == omp_sched_static ? "static" : "not static");
        CHECK(kind == omp_sched_static, "set_threads left the run-time schedule at kind %d", (int)kind);
    }
    int flushed = 0, team = 0;
#pragma omp parallel reduction(+ : flushed, team)
    {
        flushed += flushes_subnormals();
        team++;
    }
    printf("     subnormal floats flushed to zero on %d of %d threads (before set_threads: %d)\n", flushed, team,
           flushed_before);
#if defined(__SSE2__)  // where set_threads can set the mode (x86)
    CHECK(flushed == team, "subnormals flushed on %d of %d threads", flushed, team);
#endif
    set_threads(before);
}

// Feeds the governor `n` steps of `seconds` each with `switches` preemptions, where a step at `count`
// threads takes time[count]; returns the count of the last step.
static int run_steps(ThreadGovernor *g, int n, const double *time, long switches_per_second) {
    int count = g->trying ? g->trying : g->count;
    for (int i = 0; i < n; i++) {
        double t = time[count];
        count = governor_observe(g, t, (long)(switches_per_second * t));
    }
    return count;
}

// A quiet machine (no preemption, or the kernel's own, 40 a second) never leaves the configured count,
// even where fewer threads would be faster: without contention nothing is tried.
static void test_governor_quiet(void) {
    ThreadGovernor g;
    governor_init(&g, 4);
    double slower_on_more[5] = {0, 0.001, 0.002, 0, 0.004};  // seconds a step, by thread count
    int others = 0;
    for (int i = 0; i < 200; i++) others += run_steps(&g, 1, slower_on_more, 0) != 4;
    for (int i = 0; i < 200; i++) others += run_steps(&g, 1, slower_on_more, 40) != 4;
    for (int i = 0; i < 200; i++) others += governor_observe(&g, 0.0025, 2) != 4;  // 2 stray ones, short steps
    printf("     quiet: count %d after 600 steps, %d steps at another count\n", g.count, others);
    CHECK(g.count == 4 && others == 0, "quiet machine: count %d, %d steps at another count", g.count, others);
    CHECK(!g.dynamic, "quiet machine: work shared out dynamically");
}

// With contention the governor tries fewer threads from the third step on (the second starts the try;
// the first, first touch's, is not judged), keeps them while they are
// faster, tries more again at growing intervals (PROBE_RETRY after the first loss, then PROBE_EVERY
// doubled after each further loss, up to PROBE_MAX), and goes back up when the load has gone.
static void test_governor_busy(void) {
    ThreadGovernor g;
    governor_init(&g, 2);
    double busy[3] = {0, 0.050, 0.080};  // 2 threads slower than 1 while a busy process holds a core
    CHECK(run_steps(&g, 2, busy, 1000) == 1, "busy machine: the second step started no try");
    run_steps(&g, 1, busy, 1000);
    printf("     busy: count %d after 3 steps\n", g.count);
    CHECK(g.count == 1, "busy machine: still at %d threads after 3 steps", g.count);
    CHECK(g.dynamic, "busy machine: work shared out statically");
    // tries at 20, 23 (the retry), 63, 143, 303, then every 160 steps: 13 in 1600 (every 20 steps: 80)
    int at_two = 0, n = 10 * PROBE_MAX;
    for (int i = 0; i < n; i++) at_two += run_steps(&g, 1, busy, 5) == 2;
    printf("     busy: %d of %d steps tried 2 threads again\n", at_two, n);
    CHECK(g.count == 1 && at_two == 13, "busy: count %d, %d steps at 2 threads (want 13)", g.count, at_two);
    double quiet[3] = {0, 0.050, 0.028};  // the load has gone
    run_steps(&g, PROBE_MAX + 1, quiet, 40);
    printf("     load gone: count %d\n", g.count);
    CHECK(g.count == 2 && g.probe_every == PROBE_EVERY && !g.dynamic,
          "after the load went: count %d, tries every %d steps, dynamic %d", g.count, g.probe_every, g.dynamic);
    double mixed[3] = {0, 0.050, 0.045};  // contended, but 2 threads still faster: stay, trying ever less
    int at_one = 0;
    for (int i = 0; i < n; i++) at_one += run_steps(&g, 1, mixed, 1000) == 1;
    printf("     contended, faster on 2: %d of %d steps tried 1 thread\n", at_one, n);
    CHECK(g.count == 2 && at_one <= 13, "contended but faster on 2 threads: count %d, %d steps at 1", g.count, at_one);
}

// A load present from the start that spares the second step (the yardstick of the first try, which
// then loses) is followed by the quick retry, PROBE_RETRY steps on, rather than PROBE_EVERY doubled.
static void test_governor_spared_step(void) {
    ThreadGovernor g;
    governor_init(&g, 2);
    governor_observe(&g, 0.090, 60);                      // the first step: not judged
    CHECK(governor_observe(&g, 0.045, 300) == 1, "a contended second step started no try");
    CHECK(governor_observe(&g, 0.050, 0) == 2, "the try of 1 thread won against a faster step");
    double busy[3] = {0, 0.050, 0.080};
    int steps = 0;
    while (g.count == 2 && steps < PROBE_EVERY) steps++, run_steps(&g, 1, busy, 1000);
    printf("     a load that spared the yardstick: count %d after %d more steps\n", g.count, steps);
    CHECK(g.count == 1 && steps <= PROBE_RETRY + 2, "spared yardstick: count %d after %d steps", g.count, steps);
}

// One step slowed by a burst of preemptions (another tenant of a virtual machine's host) starts a
// try of fewer threads, which must beat the fastest step at the current count, not that slow one:
// the count stays. A load that stays is still followed, by the quick retry after that loss.
static void test_governor_burst(void) {
    ThreadGovernor g;
    governor_init(&g, 2);
    CHECK(governor_observe(&g, 0.090, 13) == 2, "the first step (first touch's preemptions) started a try");
    double quiet[3] = {0, 0.043, 0.021};
    run_steps(&g, 10, quiet, 40);
    CHECK(governor_observe(&g, 0.060, 300) == 1, "a contended step started no try of 1 thread");
    int count = governor_observe(&g, 0.043, 0);  // the try: slower than the run's 2-thread steps
    printf("     after a burst: count %d, next step at %d threads\n", g.count, count);
    CHECK(g.count == 2 && count == 2, "a burst of preemptions left the count at %d", g.count);
    double busy[3] = {0, 0.050, 0.080};  // a load that stays: the try after it wins
    int steps = 0;
    while (g.count == 2 && steps < 2 * PROBE_MAX) steps++, run_steps(&g, 1, busy, 1000);
    printf("     a load that stays: count %d after %d steps\n", g.count, steps);
    CHECK(g.count == 1 && steps <= PROBE_RETRY + 2, "a staying load: count %d after %d steps", g.count, steps);
}

int main(void) {
    printf("system tests\n");
    RUN(test_set_threads);
    RUN(test_governor_quiet);
    RUN(test_governor_busy);
    RUN(test_governor_burst);
    RUN(test_governor_spared_step);
    return check_summary("system");
}
