#include "dist.h"

#include <stdlib.h>

void dist_block(long n, int rank, int size, long *lo, long *hi) {
    long base = n / size, extra = n % size;
    *lo = rank * base + (rank < extra ? rank : extra);
    *hi = *lo + base + (rank < extra);
}

#ifdef USE_MPI
#include <limits.h>
#include <string.h>

#include <mpi.h>

#ifdef REAL_DOUBLE
#define MPI_REAL_T MPI_DOUBLE
#else
#define MPI_REAL_T MPI_FLOAT
#endif

static int rank_, size_ = 1;
static double reduce_seconds;
// dist_sum_reals' buffers, kept between steps: the copies of this rank's block from every rank,
// and the per-rank counts and offsets of the exchanges.
static real *copies;
static long copies_len;
static int *counts, *offsets, *block_counts, *block_offsets;

void dist_init(int *argc, char ***argv) {
    MPI_Init(argc, argv);
    MPI_Comm_rank(MPI_COMM_WORLD, &rank_);
    MPI_Comm_size(MPI_COMM_WORLD, &size_);
}

void dist_finalize(void) {
    free(copies);
    free(counts);
    free(offsets);
    free(block_counts);
    free(block_offsets);
    MPI_Finalize();
}

int dist_rank(void) { return rank_; }
int dist_size(void) { return size_; }
int dist_built_with_mpi(void) { return 1; }
void dist_abort(int code) {
    if (size_ > 1) MPI_Abort(MPI_COMM_WORLD, code);
}

// The counts and offsets of n values in dist_block's blocks, one per rank.
static int block_layout(long n, int *count, int *offset) {
    for (int r = 0; r < size_; r++) {
        long lo, hi;
        dist_block(n, r, size_, &lo, &hi);
        if (hi > INT_MAX) return -1;  // MPI counts are ints
        count[r] = (int)(hi - lo);
        offset[r] = (int)lo;
    }
    return 0;
}

static int alloc_layouts(void) {
    if (counts) return 0;
    counts = malloc(sizeof *counts * size_);
    offsets = malloc(sizeof *offsets * size_);
    block_counts = malloc(sizeof *block_counts * size_);
    block_offsets = malloc(sizeof *block_offsets * size_);
    return counts && offsets && block_counts && block_offsets ? 0 : -1;
}

// An all-reduce made of an all-to-all (each rank gets every rank's copy of its block), a sum in rank
// order, and an all-gather: MPI_Allreduce would be as fast, but its order of addition depends on the
// algorithm the library picks for N and n, so its bits would match neither a single process nor
// another N.
int dist_sum_reals(real *buf, long n) {
    if (size_ == 1) return 0;
    double t0 = MPI_Wtime();
    if (alloc_layouts() != 0 || block_layout(n, block_counts, block_offsets) != 0) return -1;
    long lo, hi;
    dist_block(n, rank_, size_, &lo, &hi);
    long mine = hi - lo;
    if (copies_len < mine * size_) {
        free(copies);
        copies = malloc(sizeof *copies * (size_t)(mine * size_ > 0 ? mine * size_ : 1));
        copies_len = copies ? mine * size_ : 0;
        if (!copies) return -1;
    }
    for (int r = 0; r < size_; r++) {
        counts[r] = (int)mine;
        offsets[r] = (int)(r * mine);
    }
    MPI_Alltoallv(buf, block_counts, block_offsets, MPI_REAL_T, copies, counts, offsets, MPI_REAL_T,
                  MPI_COMM_WORLD);
    real *sum = buf + lo;
    for (long i = 0; i < mine; i++) sum[i] = copies[i];
    for (int r = 1; r < size_; r++) {
        const real *c = copies + r * mine;
        for (long i = 0; i < mine; i++) sum[i] += c[i];
    }
    MPI_Allgatherv(MPI_IN_PLACE, 0, MPI_REAL_T, buf, block_counts, block_offsets, MPI_REAL_T, MPI_COMM_WORLD);
    reduce_seconds += MPI_Wtime() - t0;
    return 0;
}

void dist_sum_longs(long *v, int n) {
    if (size_ > 1) MPI_Allreduce(MPI_IN_PLACE, v, n, MPI_LONG, MPI_SUM, MPI_COMM_WORLD);
}

int dist_max_int(int v) {
    if (size_ > 1) MPI_Allreduce(MPI_IN_PLACE, &v, 1, MPI_INT, MPI_MAX, MPI_COMM_WORLD);
    return v;
}

void dist_gather_doubles(const double *mine, long n_mine, double *all) {
    if (size_ == 1) {
        memmove(all, mine, sizeof *all * (size_t)n_mine);
        return;
    }
    if (alloc_layouts() != 0 || n_mine > INT_MAX) dist_abort(1);
    int n = (int)n_mine;
    MPI_Allgather(&n, 1, MPI_INT, counts, 1, MPI_INT, MPI_COMM_WORLD);
    for (int r = 0; r < size_; r++) offsets[r] = r ? offsets[r - 1] + counts[r - 1] : 0;
    MPI_Allgatherv(mine, n, MPI_DOUBLE, all, counts, offsets, MPI_DOUBLE, MPI_COMM_WORLD);
}

void dist_broadcast(void *buf, long bytes) {
    if (size_ == 1) return;
    for (char *p = buf; bytes > 0; p += INT_MAX / 2, bytes -= INT_MAX / 2)
        MPI_Bcast(p, (int)(bytes < INT_MAX / 2 ? bytes : INT_MAX / 2), MPI_BYTE, 0, MPI_COMM_WORLD);
}

double dist_take_reduce_seconds(void) {
    double s = reduce_seconds;
    reduce_seconds = 0;
    return s;
}

#else  // a job of one process

#include <string.h>

void dist_init(int *argc, char ***argv) {
    (void)argc;
    (void)argv;
}
void dist_finalize(void) {}
int dist_rank(void) { return 0; }
int dist_size(void) { return 1; }
int dist_built_with_mpi(void) { return 0; }
void dist_abort(int code) { (void)code; }
int dist_sum_reals(real *buf, long n) {
    (void)buf;
    (void)n;
    return 0;
}
void dist_sum_longs(long *v, int n) {
    (void)v;
    (void)n;
}
int dist_max_int(int v) { return v; }
void dist_gather_doubles(const double *mine, long n_mine, double *all) {
    memmove(all, mine, sizeof *all * (size_t)n_mine);
}
void dist_broadcast(void *buf, long bytes) {
    (void)buf;
    (void)bytes;
}
double dist_take_reduce_seconds(void) { return 0; }

#endif
