// What the programs need from the operating system: one thread count for OpenMP and OpenBLAS,
// folders, a monotonic clock and the memory available.
#ifndef SYSTEM_H
#define SYSTEM_H

// Uses `threads` OpenMP threads (0 = every core) for the loops and the products, whose tiles matmul()
// hands to single-threaded OpenBLAS calls; returns the count. Also sets the run-time schedule, by
// which the products' tiles and attention's heads are shared out (schedule(runtime)), to static:
// equal contiguous shares, the same rows to the same core in every loop, whose cache then holds
// them (the tiny model's 2-thread step: 26.0 ms with tiles taken as they come, 22.6 static). A
// user's OMP_SCHEDULE wins, here and in the governor. And every thread then flushes subnormal
// floats to zero (system.c: attention's backward had run 1.55× slower on them).
int set_threads(int threads);

// Fewer threads while other processes compete for the cores, when fewer measure faster. With a busy
// process on one of 2 cores, a step of the tiny model took 1.6× as long on 2 threads as on 1: each
// parallel loop waited for the thread the busy process had displaced. The count never changes the
// results (every split of work is fixed by shapes alone), so it may change between steps. The
// governor watches the involuntary context switches of the process (preemptions by another process)
// after each step. Without them it does not act: on the quiet 2-core machine, steps of tens of
// milliseconds and more run at the configured count. With them, it tries the next count down (or
// back up) for one step and keeps it if that step beat the fastest step at the current count since
// the last try: one step slowed by a burst of preemptions (a virtual machine's host) is no measure of
// its count, and against it alone 1 thread had won and then held a quiet 2-thread run of the tiny
// model at 1 thread for 20 steps. So a load that comes in mid-run loses its first try against the
// quiet steps before it and is followed by the next, PROBE_EVERY or more steps on. The first step is
// not judged at all: its first touch of the activations' pages both slows it and preempts it (the
// kernel's page clearing yields; 7-13 involuntary switches in the tiny model's first step on a quiet
// machine), so it had started tries on quiet machines and been their yardstick. A load present from
// the start is met by a try at the third step, which the second, contended, starts.
// While the process is preempted, or runs fewer threads than configured, the run-time schedule is
// dynamic (threads take tiles and heads as they come: a descheduled thread delays a loop by one
// piece at most); otherwise static (see set_threads).
// Tries come at most every `probe_every` steps: PROBE_EVERY; PROBE_RETRY after a first try that
// lost, then PROBE_EVERY doubled after each further loss, up to PROBE_MAX. The quick retry is for
// a try judged against a step that the load happened to spare: in one `make bench` run the busy
// row's 20 steps all ran on 2 threads, at 1.46× the time of 1, its one try lost, most likely to
// such a second step (1 run of 7; the others took 1 thread from the third step on).
// On a machine that stays busy a try at 2 threads is a step at about twice the time, so every 20
// steps they cost 5%; backed off to 160 steps, under 1%, and a load that has gone is noticed
// within 160 steps.
// Steps of a few milliseconds see stray preemptions often enough that it may try fewer threads
// even on a quiet machine; it keeps them only where they are faster (a one-layer d64 model's 2 ms
// steps were).
enum { PROBE_EVERY = 20, PROBE_RETRY = 3, PROBE_MAX = 160 };
typedef struct {
    int max;           // the configured count, never exceeded
    int count;         // the count steps run at
    int trying;        // the count of a try under way, 0 when none
    int since_probe;   // steps since the last try
    int probe_every;   // steps between tries (PROBE_EVERY, PROBE_RETRY, or more after losses)
    int losses;        // tries lost in a row
    int dynamic;       // the next step shares out work dynamically (contended, or a reduced count)
    double step_time;  // seconds of the fastest step at `count` since the last try (0: none yet)
    int started;       // a step has been observed
    long switches;     // the process's involuntary context switches when the step began
} ThreadGovernor;

void governor_init(ThreadGovernor *g, int threads);
// Before a step: its context-switch count. After it: its time; may change the count for the next step.
void governor_step_begin(ThreadGovernor *g);
void governor_step_end(ThreadGovernor *g, double seconds);
// The decision alone: a step of `seconds` during which the process was preempted `switches` times;
// returns the count for the next step (governor_step_end sets it).
int governor_observe(ThreadGovernor *g, double seconds, long switches);

// mkdir -p; 0 or -1 with errno set.
int make_dirs(const char *path);
// Seconds on a monotonic clock.
double now_seconds(void);
// Bytes of memory this process can still allocate without swapping: the kernel's MemAvailable, or
// less under a cgroup (container) limit. 0 when unknown.
double available_memory_bytes(void);

#endif
