// Data parallelism across processes: `mpirun -np N ./train` (README, "Several processes: MPI").
// This is the only file pair that knows MPI. Built without it (the default, `make`), every call is
// the identity of a job of one process, so the rest of the program has no #ifdef.
//
// Every reduction of floating-point values here runs in rank order, whatever algorithm the MPI
// library picks, so that N ranks give the bits of a single process that sums the same parts in the
// same order (README, "Which runs are equal").
#ifndef DIST_H
#define DIST_H

#include "real.h"

// Starts MPI when built with it (a ./train started without mpirun is a job of one rank).
void dist_init(int *argc, char ***argv);
// Ends MPI; call once, at the end of main, on every rank.
void dist_finalize(void);
int dist_rank(void);  // this process, 0..dist_size()-1
int dist_size(void);  // processes in the job
int dist_built_with_mpi(void);
// Stops every rank of the job at once with exit status `code` (a failure only this rank saw: the
// others may be waiting in a collective call). Returns only in a job of one rank.
void dist_abort(int code);

// The items [*lo, *hi) of n that `rank` takes when n items are split in contiguous blocks, the
// first n % size ranks taking one more.
void dist_block(long n, int rank, int size, long *lo, long *hi);

// buf[0..n) := the sum over ranks of every rank's buf, added in rank order ((r0 + r1) + r2 ...),
// identically on every rank. Each rank sums the block of the buffer it owns (dist_block) from the
// other ranks' copies and the blocks are then shared back: each rank sends and receives about
// 2 (N-1)/N × n values, as a ring all-reduce does. Returns 0, or -1 when out of memory.
int dist_sum_reals(real *buf, long n);
// The same for integer counts (exact in any order) and for one int flag's maximum.
void dist_sum_longs(long *v, int n);
int dist_max_int(int v);
// all := every rank's mine[0..n_mine) put side by side in rank order, on every rank (all holds the
// sum of the ranks' n_mine).
void dist_gather_doubles(const double *mine, long n_mine, double *all);
// Copies rank 0's buf[0..bytes) to every rank.
void dist_broadcast(void *buf, long bytes);

// Seconds spent in dist_sum_reals since the last call (0 in a job of one rank).
double dist_take_reduce_seconds(void);

#endif
