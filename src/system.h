// What the programs need from the operating system: one thread count for OpenMP and OpenBLAS,
// folders, a monotonic clock and the memory available.
#ifndef SYSTEM_H
#define SYSTEM_H

// Uses `threads` OpenMP threads (0 = every core) for the loops and the products, whose tiles matmul()
// hands to single-threaded OpenBLAS calls; returns the count.
int set_threads(int threads);

// Fewer threads while other processes compete for the cores, when fewer measure faster. With a busy
// process on one of 2 cores, a step of the tiny model took 1.6× as long on 2 threads as on 1: each
// parallel loop waited for the thread the busy process had displaced. The count never changes the
// results (every split of work is fixed by shapes alone), so it may change between steps. The
// governor watches the involuntary context switches of the process (preemptions by another process)
// after each step. Without them it does not act: on the quiet 2-core machine, steps of tens of
// milliseconds and more run at the configured count. With them, it tries the next count down (or
// back up) for one step at most every PROBE_EVERY steps and keeps whichever ran the step faster.
// Steps of a few milliseconds see stray preemptions often enough that it may try fewer threads
// even on a quiet machine; it keeps them only where they are faster (a one-layer d64 model's 2 ms
// steps were).
enum { PROBE_EVERY = 20 };
typedef struct {
    int max;           // the configured count, never exceeded
    int count;         // the count steps run at
    int trying;        // the count of a probe step under way, 0 when none
    int since_probe;   // steps since the last probe
    double step_time;  // seconds of the latest step at `count`
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
