// What the programs need from the operating system: one thread count for OpenMP and OpenBLAS,
// folders, and a monotonic clock.
#ifndef SYSTEM_H
#define SYSTEM_H

// Uses `threads` threads for OpenMP loops and OpenBLAS products (0 = every core); returns the count.
int set_threads(int threads);
// mkdir -p; 0 or -1 with errno set.
int make_dirs(const char *path);
// Seconds on a monotonic clock.
double now_seconds(void);

#endif
