// Float-build tests of the layers: OpenBLAS matmul against the plain-loop reference, dropout's
// statistics and determinism, GELU's float accuracy, and bit-identical results at 1, 2 and 3
// threads for the layers whose reductions are meant to be scheduling-independent.
#include <float.h>
#include <omp.h>
#include <stdint.h>

#include "check.h"
#include "layers.h"
#include "matmul.h"
#include "rng.h"

static unsigned long long seed = 0x9e3779b9ULL;
static int default_threads;  // restored after each test that changes the thread count

static float *alloc_fill(long n, double scale) {
    float *x = malloc(sizeof(float) * n);
    for (long i = 0; i < n; i++) x[i] = (float)(scale * check_rand(&seed));
    return x;
}

// Bit-for-bit equality; prints the first difference and where.
static int check_bits(const char *what, const float *got, const float *want, long n) {
    long first = -1;
    for (long i = 0; i < n && first < 0; i++)
        if (memcmp(&got[i], &want[i], sizeof(float)) != 0) first = i;
    if (first < 0) printf("     %-48s bit-identical (%ld values)\n", what, n);
    CHECK(first < 0, "%s: first difference at [%ld]: got %.9g, want %.9g", what, first,
          first < 0 ? 0.0 : (double)got[first], first < 0 ? 0.0 : (double)want[first]);
    return first < 0;
}

// ---------------------------------------------------------------------------------------------
// matmul (OpenBLAS) against matmul_naive (double accumulation).
//
// Tolerance: a bound that holds for every order of summation, blocking and use of FMA, so that no
// CPU or OpenBLAS kernel can exceed it (a statistical sqrt(K) bound could be). OpenBLAS forms
// alpha * sum_k a_k b_k + beta * c; each of those K + 1 terms passes through at most one rounded
// product, one scaling by alpha or beta and K additions, so the error is at most
// gamma_{K+2} * S (Higham, Accuracy and Stability of Numerical Algorithms, 3.1), gamma_n = n u / (1 - n u),
// u = 2^-24, S = |alpha| sum_k |a_k b_k| + |beta c| the magnitude of what is summed; the reference
// (double sums, then one rounding to float) adds u * S. We allow (K + 4) u S per element: 1e-6..2e-5
// relative to S here, while a wrong transpose, leading dimension, alpha or beta misses by O(S).

static void matmul_case(int ta, int tb, int M, int N, int K, int pad, float alpha, float beta, int in_region) {
    // Stored shapes: A is (M,K) or (K,M), B is (K,N) or (N,K); each row padded by `pad` values
    // so the leading dimensions exceed the widths (sub-blocks of a larger matrix). in_region: called
    // from inside a parallel region, as attention calls it, where matmul takes the whole product
    // without cutting it into tiles.
    int ar = ta ? K : M, ac = ta ? M : K, br = tb ? N : K, bc = tb ? K : N;
    int lda = ac + pad, ldb = bc + pad, ldc = N + pad;
    float *A = alloc_fill((long)ar * lda, 1.0), *B = alloc_fill((long)br * ldb, 1.0);
    float *C0 = alloc_fill((long)M * ldc, 1.0);
    if (beta == 0)  // beta 0 must not read C: NaN there must not leak into the result
        for (long i = 0; i < (long)M * ldc; i++) C0[i] = NAN;
    float *Cb = malloc(sizeof(float) * M * ldc), *Cn = malloc(sizeof(float) * M * ldc);
    memcpy(Cb, C0, sizeof(float) * M * ldc);
    memcpy(Cn, C0, sizeof(float) * M * ldc);
#pragma omp parallel num_threads(1) if (in_region)
    matmul(ta, tb, M, N, K, alpha, A, lda, B, ldb, beta, Cb, ldc);
    matmul_naive(ta, tb, M, N, K, alpha, A, lda, B, ldb, beta, Cn, ldc);

    const double u = 0x1.0p-24;
    long worst = -1, pad_touched = 0;
    double worst_ratio = 0, worst_err = 0;
    for (int m = 0; m < M; m++) {
        for (int n = 0; n < ldc; n++) {
            long i = (long)m * ldc + n;
            if (n >= N) {  // padding of C must be left alone
                pad_touched += memcmp(&Cb[i], &C0[i], sizeof(float)) != 0;
                continue;
            }
            double S = beta == 0 ? 0.0 : fabs((double)beta * C0[i]);
            for (int k = 0; k < K; k++) {
                float a = ta ? A[(long)k * lda + m] : A[(long)m * lda + k];
                float b = tb ? B[(long)n * ldb + k] : B[(long)k * ldb + n];
                S += fabs((double)alpha * a * b);
            }
            double err = fabs((double)Cb[i] - Cn[i]), ratio = err / ((K + 4) * u * S + 1e-30);
            if (!(ratio <= worst_ratio) || worst < 0) worst_ratio = ratio, worst_err = err, worst = i;
        }
    }
    printf("     matmul ta=%d tb=%d M=%-3d N=%-3d K=%-3d pad=%d alpha=%+.2f beta=%+.2f%s: worst |err| %.2e at "
           "[%ld,%ld], %.3f of tolerance\n",
           ta, tb, M, N, K, pad, alpha, beta, in_region ? " (in a parallel region)" : "", worst_err, worst / ldc,
           worst % ldc, worst_ratio);
    CHECK(worst_ratio <= 1.0, "matmul ta=%d tb=%d M=%d N=%d K=%d: worst error %.3e at [%ld,%ld] exceeds (K + 4) u S",
          ta, tb, M, N, K, worst_err, worst / ldc, worst % ldc);
    CHECK(pad_touched == 0, "matmul wrote %ld values of C's padding (columns >= N)", pad_touched);
    free(A), free(B), free(C0), free(Cb), free(Cn);
}

static void test_matmul_vs_naive(void) {
    for (int ta = 0; ta < 2; ta++) {
        for (int tb = 0; tb < 2; tb++) {
            matmul_case(ta, tb, 37, 23, 51, 0, 1.0f, 0.0f, 0);
            matmul_case(ta, tb, 37, 23, 51, 5, 0.7f, -0.4f, 0);
            matmul_case(ta, tb, 5, 130, 300, 3, -1.3f, 1.0f, 0);  // long K, several OpenBLAS blocks
            matmul_case(ta, tb, 129, 1, 17, 2, 1.0f, 0.0f, 0);     // a matrix-vector shape
            // shapes matmul() cuts into tiles (matmul.c): rows, columns, slices of K
            matmul_case(ta, tb, 1100, 9, 21, 1, 0.7f, -0.4f, 0);
            matmul_case(ta, tb, 7, 1300, 19, 2, 1.0f, 0.0f, 0);
            matmul_case(ta, tb, 13, 6, 4100, 3, -1.3f, 1.0f, 0);
            matmul_case(ta, tb, 11, 5, 2050, 0, 1.0f, 0.0f, 0);
            // 16, 32 and 64 columns, alpha 1, beta 0 or 1: matmul.c's own loop where the build's
            // vectors take that width (row blocks of 8 or 6 where the registers hold them, of 4, and a
            // tail; with tb = 1 through copies of B's transpose, in slices of K when K·N is large),
            // other alphas to OpenBLAS
            for (int N = 16; N <= 64; N *= 2) {
                matmul_case(ta, tb, 67, N, 45, 3, 1.0f, 0.0f, 0);
                matmul_case(ta, tb, 64, N, 128, 0, 1.0f, 1.0f, 0);
                matmul_case(ta, tb, 3, N, 1, 16, 1.0f, 1.0f, 0);
                matmul_case(ta, tb, 13, N, 20, 1, 1.0f, 1.0f, 0);  // blocks of 8, 6 or 4 rows and a single one
                matmul_case(ta, tb, 33, N, 70, 1, 0.5f, 1.0f, 0);
                matmul_case(ta, tb, 1030, N, 9, 0, 1.0f, 1.0f, 0);  // cut into tiles of rows first
                matmul_case(ta, tb, 24, N, 2100, 2, 1.0f, 1.0f, 0);  // slices of K (weight gradients)
                matmul_case(ta, tb, 24, N, 700, 1, 1.0f, 0.0f, 0);   // one product, B's transpose in slices
            }
            // 16, 32 and 64 rows against more than 64 columns, K <= 256 (any K with A alone transposed:
            // 257 and 1000, the sum in chunks): the own loop on the transposed product where the build
            // has it, in pieces of 128 columns (250: two, the second ending in columns narrower than a
            // vector; matmul() passes up to 256 columns at once), OpenBLAS for longer sums
            for (int M = 16; M <= 64; M *= 2) {
                matmul_case(ta, tb, M, 250, 64, 1, 1.0f, 0.0f, 0);
                matmul_case(ta, tb, M, 65, 16, 0, 1.0f, 1.0f, 0);
                matmul_case(ta, tb, M, 256, 1, 3, 1.0f, 1.0f, 0);
                matmul_case(ta, tb, M, 129, 256, 2, 1.0f, 0.0f, 0);
                matmul_case(ta, tb, M, 100, 257, 0, 1.0f, 1.0f, 0);
                matmul_case(ta, tb, M, 600, 64, 2, 1.0f, 1.0f, 1);  // 5 pieces, the last narrower than a vector
                matmul_case(ta, tb, M, 383, 16, 0, 1.0f, 0.0f, 1);
                matmul_case(ta, tb, M, 192, 1000, 1, 1.0f, 1.0f, 1);
            }
        }
    }
}

// Multiples of 64 columns (more than 64), alpha 1, beta 0 or 1: panels of 64 through the own loop
// where the build has it, with the panels forced on and then off (by default they follow OpenBLAS's
// kernel), so both paths are checked on any machine: rows cut into tiles (1030), K cut into slices
// (2100), B transposed (a copy of each panel's Bᵀ, in slices of K past 256; with fewer than 32 rows, or
// A transposed too, to OpenBLAS), A transposed (copies of 96 columns × 256 rows of A), inside a
// parallel region (one whole product); other alphas and widths to OpenBLAS.
// At most 64 rows against a multiple of 16 columns past 64, neither transposed (a block of query rows
// against the transposed keys): panels of 64 and a last one of 16, 32 or 48 (as 32 and 16) through
// the own loop wherever the build has 64-column rows, whatever OpenBLAS's kernel; the neighbouring
// shapes (odd width, 65 rows, B transposed) go elsewhere and must agree too.
static void test_matmul_short(void) {
    static const int widths[] = {80, 96, 112, 128, 528};
    for (int on = 1; on >= 0; on--) {
        matmul_set_panels(on);
        for (int w = 0; w < 5; w++)
            for (int M = 1; M <= 64; M += 21) {
                matmul_case(0, 0, M, widths[w], 64, w % 3, 1.0f, (float)(w % 2), w == 2);
                matmul_case(0, 0, M, widths[w], 16, 1, 1.0f, 1.0f, 1);
            }
        matmul_case(0, 0, 32, 100, 64, 0, 1.0f, 0.0f, 1);
        matmul_case(0, 0, 65, 96, 64, 0, 1.0f, 1.0f, 1);
        matmul_case(0, 1, 32, 96, 64, 0, 1.0f, 0.0f, 1);
    }
    matmul_set_panels(-1);
}

// matmul_bias (C = A·Bᵀ + bias in every row) against the plain loop: the own loop summing from the
// bias row (16, 32, 64 columns; multiples of 64 in panels, forced on and off), OpenBLAS after copying
// it (other widths), slices of K, tiles of columns (the bias offset with them), a parallel region.
static void test_matmul_bias(void) {
    static const int shapes[][4] = {  // M, N, K, in a parallel region
        {37, 16, 51, 0}, {70, 64, 40, 0}, {70, 64, 40, 1}, {33, 192, 70, 0}, {40, 128, 300, 1},
        {5, 128, 64, 0}, {9, 23, 17, 0}, {24, 20, 5000, 0}, {7, 1300, 19, 0}, {1030, 64, 9, 0},
        {1100, 128, 300, 0}};
    for (int on = 1; on >= 0; on--) {
        matmul_set_panels(on);
        for (int s = 0; s < 11; s++) {
            int M = shapes[s][0], N = shapes[s][1], K = shapes[s][2], lda = K + 1, ldb = K + 2, ldc = N + 3;
            float *A = alloc_fill((long)M * lda, 1.0), *B = alloc_fill((long)N * ldb, 1.0);
            float *bias = alloc_fill(N, 2.0), *C = alloc_fill((long)M * ldc, 1.0);
            float *pad = malloc(sizeof(float) * M * ldc);
            memcpy(pad, C, sizeof(float) * M * ldc);
            if (shapes[s][3]) {
#pragma omp parallel num_threads(1)
                matmul_bias(M, N, K, A, lda, B, ldb, bias, C, ldc);
            } else {
                matmul_bias(M, N, K, A, lda, B, ldb, bias, C, ldc);
            }
            double worst = 0;
            long touched = 0;
            for (int m = 0; m < M; m++) {
                for (int n = 0; n < N; n++) {
                    double want = bias[n], mag = fabs((double)bias[n]);
                    for (int k = 0; k < K; k++) {
                        double t = (double)A[(long)m * lda + k] * B[(long)n * ldb + k];
                        want += t, mag += fabs(t);
                    }
                    double ratio = fabs(C[(long)m * ldc + n] - want) / ((K + 4) * 0x1.0p-24 * mag + 1e-30);
                    worst = ratio > worst || ratio != ratio ? ratio : worst;
                }
                for (int n = N; n < ldc; n++) touched += memcmp(&C[(long)m * ldc + n], &pad[(long)m * ldc + n], 4) != 0;
            }
            printf("     matmul_bias M=%-4d N=%-4d K=%-4d panels %s%s: worst error %.3f of tolerance\n", M, N, K,
                   on ? "on " : "off", shapes[s][3] ? " (in a parallel region)" : "", worst);
            CHECK(worst <= 1.0, "matmul_bias M=%d N=%d K=%d: error %.3f of (K + 4) u S", M, N, K, worst);
            CHECK(touched == 0, "matmul_bias M=%d N=%d K=%d wrote %ld values of C's padding", M, N, K, touched);
            free(A), free(B), free(bias), free(C), free(pad);
        }
    }
    matmul_set_panels(-1);
}

// matmul_transpose against the plain loop: vector tiles where the build has them, then the tail
// columns and rows; dst's padding columns stay as they were.
static void test_matmul_transpose(void) {
    static const int shapes[][2] = {{128, 16}, {512, 64}, {37, 20}, {15, 64}, {33, 17}};
    for (int s = 0; s < 5; s++) {
        int rows = shapes[s][0], cols = shapes[s][1], lds = cols + 3, ldd = rows + 5;
        float *src = alloc_fill((long)rows * lds, 1.0), *dst = alloc_fill((long)cols * ldd, 1.0);
        float *want = malloc(sizeof(float) * cols * ldd);
        memcpy(want, dst, sizeof(float) * cols * ldd);
        for (int r = 0; r < rows; r++)
            for (int c = 0; c < cols; c++) want[(long)c * ldd + r] = src[(long)r * lds + c];
        matmul_transpose(dst, ldd, src, lds, rows, cols);
        char what[64];
        snprintf(what, sizeof what, "transpose of %d x %d", rows, cols);
        check_bits(what, dst, want, (long)cols * ldd);
        free(src), free(dst), free(want);
    }
}

static void test_matmul_panels(void) {
    for (int on = 1; on >= 0; on--) {
        matmul_set_panels(on);
        printf("     panels %s: %s\n", on ? "on" : "off", matmul_narrow_path());
        for (int ta = 0; ta < 2; ta++)
            for (int tb = 0; tb < 2; tb++) {
                matmul_case(ta, tb, 37, 128, 51, 3, 1.0f, 0.0f, 0);
                matmul_case(ta, tb, 6, 192, 300, 0, 1.0f, 1.0f, 0);
                matmul_case(ta, tb, 1030, 128, 9, 1, 1.0f, 1.0f, 0);
                matmul_case(ta, tb, 24, 320, 2100, 2, 1.0f, 0.0f, 0);
                matmul_case(ta, tb, 5, 256, 64, 0, 0.5f, 1.0f, 0);
                matmul_case(ta, tb, 70, 192, 40, 1, 1.0f, 1.0f, 1);
                matmul_case(ta, tb, 200, 128, 600, 3, 1.0f, 0.0f, 1);  // Aᵀ·B: copies of A, 3 × 3 blocks
                matmul_case(ta, tb, 9, 64 * 3, 0, 0, 1.0f, 1.0f, 1);   // an empty sum leaves C
                // tiles of 256 rows and a last of 76, all in panels: B's panels copied once for all
                matmul_case(ta, tb, 1100, 192, 300, 1, 1.0f, 1.0f, 0);
                matmul_case(ta, tb, 1100, 128, 40, 2, 1.0f, 0.0f, 0);
            }
    }
    matmul_set_panels(-1);
}

// A product cut into tiles whose panels read B copied once for all of them (matmul.c,
// pack_panels) gives the bits of the same product taken whole, inside a parallel region, where
// the panels copy B themselves: the same sums in the same order. B as is and transposed, C
// accumulated or overwritten, and matmul_bias (B transposed, sums from the bias row).
static void test_matmul_prepacked(void) {
    enum { M = 1100, N = 192, K = 300 };  // tiles of 256 rows and a last of 76
    matmul_set_panels(1);
    for (int kind = 0; kind < 5; kind++) {  // B, Bᵀ with beta 1 and beta 0, then the bias
        int tb = kind % 2 || kind == 4;
        float beta = kind < 2 ? 1.0f : 0.0f;
        float *A = alloc_fill((long)M * K, 1.0), *B = alloc_fill((long)K * N, 1.0), *bias = alloc_fill(N, 1.0);
        float *tiled = alloc_fill((long)M * N, 1.0), *whole = malloc(sizeof(float) * M * N);
        memcpy(whole, tiled, sizeof(float) * M * N);
        for (int in_region = 0; in_region < 2; in_region++) {
            float *C = in_region ? whole : tiled;
#pragma omp parallel num_threads(1) if (in_region)
            {
                if (kind == 4)
                    matmul_bias(M, N, K, A, K, B, K, bias, C, N);
                else
                    matmul(0, tb, M, N, K, 1.0f, A, K, B, tb ? K : N, beta, C, N);
            }
        }
        char what[96];
        snprintf(what, sizeof what, "%s %dx%dx%d%s: tiles against whole", kind == 4 ? "matmul_bias" : "matmul", M, N,
                 K, kind == 4 ? "" : tb ? (beta == 1 ? ", Bᵀ, beta 1" : ", Bᵀ, beta 0") : beta == 1 ? ", beta 1" : ", beta 0");
        check_bits(what, tiled, whole, (long)M * N);
        free(A), free(B), free(bias), free(tiled), free(whole);
    }
    matmul_set_panels(-1);
}

// A weight gradient's product (A transposed) in the own loop sums each element in k order from C,
// one multiply-add at a time, whether its sum runs in one pass or in chunks of 64 terms (matmul.c,
// SUM_CHUNK): the bits of a plain chain of multiply-adds, fused where the build fuses them (FMA). 16
// columns, which every build with an own loop takes; K = 300: four whole chunks and a short one.
static void test_matmul_chunked_bits(void) {
    enum { M = 96, N = 16, K = 300 };
    if (!strstr(matmul_narrow_path(), "own loop for 16")) {
        printf("     no own loop for 16 columns in this build: OpenBLAS takes the product, nothing to check\n");
        return;
    }
    float *A = alloc_fill((long)K * M, 1.0), *B = alloc_fill((long)K * N, 1.0);
    float *C0 = alloc_fill((long)M * N, 1.0), *C = malloc(sizeof(float) * M * N);
    float *want = malloc(sizeof(float) * M * N);
    for (int beta = 0; beta < 2; beta++) {
        memcpy(C, C0, sizeof(float) * M * N);
        matmul(1, 0, M, N, K, 1.0f, A, M, B, N, (float)beta, C, N);
        for (int m = 0; m < M; m++)
            for (int n = 0; n < N; n++) {
                float c = beta ? C0[m * N + n] : 0;
                for (int k = 0; k < K; k++) {
#ifdef __FMA__
                    c = fmaf(A[k * M + m], B[k * N + n], c);
#else
                    c = c + A[k * M + m] * B[k * N + n];
#endif
                }
                want[m * N + n] = c;
            }
        char what[64];
        snprintf(what, sizeof what, "Aᵀ·B, %d × %d, K %d in chunks, beta %d", M, N, K, beta);
        check_bits(what, C, want, (long)M * N);
    }
    free(A), free(B), free(C0), free(C), free(want);
}

// The tiles are cut by shape, never by thread count: 1 and 3 threads give the same bits.
static void test_matmul_threads(void) {
    static const int shapes[][3] = {{1100, 40, 33}, {30, 1300, 20}, {24, 20, 5000}};
    for (int s = 0; s < 3; s++) {
        int M = shapes[s][0], N = shapes[s][1], K = shapes[s][2];
        float *A = alloc_fill((long)M * K, 1.0), *B = alloc_fill((long)K * N, 1.0);
        float *C1 = alloc_fill((long)M * N, 1.0), *C3 = malloc(sizeof(float) * M * N);
        memcpy(C3, C1, sizeof(float) * M * N);
        omp_set_num_threads(1);
        matmul(0, 0, M, N, K, 0.5f, A, K, B, N, 1.0f, C1, N);
        omp_set_num_threads(3);
        matmul(0, 0, M, N, K, 0.5f, A, K, B, N, 1.0f, C3, N);
        omp_set_num_threads(default_threads);
        char what[64];
        snprintf(what, sizeof what, "matmul %dx%dx%d, 1 vs 3 threads", M, N, K);
        check_bits(what, C1, C3, (long)M * N);
        free(A), free(B), free(C1), free(C3);
    }
}

// Two threads running 4 products each in a parallel region, as attention's heads do, or with their
// level made their top (matmul_set_top_level), as micro.c's replicas do; the region's wall time and
// the team's size through *team.
static double profile_region(const float *A, const float *B, float *C, int as_top, int *team) {
    double t0 = omp_get_wtime();
#pragma omp parallel num_threads(2)
    {
#pragma omp single
        *team = omp_get_num_threads();  // 1 where the environment limits threads
        if (as_top) matmul_set_top_level(omp_get_level());
        for (int r = 0; r < 4; r++)
            matmul(0, 0, 2048, 1024, 256, 1, A, 256, B, 1024, 0, C + (long)omp_get_thread_num() * 2048 * 1024, 1024);
        if (as_top) matmul_set_top_level(0);
    }
    return omp_get_wtime() - t0;
}

// The products' tally (matmul_profile): every product's FLOPs exactly, once whether matmul cuts it
// into tiles, into slices of its sum or not at all; seconds of the step's own time, a product
// inside a parallel region counted over the threads beside it (two threads' products at once add
// up to no more than the region's wall time), replicas' products too; nothing counted while off,
// and a new start from zero. The times are checked against bounds that hold however slow or busy
// the machine.
static void test_matmul_profile(void) {
    float *A = alloc_fill(2048L * 256, 1.0), *B = alloc_fill(256L * 1024, 1.0);
    float *C = malloc(sizeof(float) * 2 * 2048 * 1024);
    float *Ak = alloc_fill(64L * 4096, 1.0), *Bk = alloc_fill(4096L * 64, 1.0);
    matmul_profile(1);
    double t0 = omp_get_wtime();
    matmul(0, 0, 2048, 1024, 256, 1, A, 256, B, 1024, 0, C, 1024);  // cut into tiles at the top level
    matmul(0, 1, 40, 48, 256, 1, A, 256, B, 256, 0, C, 48);
    matmul(0, 0, 64, 64, 4096, 1, Ak, 4096, Bk, 64, 0, C, 64);  // its sum cut into slices
    double top = omp_get_wtime() - t0;
    MatmulProfile p = matmul_profile_read();
    double flops = 2.0 * 2048 * 1024 * 256 + 2.0 * 40 * 48 * 256 + 2.0 * 64 * 64 * 4096;
    CHECK(p.calls == 3 && p.flops == flops, "calls %lld, flops %.0f (want 3, %.0f)", p.calls, p.flops, flops);
    CHECK(p.seconds > 0 && p.seconds <= top, "%.6f s tallied in %.6f s of products", p.seconds, top);
    for (int as_top = 0; as_top < 2; as_top++) {
        int team = 0;
        matmul_profile(1);
        double region = profile_region(A, B, C, as_top, &team);
        matmul_profile(0);
        p = matmul_profile_read();
        CHECK(p.calls == 4LL * team, "calls %lld in a region of %d threads", p.calls, team);
        CHECK(p.seconds > 0 && p.seconds <= region, "%.6f s tallied in a region of %.6f s%s", p.seconds, region,
              as_top ? ", replicas" : "");
    }
    matmul(0, 0, 40, 48, 256, 1, A, 256, B, 48, 0, C, 48);  // off: not counted
    MatmulProfile q = matmul_profile_read();
    CHECK(q.calls == p.calls && q.flops == p.flops && q.seconds == p.seconds, "counted while off: %lld calls", q.calls);
    matmul_profile(1);
    q = matmul_profile_read();
    matmul_profile(0);
    CHECK(q.calls == 0 && q.flops == 0 && q.seconds == 0, "not zeroed at a start: %lld calls", q.calls);
    free(A), free(B), free(C), free(Ak), free(Bk);
}

// ---------------------------------------------------------------------------------------------
// Dropout

static void test_dropout_statistics(void) {
    const long n = 1000000;
    const float p = 0.3f;
    uint64_t key = rng_key(42, 3, 1, 0);
    float *x = malloc(sizeof(float) * n), *y = malloc(sizeof(float) * n);
    for (long i = 0; i < n; i++) x[i] = 1.0f;
    dropout_forward(y, x, p, key, n);
    long kept = 0, bad = 0;
    float scale = (float)(1.0 / (1.0 - (double)p));
    for (long i = 0; i < n; i++) {
        kept += y[i] != 0;
        bad += y[i] != 0 && y[i] != scale;
        bad += (y[i] != 0) != dropout_keep(p, key, i);
    }
    // Kept count ~ Binomial(n, 1-p): 6 standard deviations (sd = sqrt(n p (1-p)) ~ 458) is a false
    // alarm once in ~1e9 runs, and still catches a mask drawn with p and 1-p swapped.
    double expect = n * (1.0 - p), sd = sqrt(n * p * (1.0 - p));
    printf("     kept %ld of %ld at p = %.1f (expected %.0f, sd %.0f, %.2f sd off)\n", kept, n, (double)p, expect, sd,
           fabs(kept - expect) / sd);
    CHECK(fabs(kept - expect) <= 6 * sd, "kept %ld, expected %.0f +- %.0f", kept, expect, 6 * sd);
    CHECK(bad == 0, "%ld values are neither 0 nor 1/(1-p) or disagree with dropout_keep", bad);
    free(x), free(y);
}

static void test_dropout_determinism(void) {
    const long n = 100003;
    const float p = 0.25f;
    uint64_t key = rng_key(1, 2, 3, 4), other = rng_key(1, 2, 3, 5);
    float *x = alloc_fill(n, 1.0), *y1 = malloc(sizeof(float) * n), *y2 = malloc(sizeof(float) * n);
    dropout_forward(y1, x, p, key, n);
    dropout_forward(y2, x, p, key, n);
    check_bits("same key => same output", y1, y2, n);

    // Another key: about 2 p (1-p) = 37.5% of the positions change their keep decision.
    dropout_forward(y2, x, p, other, n);
    long differ = 0;
    for (long i = 0; i < n; i++) differ += (y1[i] != 0) != (y2[i] != 0);
    printf("     another key changes %.4f of the mask (expected %.4f)\n", (double)differ / n, 2.0 * p * (1 - p));
    CHECK(fabs((double)differ / n - 2.0 * p * (1 - p)) < 0.01, "another key changed %ld of %ld mask bits", differ, n);

    // The thread count does not change the mask.
    omp_set_num_threads(1);
    dropout_forward(y2, x, p, key, n);
    omp_set_num_threads(3);
    dropout_forward(y1, x, p, key, n);
    omp_set_num_threads(default_threads);
    check_bits("dropout forward, 1 vs 3 threads", y1, y2, n);

    // The backward recomputes the same mask: with dout = 1 it is the forward of ones.
    float *ones = malloc(sizeof(float) * n), *fw = malloc(sizeof(float) * n), *dx = calloc(n, sizeof(float));
    for (long i = 0; i < n; i++) ones[i] = 1.0f;
    dropout_forward(fw, ones, p, key, n);
    dropout_backward(dx, ones, p, key, n);
    check_bits("backward mask = forward mask", dx, fw, n);

    // In place: forward with out == inp, backward with dinp == dout (overwrites, see layers.c).
    memcpy(y2, x, sizeof(float) * n);
    dropout_forward(y2, y2, p, key, n);
    dropout_forward(y1, x, p, key, n);
    check_bits("forward in place", y2, y1, n);
    memcpy(y2, x, sizeof(float) * n);
    dropout_backward(y2, y2, p, key, n);
    check_bits("backward in place (dinp == dout) overwrites", y2, y1, n);

    // p = 0 is the identity (forward copies, backward adds dout).
    dropout_forward(y1, x, 0.0f, key, n);
    check_bits("p = 0 forward copies", y1, x, n);
    memset(dx, 0, sizeof(float) * n);
    dropout_backward(dx, x, 0.0f, key, n);
    check_bits("p = 0 backward adds dout", dx, x, n);
    free(x), free(y1), free(y2), free(ones), free(fw), free(dx);
}

// ---------------------------------------------------------------------------------------------
// GELU in float against the double formula at the same (float) x. Both use erfc, so negative x
// keep their relative precision. The float evaluation of x/sqrt 2 is rounded (relative u), and
// Phi(x) has relative condition number ~ x^2 for x << 0, so we compare errors divided by (1 + x^2)
// at 12 u relative. The float build's erfc (layers.c) is a fit good to 1.2e-7 (2 u) evaluated in
// float: on 2M points of [-10, 10] its worst was 6.6 u, and 12 u leaves room for a compiler that
// contracts differently. erf in place of erfc would lose all digits below x ~ -4, and a wrong
// coefficient or constant misses by far more.

static void test_gelu_float_accuracy(void) {
    const long n = 200001;
    float *x = malloc(sizeof(float) * n), *y = malloc(sizeof(float) * n), *dy = malloc(sizeof(float) * n);
    double *got = malloc(sizeof(double) * n), *want = malloc(sizeof(double) * n);
    double *dgot = malloc(sizeof(double) * n), *dwant = malloc(sizeof(double) * n);
    for (long i = 0; i < n; i++) x[i] = (float)(-10.0 + 20.0 * i / (n - 1));
    gelu_forward(y, dy, x, n);
    for (long i = 0; i < n; i++) {
        double v = x[i];
        want[i] = 0.5 * v * erfc(-v / sqrt(2.0));
        got[i] = want[i] + (y[i] - want[i]) / (1.0 + v * v), dgot[i] = dy[i];
        dwant[i] = 0.5 * erfc(-v / sqrt(2.0)) + v * exp(-0.5 * v * v) / sqrt(2.0 * 3.14159265358979323846);
    }
    check_close("gelu forward (float), error / (1 + x^2)", got, want, n, 1e-38, 12 * 0x1.0p-24);
    // The derivative crosses zero near x = -0.75 where its terms cancel: an absolute term of a few
    // ulps of its largest terms (about 0.5) covers that.
    check_close("gelu derivative (float) vs double", dgot, dwant, n, 4 * 0x1.0p-24, 12 * 0x1.0p-24);
    free(x), free(y), free(dy), free(got), free(want), free(dgot), free(dwant);
}

// GELU far out and at non-finite inputs, against the double formulas at the same x (NaN where they
// give NaN: gelu(-inf) = -inf * 0 and gelu'(+-inf) = +-inf * 0 are NaN in both). Beyond |x| ~ 4170
// the argument of exp in exp(-x^2/2) (and in erfc's Gaussian tail) is below -8.7e6, where the
// exponent arithmetic of layers.c's exp once overflowed an int32 (undefined behaviour, which
// `make sanitize` turns into a failure); the results here are exact 0, x or 1.
static void test_gelu_extreme_inputs(void) {
    const float xs[] = {-FLT_MAX, -1e30f, -1e7f, -5000, -4200, -100, 100, 4200, 5000, 1e7f, 1e30f, FLT_MAX,
                        -INFINITY, INFINITY, NAN};
    enum { N = sizeof xs / sizeof xs[0] };
    float y[N], dy[N];
    gelu_forward(y, dy, xs, N);
    int bad = 0;
    for (int i = 0; i < N; i++) {
        double v = xs[i], want = 0.5 * v * erfc(-v / sqrt(2.0));
        double dwant = 0.5 * erfc(-v / sqrt(2.0)) + v * exp(-0.5 * v * v) / sqrt(2.0 * 3.14159265358979323846);
        int ok = isnan(want) ? isnan(y[i]) : y[i] == want;
        int dok = isnan(dwant) ? isnan(dy[i]) : dy[i] == dwant;
        printf("     x = %-14g gelu %-14g (want %-14g) gelu' %-6g (want %g)\n", v, (double)y[i], want, (double)dy[i], dwant);
        bad += !ok + !dok;
    }
    CHECK(bad == 0, "%d GELU values or derivatives differ from the double formulas", bad);
}

// Cross-entropy in float (its softmax uses the float build's own exp) against double formulas on
// the same float logits. probs: exp(x - max) has relative condition number |x - max|, and x - max
// is rounded in float, so we divide the error by (1 + |x - max|) and allow 8 u relative. Losses are
// formed in double from a sum of floats: 8 u relative, plus 8 u of a loss of 10 absolute.
static void test_crossentropy_float_accuracy(void) {
    const int N = 64, V = 97;
    float *logits = alloc_fill((long)N * V, 8.0), *probs = malloc(sizeof(float) * N * V), *losses = malloc(sizeof(float) * N);
    logits[5] = 80.0f, logits[V + 7] = -100.0f;  // a dominant logit; exp(-100 - max) underflows
    int *targets = malloc(sizeof(int) * N);
    for (int n = 0; n < N; n++) targets[n] = (n * 5 + 1) % V;
    targets[0] = 6;  // row 0's target far below its dominant logit: loss ~ 80
    crossentropy_forward(losses, probs, logits, targets, NULL, N, V);
    double *gp = malloc(sizeof(double) * N * V), *wp = malloc(sizeof(double) * N * V), gl[64], wl[64];
    for (int n = 0; n < N; n++) {
        const float *x = logits + (long)n * V;
        double mx = x[0], s = 0;
        for (int v = 1; v < V; v++) mx = fmax(mx, x[v]);
        for (int v = 0; v < V; v++) s += exp(x[v] - mx);
        for (int v = 0; v < V; v++) {
            long i = (long)n * V + v;
            wp[i] = exp(x[v] - mx) / s;
            gp[i] = wp[i] + (probs[i] - wp[i]) / (1.0 + fabs(x[v] - mx));
        }
        wl[n] = log(s) - (x[targets[n]] - mx), gl[n] = losses[n];
    }
    check_close("crossentropy probs (float), error / (1 + |x - max|)", gp, wp, (long)N * V, 1e-37, 8 * 0x1.0p-24);
    check_close("crossentropy losses (float) vs double", gl, wl, N, 8 * 0x1.0p-24 * 10, 8 * 0x1.0p-24);
    free(logits), free(probs), free(losses), free(targets), free(gp), free(wp);
}

// ---------------------------------------------------------------------------------------------
// Bit-identical results at 1, 2 and 3 threads. Sizes are well above the layers' single-thread
// cut-off, so the loops really are split between threads.

static void at_threads(int threads) { omp_set_num_threads(threads); }

static void test_threads_layernorm(void) {
    const int N = 300, C = 96;
    float *x = alloc_fill((long)N * C, 2.0), *w = alloc_fill(C, 1.0), *b = alloc_fill(C, 1.0);
    float *dout = alloc_fill((long)N * C, 1.0);
    float *out[3], *mean[3], *rstd[3], *dx[3], *dw[3], *db[3];
    for (int k = 0; k < 3; k++) {
        out[k] = malloc(sizeof(float) * N * C), mean[k] = malloc(sizeof(float) * N), rstd[k] = malloc(sizeof(float) * N);
        dx[k] = calloc((size_t)N * C, sizeof(float)), dw[k] = calloc(C, sizeof(float)), db[k] = calloc(C, sizeof(float));
        at_threads(k + 1);
        layernorm_forward(out[k], mean[k], rstd[k], x, w, b, N, C);
        layernorm_backward(dx[k], dw[k], db[k], dout, x, w, mean[k], rstd[k], N, C);
    }
    at_threads(default_threads);
    for (int k = 1; k < 3; k++) {
        printf("     1 vs %d threads:\n", k + 1);
        check_bits("layernorm out", out[k], out[0], (long)N * C);
        check_bits("layernorm mean", mean[k], mean[0], N);
        check_bits("layernorm rstd", rstd[k], rstd[0], N);
        check_bits("layernorm dinp", dx[k], dx[0], (long)N * C);
        check_bits("layernorm dweight", dw[k], dw[0], C);
        check_bits("layernorm dbias", db[k], db[0], C);
    }
    // The weight-gradient sums themselves (300 rows: ten row chunks, the last one partial) against
    // double sums of the same float terms. ~300 terms of O(1): 1e-5 absolute is ~10x the
    // rounding of a float sum, and 100x below one missing or doubled row.
    double *got = malloc(sizeof(double) * 2 * C), *want = calloc(2 * (size_t)C, sizeof(double));
    for (int n = 0; n < N; n++)
        for (int c = 0; c < C; c++) {
            float xhat = (x[(long)n * C + c] - mean[0][n]) * rstd[0][n];
            want[c] += (double)dout[(long)n * C + c] * xhat;
            want[C + c] += dout[(long)n * C + c];
        }
    for (int c = 0; c < C; c++) got[c] = dw[0][c], got[C + c] = db[0][c];
    check_close("layernorm dweight, dbias vs double sums", got, want, 2 * C, 1e-5, 1e-6);
    free(got), free(want);
    for (int k = 0; k < 3; k++) free(out[k]), free(mean[k]), free(rstd[k]), free(dx[k]), free(dw[k]), free(db[k]);
    free(x), free(w), free(b), free(dout);
}

static void test_threads_crossentropy(void) {
    const int N = 500, V = 67;
    float *logits = alloc_fill((long)N * V, 4.0);
    int *targets = malloc(sizeof(int) * N);
    uint8_t *mask = malloc(N);
    for (int n = 0; n < N; n++) targets[n] = (n * 7) % V, mask[n] = n % 3 != 0;
    float *losses[3], *probs[3], *dl[3];
    for (int k = 0; k < 3; k++) {
        losses[k] = malloc(sizeof(float) * N), probs[k] = malloc(sizeof(float) * N * V);
        dl[k] = calloc((size_t)N * V, sizeof(float));
        at_threads(k + 1);
        crossentropy_forward(losses[k], probs[k], logits, targets, mask, N, V);
        crossentropy_backward(dl[k], probs[k], targets, mask, 1.0f / N, N, V);
    }
    at_threads(default_threads);
    for (int k = 1; k < 3; k++) {
        printf("     1 vs %d threads:\n", k + 1);
        check_bits("crossentropy losses", losses[k], losses[0], N);
        check_bits("crossentropy probs", probs[k], probs[0], (long)N * V);
        check_bits("crossentropy dlogits", dl[k], dl[0], (long)N * V);
    }
    // Masked-out rows: loss 0 and no gradient.
    int ok = 1;
    for (int n = 0; n < N; n++)
        for (int v = 0; v < V && !mask[n]; v++) ok &= losses[0][n] == 0 && dl[0][(long)n * V + v] == 0;
    CHECK(ok, "a masked-out row got a loss or a gradient");
    for (int k = 0; k < 3; k++) free(losses[k]), free(probs[k]), free(dl[k]);
    free(logits), free(targets), free(mask);
}

static void test_threads_embedding_and_bias(void) {
    const int N = 16, T = 40, C = 72, V = 13, OC = 72;  // C not a multiple of the column block
    float *wte = alloc_fill((long)V * C, 1.0), *wpe = alloc_fill((long)T * C, 1.0);
    float *dout = alloc_fill((long)N * T * C, 1.0);
    int *tokens = malloc(sizeof(int) * N * T);
    for (int i = 0; i < N * T; i++) tokens[i] = (i * i + 3) % V;  // heavily repeated tokens
    float *out[3], *dwte[3], *dwpe[3], *dbias[3];
    for (int k = 0; k < 3; k++) {
        out[k] = malloc(sizeof(float) * N * T * C);
        dwte[k] = calloc((size_t)V * C, sizeof(float)), dwpe[k] = calloc((size_t)T * C, sizeof(float));
        dbias[k] = calloc(OC, sizeof(float));
        at_threads(k + 1);
        embedding_forward(out[k], tokens, wte, wpe, N, T, C);
        embedding_backward(dwte[k], dwpe[k], dout, tokens, N, T, C);
        linear_backward(NULL, NULL, dbias[k], dout, NULL, NULL, N * T, C, OC, GRAD_ADD);  // the bias column sum alone
    }
    at_threads(default_threads);
    for (int k = 1; k < 3; k++) {
        printf("     1 vs %d threads:\n", k + 1);
        check_bits("embedding out", out[k], out[0], (long)N * T * C);
        check_bits("embedding dwte", dwte[k], dwte[0], (long)V * C);
        check_bits("embedding dwpe", dwpe[k], dwpe[0], (long)T * C);
        check_bits("linear dbias", dbias[k], dbias[0], OC);
    }
    // And the sums themselves, against double references.
    double *got = malloc(sizeof(double) * V * C), *want = calloc((size_t)V * C, sizeof(double));
    for (int r = 0; r < N * T; r++)
        for (int c = 0; c < C; c++) want[(long)tokens[r] * C + c] += dout[(long)r * C + c];
    for (long i = 0; i < (long)V * C; i++) got[i] = dwte[0][i];
    // ~50 float additions of O(1) values per entry: sqrt(50) * u * 50 ~ 2e-5 absolute is generous.
    check_close("embedding dwte vs double sum", got, want, (long)V * C, 2e-5, 0);
    // dwpe (16 terms each) and dbias (640 rows: 20 row chunks), summed in double inside.
    double *gp = malloc(sizeof(double) * T * C), *wp = calloc((size_t)T * C, sizeof(double));
    double *gb = malloc(sizeof(double) * OC), *wb = calloc(OC, sizeof(double));
    for (int r = 0; r < N * T; r++)
        for (int c = 0; c < C; c++) wp[(long)(r % T) * C + c] += dout[(long)r * C + c], wb[c] += dout[(long)r * C + c];
    for (long i = 0; i < (long)T * C; i++) gp[i] = dwpe[0][i];
    for (int c = 0; c < OC; c++) gb[c] = dbias[0][c];
    check_close("embedding dwpe vs double sum", gp, wp, (long)T * C, 1e-6, 1e-6);
    check_close("linear dbias vs double sum", gb, wb, OC, 1e-6, 1e-6);
    free(got), free(want), free(gp), free(wp), free(gb), free(wb);
    for (int k = 0; k < 3; k++) free(out[k]), free(dwte[k]), free(dwpe[k]), free(dbias[k]);
    free(wte), free(wpe), free(dout), free(tokens);
}

int main(void) {
    default_threads = omp_get_max_threads();
    printf("layers float tests (real = %s, %d threads by default)\n", REAL_NAME, default_threads);
    printf("matmul: %s\n", matmul_narrow_path());
    RUN(test_matmul_vs_naive);
    RUN(test_matmul_panels);
    RUN(test_matmul_prepacked);
    RUN(test_matmul_short);
    RUN(test_matmul_transpose);
    RUN(test_matmul_bias);
    RUN(test_matmul_threads);
    RUN(test_matmul_chunked_bits);
    RUN(test_matmul_profile);
    RUN(test_dropout_statistics);
    RUN(test_dropout_determinism);
    RUN(test_gelu_float_accuracy);
    RUN(test_gelu_extreme_inputs);
    RUN(test_crossentropy_float_accuracy);
    RUN(test_threads_layernorm);
    RUN(test_threads_crossentropy);
    RUN(test_threads_embedding_and_bias);
    return check_summary("layers");
}
