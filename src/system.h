// What the programs need from the operating system: one thread count for OpenMP and OpenBLAS,
// folders, a monotonic clock and the memory available.
#ifndef SYSTEM_H
#define SYSTEM_H

// Uses `threads` OpenMP threads (0 = every core) for the loops and the products, whose tiles matmul()
// hands to single-threaded OpenBLAS calls; returns the count.
int set_threads(int threads);
// mkdir -p; 0 or -1 with errno set.
int make_dirs(const char *path);
// Seconds on a monotonic clock.
double now_seconds(void);
// Bytes of memory this process can still allocate without swapping: the kernel's MemAvailable, or
// less under a cgroup (container) limit. 0 when unknown.
double available_memory_bytes(void);

#endif
