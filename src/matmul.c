#include "matmul.h"

#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cblas.h>

// Products whose result has 16 or 32 columns: attention's α·V, dS·K, αᵀ·G and dSᵀ·Q when the head
// dimension is 16 or 32 (every CPU-scale config). OpenBLAS copies ("packs") the (rows × keys) operand
// before every such product, a copy per 16 or 32 multiply-adds, which made these products the least
// efficient of the tiny model's step; this loop reads it in place. A block of NARROW_ROWS rows of C
// is held in registers as vectors of 16 values, and each row k of B, loaded once, is multiplied by
// the block's NARROW_ROWS elements of column k of op(A): C[m] = Σ_k op(A)[m][k]·B[k], summed in k
// order from C (or 0).
// The vectors are GCC's generic ones, which the compiler maps onto whatever the target has (one
// AVX-512 register, two AVX2 ones, four SSE ones), with fused multiply-adds where it has them; the
// order of the sums is the same on every target (only fused and separate multiply-adds round apart).
#pragma GCC push_options
#pragma GCC optimize("fp-contract=fast")  // -std=c11 turns contraction off; the loop's speed is its FMAs
typedef real vec16 __attribute__((vector_size(16 * sizeof(real))));
enum { NARROW_ROWS = 4 };

// Rows [m0, m0 + rows) of C, nv vectors (16·nv columns) each. rows and nv are constants at every call,
// so the accumulators are registers once the loops are unrolled.
static inline __attribute__((always_inline)) void narrow_rows(int rows, int nv, int trans_a, int m0, int K,
                                                              const real *A, int lda, const real *B, int ldb,
                                                              int accumulate, real *C, int ldc) {
    vec16 acc[NARROW_ROWS][2];
    // vectors are copied in and out with memcpy (unaligned; no function passes one by value, whose ABI
    // would depend on the target's vector width)
    for (int r = 0; r < rows; r++)
        for (int v = 0; v < nv; v++) {
            acc[r][v] = (vec16){0};
            if (accumulate) memcpy(&acc[r][v], C + (long)(m0 + r) * ldc + 16 * v, sizeof(vec16));
        }
    for (int k = 0; k < K; k++) {
        vec16 b[2];
        for (int v = 0; v < nv; v++) memcpy(&b[v], B + (long)k * ldb + 16 * v, sizeof(vec16));
        for (int r = 0; r < rows; r++) {
            real a = trans_a ? A[(long)k * lda + m0 + r] : A[(long)(m0 + r) * lda + k];
            for (int v = 0; v < nv; v++) acc[r][v] += a * b[v];
        }
    }
    for (int r = 0; r < rows; r++)
        for (int v = 0; v < nv; v++) memcpy(C + (long)(m0 + r) * ldc + 16 * v, &acc[r][v], sizeof(vec16));
}

static inline __attribute__((always_inline)) void narrow_product(int nv, int trans_a, int M, int K, const real *A,
                                                                 int lda, const real *B, int ldb, int accumulate,
                                                                 real *C, int ldc) {
    int m = 0;
    for (; m + NARROW_ROWS <= M; m += NARROW_ROWS)
        narrow_rows(NARROW_ROWS, nv, trans_a, m, K, A, lda, B, ldb, accumulate, C, ldc);
    for (; m < M; m++) narrow_rows(1, nv, trans_a, m, K, A, lda, B, ldb, accumulate, C, ldc);
}

// C = op(A)·B (+ C when accumulate), C of 16 or 32 columns.
static void narrow_gemm(int trans_a, int M, int N, int K, const real *A, int lda, const real *B, int ldb,
                        int accumulate, real *C, int ldc) {
    if (N == 16)
        narrow_product(1, trans_a, M, K, A, lda, B, ldb, accumulate, C, ldc);
    else
        narrow_product(2, trans_a, M, K, A, lda, B, ldb, accumulate, C, ldc);
}
#pragma GCC pop_options

// One product: the narrow loop above where it applies, else one OpenBLAS call (single-threaded inside
// a parallel region, see set_threads).
static void gemm(int trans_a, int trans_b, int M, int N, int K, real alpha, const real *A, int lda,
            const real *B, int ldb, real beta, real *C, int ldc) {
    if ((N == 16 || N == 32) && !trans_b && alpha == 1 && (beta == 0 || beta == 1)) {
        narrow_gemm(trans_a, M, N, K, A, lda, B, ldb, beta == 1, C, ldc);
        return;
    }
#ifdef REAL_DOUBLE
    cblas_dgemm(CblasRowMajor, trans_a ? CblasTrans : CblasNoTrans, trans_b ? CblasTrans : CblasNoTrans,
                M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
#else
    cblas_sgemm(CblasRowMajor, trans_a ? CblasTrans : CblasNoTrans, trans_b ? CblasTrans : CblasNoTrans,
                M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
#endif
}

// Threads: OpenBLAS's own threading splits one product between threads that wait for each other
// inside it (they share packed panels); when another process holds a core, every product then waits
// for a descheduled thread, and 2 threads ran several times slower than 1. So a large product is cut
// here into independent tiles, and OpenMP threads take tiles as they come (schedule dynamic): a
// descheduled thread delays the product by one tile at most. Each tile is one single-threaded
// OpenBLAS call. The cut depends on the shape alone, never on the thread count, so neither do the
// results: rows of C when M is large, else columns when N is; when the summed dimension dominates
// (weight gradients sum over every token) it is cut into K_TILES slices whose products go to
// scratch and are added in slice order.
enum { TILE_MIN = 256, MAX_TILES = 8, K_TILES = 4, K_MIN = 2048 };

static real *scratch;
static long scratch_size;

static real *scratch_for(long n) {
    if (n > scratch_size) {
        free(scratch);
        scratch = malloc(sizeof(real) * n);
        if (!scratch) {
            fprintf(stderr, "matmul.c: out of memory for %.1f MB of partial products\n", sizeof(real) * n / 1e6);
            exit(1);
        }
        scratch_size = n;
    }
    return scratch;
}

// Tile length for a dimension of n: at most MAX_TILES tiles of at least TILE_MIN, multiples of 64.
static int tile_of(int n) {
    int t = (n + MAX_TILES - 1) / MAX_TILES;
    t = (t + 63) / 64 * 64;
    return t < TILE_MIN ? TILE_MIN : t;
}

// C = alpha·Σ_s A_s·B_s + beta·C over slices s of K, the slices' products summed in order.
static void matmul_k_sliced(int trans_a, int trans_b, int M, int N, int K, real alpha, const real *A, int lda,
                            const real *B, int ldb, real beta, real *C, int ldc) {
    int kt = (K + K_TILES - 1) / K_TILES;
    long mn = (long)M * N;
    real *part = scratch_for(K_TILES * mn);
#pragma omp parallel for schedule(dynamic, 1)
    for (int s = 0; s < K_TILES; s++) {
        int k0 = s * kt, k1 = k0 + kt < K ? k0 + kt : K;
        const real *As = trans_a ? A + (long)k0 * lda : A + k0, *Bs = trans_b ? B + k0 : B + (long)k0 * ldb;
        gemm(trans_a, trans_b, M, N, k1 - k0, 1, As, lda, Bs, ldb, 0, part + s * mn, N);
    }
#pragma omp parallel for schedule(static)
    for (int m = 0; m < M; m++) {
        real *c = C + (long)m * ldc;
        for (int n = 0; n < N; n++) {
            real sum = part[(long)m * N + n];
            for (int s = 1; s < K_TILES; s++) sum += part[s * mn + (long)m * N + n];
            c[n] = alpha * sum + (beta == 0 ? 0 : beta * c[n]);
        }
    }
}

void matmul(int trans_a, int trans_b, int M, int N, int K, real alpha, const real *A, int lda, const real *B,
            int ldb, real beta, real *C, int ldc) {
    if (omp_get_level() > 0) {  // already one task of a parallel loop (attention's heads)
        gemm(trans_a, trans_b, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
        return;
    }
    int big = M > N ? M : N;
    if (K >= K_MIN && K >= 2 * big) {
        matmul_k_sliced(trans_a, trans_b, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
        return;
    }
    int by_rows = M >= N, len = by_rows ? M : N, t = tile_of(len), tiles = (len + t - 1) / t;
#pragma omp parallel for schedule(dynamic, 1) if (tiles > 1)
    for (int i = 0; i < tiles; i++) {
        int a = i * t, w = a + t < len ? t : len - a;
        if (by_rows)
            gemm(trans_a, trans_b, w, N, K, alpha, trans_a ? A + a : A + (long)a * lda, lda, B, ldb, beta,
                 C + (long)a * ldc, ldc);
        else
            gemm(trans_a, trans_b, M, w, K, alpha, A, lda, trans_b ? B + (long)a * ldb : B + a, ldb, beta, C + a,
                 ldc);
    }
}

void matmul_naive(int trans_a, int trans_b, int M, int N, int K, real alpha, const real *A, int lda,
                  const real *B, int ldb, real beta, real *C, int ldc) {
    for (int m = 0; m < M; m++) {
        for (int n = 0; n < N; n++) {
            double acc = 0.0;
            for (int k = 0; k < K; k++) {
                real a = trans_a ? A[(long)k * lda + m] : A[(long)m * lda + k];
                real b = trans_b ? B[(long)n * ldb + k] : B[(long)k * ldb + n];
                acc += (double)a * b;
            }
            real *c = &C[(long)m * ldc + n];
            *c = (real)(alpha * acc + (beta == 0 ? 0.0 : beta * *c));
        }
    }
}
