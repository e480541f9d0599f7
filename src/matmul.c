#include "matmul.h"

#include <cblas.h>

void matmul(int trans_a, int trans_b, int M, int N, int K, real alpha, const real *A, int lda,
            const real *B, int ldb, real beta, real *C, int ldc) {
#ifdef REAL_DOUBLE
    cblas_dgemm(CblasRowMajor, trans_a ? CblasTrans : CblasNoTrans, trans_b ? CblasTrans : CblasNoTrans,
                M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
#else
    cblas_sgemm(CblasRowMajor, trans_a ? CblasTrans : CblasNoTrans, trans_b ? CblasTrans : CblasNoTrans,
                M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
#endif
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
