// Dense products. Every dense product in the core goes through matmul() (a linear layer's forward
// through matmul_bias()), which is OpenBLAS (sgemm or dgemm by the build's `real`), except, with
// alpha 1 and beta 0 or 1, products of 16, 32 or 64 columns (attention's products over the head
// dimension, linear layers of small models), products of at most 64 rows against a multiple of 16
// columns past 64, neither operand transposed (a block of query rows against the transposed keys),
// in panels of 64 columns, and products of 16, 32 or 64 rows against more than 64 columns with a sum
// of at most 256 terms (the same with an operand transposed; with A alone transposed, a sum of any
// length), which run in matmul.c's own loop where the target's vector registers hold a block of them
// (matmul_narrow_path); and products of a multiple of 64 columns (B transposed: with 32 rows or
// more), in panels of 64, where OpenBLAS runs narrower vectors than that loop or the sum has at most
// 64 terms (matmul_set_panels). Outside a parallel region matmul() cuts the product into tiles
// first, and each tile is judged by its own shape.
// matmul_naive() is the plain-loop reference the tests compare both against.
#ifndef MATMUL_H
#define MATMUL_H

#include "real.h"

// C = alpha * op(A) * op(B) + beta * C, all row-major.
// op(A) is (M,K): A is (M,K) with row stride lda, or (K,M) when trans_a.
// op(B) is (K,N): B is (K,N) with row stride ldb, or (N,K) when trans_b.
// C is (M,N) with row stride ldc.
// Outside a parallel region a large product is cut into tiles by its shape (never by the thread
// count, so results do not depend on it) that OpenMP threads share by the run-time schedule (static
// or dynamic, see set_threads in system.h); inside one it is a single product (OpenBLAS's or the own
// loop's) on the calling thread, so callers may parallelise over independent products without
// oversubscription. "Outside" is relative to the calling thread's top level (matmul_set_top_level).
void matmul(int trans_a, int trans_b, int M, int N, int K, real alpha, const real *A, int lda,
            const real *B, int ldb, real beta, real *C, int ldc);
// The OpenMP nesting level at which the calling thread's products count as outside any parallel
// region (0 until set). A thread that runs a whole model's passes as one task of a parallel loop
// (micro.c's replicas) sets it to its level, so that its products are cut into the same tiles and
// K slices as at the top, in the same order on its one thread, and give the same bits; products
// inside its own parallel loops (attention's heads) still run whole.
void matmul_set_top_level(int level);
// C = A·Bᵀ + bias, the row bias (N) added to every row: A (M,K), B (N,K), C (M,N), row strides lda,
// ldb, ldc. The own loop sums each row from the bias, which saves copying it into C first (a pass
// over C, then read back by the product); OpenBLAS products get that copy.
void matmul_bias(int M, int N, int K, const real *A, int lda, const real *B, int ldb, const real *bias, real *C,
                 int ldc);
// A tally of the products' time and FLOPs, for the benchmark's account of where a step's time goes
// (bench --products). matmul_profile(1) zeroes it and starts counting, 0 stops (the default: then a
// product pays one relaxed load of a flag) and leaves it to read. Seconds are the step's own: a
// product's wall time, divided inside parallel regions by the threads running beside it (so on 1
// thread, the time the step spent in products); flops are 2·M·N·K a product.
typedef struct {
    double seconds, flops;
    long long calls;
} MatmulProfile;
void matmul_profile(int on);
MatmulProfile matmul_profile_read(void);
// Which vectors this build's own loop uses and which column counts it takes, for test output.
const char *matmul_narrow_path(void);
// Products of more than 64 columns, a multiple of 64, run in panels of 64 through the own loop when
// this build has AVX-512 and OpenBLAS's kernel does not (on = -1, the default); 1 and 0 force them
// on or off (where the build has the loop; the shapes they take stay the same), for tests. Not while
// a product runs. The short products (at most 64 rows) and sums of at most 64 terms take their
// panels either way.
void matmul_set_panels(int on);
// dst (cols,rows) = srcᵀ, src (rows,cols): for an operand many products read transposed (attention's
// keys and values of a head, against each block of query rows), copied once so that each product
// reads it untransposed.
void matmul_transpose(real *dst, int ldd, const real *src, int lds, int rows, int cols);
// The row stride to give such a copy of n columns: n rounded up to an odd number of 64-byte lines,
// so that the rows a product reads in turn fall into different sets of L1.
int matmul_copy_stride(int n);
void matmul_naive(int trans_a, int trans_b, int M, int N, int K, real alpha, const real *A, int lda,
                  const real *B, int ldb, real beta, real *C, int ldc);

#endif
