// The layers of the transformer other than attention (see layers.h for the conventions).
//
// Determinism: every output element is computed by exactly one thread, and every reduction runs
// in a fixed order that does not depend on how many threads there are:
//   - per-row work (LayerNorm, softmax, the embedding lookup) is parallel over rows;
//   - column sums over rows (bias and LayerNorm weight gradients) sum fixed chunks of rows, then
//     the chunks in order; dwpe is parallel over positions, each summing the sequences in order;
//   - the dwte scatter is parallel over blocks of columns, each visiting every token in order;
//   - dense products are one OpenBLAS call.
// Sums are accumulated in double wherever the buffer is small (everything but the dwte scatter).
//
// The loops with a select (GELU's erfc and exp, the cross-entropy's exp) vectorise without AVX-512's
// masked operations only when the compiler may assume floating-point compares do not trap: with
// traps assumed, an AVX2 build kept them scalar, and GELU took 40% of the tiny model's step there
// (5% with AVX-512). Nothing here relies on traps. Multiplies and adds fuse where the target has FMA
// (as in attention.c: tiny model's step 29.9 -> 29.5 ms, 1 thread).
#pragma GCC optimize("no-trapping-math", "fp-contract=fast")
#include "layers.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "matmul.h"
#include "rng.h"
#include "target.h"

// Elementwise transcendental functions. The double build (the reference the gradient checks run
// against) uses libm. libm's expf and erfcf are scalar calls (~13 ns per GELU value, more than the
// matmul beside it), so the float build uses the branch-free versions below, which GCC vectorises:
// about 1 ulp for exp and 7 ulp for erfc (GELU 18x faster than with libm on one core), checked
// against libm in tests/test_layers.c.
#ifdef REAL_DOUBLE
static inline double exp_r(double x) { return exp(x); }
static inline double erfc_r(double x) { return erfc(x); }
#else
// e^x for x <= 88 (all uses here have x <= 0): x = n ln2 + r with |r| <= ln2/2, e^r by its degree-7
// Taylor polynomial (truncation 5e-9 relative), 2^n written into the exponent bits. n is rounded
// with the 1.5 * 2^23 trick, which leaves it in the low mantissa bits of k, so no float-to-int
// conversion is needed. Flushes to 0 below -87.34, where the result would be subnormal.
// The exponent arithmetic is unsigned: below about -8.7e6 (GELU's exp(-x^2/2) at |x| > 4170) k is
// negative and kb - 0x4B400000 would overflow an int32, which is undefined; in uint32 it wraps,
// and the final select discards that lane. The same instructions and bits as signed arithmetic
// wherever that does not overflow. NaN gives NaN (p is NaN). A clamp of x would do as well but
// measured 24% slower on GELU's forward (two compare-and-blend per value).
static inline float exp_r(float x) {
    float k = fmaf(x, 1.44269504088896341f, 12582912.0f);
    float n = k - 12582912.0f;
    float r = fmaf(n, -0.693145751953125f, x);  // ln 2 in two parts: the first times n is exact
    r = fmaf(n, -1.42860682030941723212e-6f, r);
    float p = 1.0f / 5040;
    p = fmaf(p, r, 1.0f / 720);
    p = fmaf(p, r, 1.0f / 120);
    p = fmaf(p, r, 1.0f / 24);
    p = fmaf(p, r, 1.0f / 6);
    p = fmaf(p, r, 0.5f);
    p = fmaf(p, r, 1.0f);
    p = fmaf(p, r, 1.0f);
    uint32_t kb, sb;
    memcpy(&kb, &k, sizeof kb);
    sb = (kb - 0x4B400000u + 127u) << 23;
    float scale;
    memcpy(&scale, &sb, sizeof scale);
    return x < -87.33654f ? 0.0f : p * scale;
}

// erfc(z) = t exp(-z^2 + P(t)), t = 1/(1 + |z|/2), for z >= 0 and 2 - erfc(-z) below: the
// Chebyshev fit of Numerical Recipes (2nd ed., 6.2, erfcc), relative error < 1.2e-7 for all z >= 0,
// so the Gaussian tail keeps its relative precision.
static inline float erfc_r(float z) {
    float a = fabsf(z);
    float t = 1.0f / fmaf(0.5f, a, 1.0f);
    float q = 0.17087277f;
    q = fmaf(q, t, -0.82215223f);
    q = fmaf(q, t, 1.48851587f);
    q = fmaf(q, t, -1.13520398f);
    q = fmaf(q, t, 0.27886807f);
    q = fmaf(q, t, -0.18628806f);
    q = fmaf(q, t, 0.09678418f);
    q = fmaf(q, t, 0.37409196f);
    q = fmaf(q, t, 1.00002368f);
    q = fmaf(q, t, -1.26551223f);
    float y = t * exp_r(fmaf(-a, a, q));
    return z < 0 ? 2.0f - y : y;
}
#endif

// Sums in double in a fixed order that still vectorises: element i goes to partial sum i % 8, and
// the eight partials are added pairwise. The order is written in the source, so neither the
// compiler (no -ffast-math) nor the thread count can change it.
#define LANES 8
// The lanes as vectors of the target's width (DLANES doubles each), for loops GCC left scalar: its
// Intel tunings did not vectorise layernorm_backward's sums: at 4096 x 64, 1 thread, -O3, 0.40 -> 0.19 ms
// (-march=native on an AVX-512 Xeon), 0.35 -> 0.26 (x86-64-v3), 0.44 -> 0.32 (x86-64-v2).
enum { DLANES = TARGET_VEC_BYTES / sizeof(double) };
typedef double dvec __attribute__((vector_size(TARGET_VEC_BYTES)));
typedef real rvec_u __attribute__((vector_size(DLANES * sizeof(real)))) TARGET_UNALIGNED(real);
static inline double lanes_total(const double *acc) {
    return ((acc[0] + acc[1]) + (acc[2] + acc[3])) + ((acc[4] + acc[5]) + (acc[6] + acc[7]));
}
// sum of x[i]
static inline double sum_lanes(const real *x, int n) {
    double acc[LANES] = {0};
    int i = 0;
    for (; i + LANES <= n; i += LANES)
        for (int j = 0; j < LANES; j++) acc[j] += x[i + j];
    for (int j = 0; i + j < n; j++) acc[j] += x[i + j];
    return lanes_total(acc);
}
// sum of (x[i] - m)^2
static inline double sumsq_dev_lanes(const real *x, double m, int n) {
    double acc[LANES] = {0};
    int i = 0;
    for (; i + LANES <= n; i += LANES)
        for (int j = 0; j < LANES; j++) acc[j] += (x[i + j] - m) * (x[i + j] - m);
    for (int j = 0; i + j < n; j++) acc[j] += (x[i + j] - m) * (x[i + j] - m);
    return lanes_total(acc);
}

// Below this many values a loop runs on one thread: an OpenMP fork/join costs microseconds,
// more than the work itself. Results are the same either way (see above).
#define PAR_MIN 16384

// Column sums over rows (weight and bias gradients) run in two stages whose order is fixed by the
// sizes alone: rows are cut into chunks of ROW_CHUNK, each chunk is summed in row order into a
// partial row (parallel over chunks, contiguous reads), then the partial rows are summed in chunk
// order (parallel over columns). Partials are double. Walking the columns of a strided matrix
// instead (one task per column block, all rows) measured 6x slower on 8192 x 256.
#define ROW_CHUNK 32

static inline int min_int(int a, int b) { return a < b ? a : b; }

static void *malloc_or_die(size_t bytes, const char *what) {
    void *p = malloc(bytes);
    if (!p) {
        fprintf(stderr, "layers.c: out of memory allocating %zu bytes for %s\n", bytes, what);
        exit(1);
    }
    return p;
}

// dst[c] += sum over k of partial[k*C + c], k in order. dst (C), partial (chunks,C).
static void reduce_partials(real *dst, const double *partial, int chunks, int C) {
#pragma omp parallel for schedule(static) if ((long)chunks * C >= PAR_MIN)
    for (int c = 0; c < C; c++) {
        double s = 0.0;
        for (int k = 0; k < chunks; k++) s += partial[(long)k * C + c];
        dst[c] += (real)s;
    }
}

// dst[c] += sum over n of src[n*C + c]. dst (C), src (N,C).
enum { STRIP = 16 };
static void colsum_accumulate(real *dst, const real *src, int N, int C) {
    int chunks = (N + ROW_CHUNK - 1) / ROW_CHUNK;
    double *partial = malloc_or_die(sizeof(double) * chunks * C, "column-sum partials");
#pragma omp parallel for schedule(static) if ((long)N * C >= PAR_MIN)
    for (int k = 0; k < chunks; k++) {
        int n0 = k * ROW_CHUNK, n1 = min_int(N, (k + 1) * ROW_CHUNK), c = 0;
        // STRIP columns at a time, their sums held in registers down the chunk's rows: summed into
        // the partial row in memory, each row's add waited for the previous row's store (the tiny
        // model's bias gradients took 3.5% of its step, now 1.4%). Each column's order is unchanged.
        for (; c + STRIP <= C; c += STRIP) {
            double acc[STRIP] = {0};
            for (int n = n0; n < n1; n++)
                for (int j = 0; j < STRIP; j++) acc[j] += src[(long)n * C + c + j];
            memcpy(partial + (long)k * C + c, acc, sizeof acc);
        }
        for (; c < C; c++) {
            double acc = 0;
            for (int n = n0; n < n1; n++) acc += src[(long)n * C + c];
            partial[(long)k * C + c] = acc;
        }
    }
    reduce_partials(dst, partial, chunks, C);
    free(partial);
}

// ---------------------------------------------------------------------------------------------
// Embedding

void embedding_forward(real *out, const int *tokens, const real *wte, const real *wpe, int N, int T, int C) {
    long rows = (long)N * T;
#pragma omp parallel for schedule(static) if (rows * C >= PAR_MIN)
    for (long r = 0; r < rows; r++) {
        real *o = out + r * C;
        const real *w = wte + (long)tokens[r] * C;
        if (wpe) {
            const real *p = wpe + (r % T) * C;
            for (int c = 0; c < C; c++) o[c] = w[c] + p[c];
        } else {
            memcpy(o, w, sizeof(real) * C);
        }
    }
}

// In the forward this was out[n,t,c] = wte[tokens[n,t],c] + wpe[t,c]. Tokens repeat, so rows of
// dwte receive several contributions: each column block is one task that visits every (n,t) in
// order, which makes the scatter race-free and its sum order fixed. 16 floats are a 64-byte cache
// line, so neighbouring tasks rarely write one line. (The scatter accumulates in real: a double
// copy of dwte would cost V * C per call.)
#define COL_BLOCK 16
void embedding_backward(real *dwte, real *dwpe, const real *dout, const int *tokens, int N, int T, int C) {
    long rows = (long)N * T;
    if (dwte) {
        int blocks = (C + COL_BLOCK - 1) / COL_BLOCK;
#pragma omp parallel for schedule(static) if (rows * C >= PAR_MIN && blocks > 1)
        for (int b = 0; b < blocks; b++) {
            int c0 = b * COL_BLOCK, w = min_int(COL_BLOCK, C - c0);
            for (long r = 0; r < rows; r++) {
                const real *d = dout + r * C + c0;
                real *g = dwte + (long)tokens[r] * C + c0;
                for (int j = 0; j < w; j++) g[j] += d[j];
            }
        }
    }
    if (dwpe) {  // dwpe[t] += sum over n of dout[n,t]: one task per t, n in order, in double
#pragma omp parallel if (rows * C >= PAR_MIN)
        {
            double *acc = malloc_or_die(sizeof(double) * C, "embedding dwpe sums");
#pragma omp for schedule(static)
            for (int t = 0; t < T; t++) {
                for (int c = 0; c < C; c++) acc[c] = 0.0;
                for (int n = 0; n < N; n++) {
                    const real *d = dout + ((long)n * T + t) * C;
                    for (int c = 0; c < C; c++) acc[c] += d[c];
                }
                real *g = dwpe + (long)t * C;
                for (int c = 0; c < C; c++) g[c] += (real)acc[c];
            }
            free(acc);
        }
    }
}

// ---------------------------------------------------------------------------------------------
// LayerNorm

#define LN_EPS 1e-5

// The statistics are summed in double (two passes, so no cancellation in the variance); the
// output uses the rounded mean and rstd that are saved, so the backward differentiates exactly
// the function the forward computed.
void layernorm_forward(real *out, real *mean, real *rstd, const real *inp, const real *weight, const real *bias,
                       int N, int C) {
#pragma omp parallel for schedule(static) if ((long)N * C >= PAR_MIN)
    for (int n = 0; n < N; n++) {
        const real *x = inp + (long)n * C;
        double m = sum_lanes(x, C) / C;
        double v = sumsq_dev_lanes(x, m, C);
        real mr = (real)m, rs = (real)(1.0 / sqrt(v / C + LN_EPS));
        real *o = out + (long)n * C;
        for (int c = 0; c < C; c++) o[c] = (x[c] - mr) * rs * weight[c] + bias[c];
        mean[n] = mr;
        rstd[n] = rs;
    }
}

// In the forward this was out[c] = xhat[c] * weight[c] + bias[c] with xhat = (x - mean) * rstd,
// mean and rstd (biased variance) depending on every x of the row. With g = weight * dout:
//   dx[c] = rstd * (g[c] - mean(g) - xhat[c] * mean(g * xhat)),
//   dweight[c] = sum over rows of dout[c] * xhat[c],   dbias[c] = sum over rows of dout[c].
// One pass over the rows gives all three: each chunk of ROW_CHUNK rows sums its partial rows of
// dweight and dbias (in row order, as colsum_accumulate) while it writes dx (three passes over x and
// dout before; 1 thread: 0.26 -> 0.22 ms at the tiny model's 4096 x 64, 2.20 -> 1.82 ms at the
// flip-flop model's 8192 x 256). The sums are the same, in the same order.
void layernorm_backward(real *dinp, real *dweight, real *dbias, const real *dout, const real *inp,
                        const real *weight, const real *mean, const real *rstd, int N, int C) {
    int chunks = (N + ROW_CHUNK - 1) / ROW_CHUNK;
    double *partial = dweight || dbias ? malloc_or_die(sizeof(double) * 2 * chunks * C, "layernorm partials") : NULL;
#pragma omp parallel for schedule(static) if ((long)N * C >= PAR_MIN)
    for (int k = 0; k < chunks; k++) {
        double *pw = partial ? partial + (long)k * C : NULL, *pb = partial ? partial + (long)(chunks + k) * C : NULL;
        for (int c = 0; pw && c < C; c++) pw[c] = pb[c] = 0.0;
        for (int n = k * ROW_CHUNK; n < min_int(N, (k + 1) * ROW_CHUNK); n++) {
            const real *x = inp + (long)n * C, *dy = dout + (long)n * C;
            real m = mean[n], rs = rstd[n], mg = 0, mgx = 0;
            if (dinp) {
                double ag[LANES], agx[LANES];  // sums of g and g * xhat, as in sum_lanes
                dvec sg[LANES / DLANES] = {{0}}, sgx[LANES / DLANES] = {{0}};
                int c = 0;
                for (; c + LANES <= C; c += LANES)
                    for (int v = 0; v < LANES / DLANES; v++) {
                        int at = c + v * DLANES;
                        rvec_u w = *(const rvec_u *)(weight + at), d = *(const rvec_u *)(dy + at);
                        dvec g = __builtin_convertvector(w * d, dvec);
                        sg[v] += g;
                        sgx[v] += g * __builtin_convertvector((*(const rvec_u *)(x + at) - m) * rs, dvec);
                    }
                memcpy(ag, sg, sizeof ag);
                memcpy(agx, sgx, sizeof agx);
                for (int j = 0; c + j < C; j++) {
                    real g = weight[c + j] * dy[c + j];
                    ag[j] += g;
                    agx[j] += (double)g * ((x[c + j] - m) * rs);
                }
                mg = (real)(lanes_total(ag) / C), mgx = (real)(lanes_total(agx) / C);
            }
            real *dx = dinp ? dinp + (long)n * C : NULL;
            for (int c = 0; c < C; c++) {
                real xhat = (x[c] - m) * rs;
                if (dx) dx[c] += (weight[c] * dy[c] - mg - xhat * mgx) * rs;
                if (pw) {
                    pw[c] += dy[c] * xhat;
                    pb[c] += dy[c];
                }
            }
        }
    }
    if (dweight) reduce_partials(dweight, partial, chunks, C);
    if (dbias) reduce_partials(dbias, partial + (long)chunks * C, chunks, C);
    free(partial);
}

// ---------------------------------------------------------------------------------------------
// Linear

// out = inp · weightᵀ + bias, the product summed from the bias (matmul_bias: no pass over out to add
// it or copy it in; tiny model's step 1% faster than with the copy).
void linear_forward(real *out, const real *inp, const real *weight, const real *bias, int N, int IC, int OC) {
    if (bias)
        matmul_bias(N, OC, IC, inp, IC, weight, IC, bias, out, OC);
    else
        matmul(0, 1, N, OC, IC, 1, inp, IC, weight, IC, 0, out, OC);
}

// In the forward this was out[n,o] = sum_i inp[n,i] * weight[o,i] + bias[o], so
// dinp += dout · weight (N,OC)(OC,IC), dweight += doutᵀ · inp (OC,N)(N,IC), dbias += column sums.
void linear_backward(real *dinp, real *dweight, real *dbias, const real *dout, const real *inp,
                     const real *weight, int N, int IC, int OC, GradMode dinp_mode) {
    if (dinp) matmul(0, 0, N, IC, OC, 1, dout, OC, weight, IC, dinp_mode == GRAD_ADD, dinp, IC);
    if (dweight) matmul(1, 0, OC, IC, N, 1, dout, OC, inp, IC, 1, dweight, IC);
    if (dbias) colsum_accumulate(dbias, dout, N, OC);
}

// ---------------------------------------------------------------------------------------------
// Activations

// The forwards write each input's derivative too, when deriv is not NULL, for the backward, which
// then needs nothing else: GELU's Φ(x) is at hand in the forward, and its backward had computed erfc
// again (GELU forward + backward at the tiny model's shape, 1M values, 1 thread: 1.20 → 0.85 ms).
// deriv may be inp itself (the model's call): `omp simd` says the loop may be vectorised all the
// same, each element read before it is written (GCC's own check for overlap would fall back to a
// scalar loop).
void relu_forward(real *out, real *deriv, const real *inp, long n) {
    if (!deriv) {
#pragma omp parallel for simd schedule(static) if (n >= PAR_MIN)
        for (long i = 0; i < n; i++) out[i] = inp[i] > 0 ? inp[i] : 0;
        return;
    }
#pragma omp parallel for simd schedule(static) if (n >= PAR_MIN)
    for (long i = 0; i < n; i++) {
        real x = inp[i];
        out[i] = x > 0 ? x : 0;
        deriv[i] = x > 0 ? 1 : 0;
    }
}

// gelu(x) = x * Phi(x), Phi the standard normal CDF = erfc(-x/sqrt 2) / 2. The erfc form (rather
// than (1 + erf)/2) keeps full relative precision for negative x, where 1 + erf cancels.
// d/dx [x * Phi(x)] = Phi(x) + x * phi(x), phi the standard normal density.
#define GELU_INV_SQRT2 0.70710678118654752440
#define GELU_INV_SQRT_2PI 0.39894228040143267794
static inline real gelu_cdf(real x) { return (real)0.5 * erfc_r(-x * (real)GELU_INV_SQRT2); }
static inline real gelu_pdf(real x) { return (real)GELU_INV_SQRT_2PI * exp_r((real)-0.5 * x * x); }

void gelu_forward(real *out, real *deriv, const real *inp, long n) {
    if (!deriv) {
#pragma omp parallel for simd schedule(static) if (n >= PAR_MIN)
        for (long i = 0; i < n; i++) out[i] = inp[i] * gelu_cdf(inp[i]);
        return;
    }
#pragma omp parallel for simd schedule(static) if (n >= PAR_MIN)
    for (long i = 0; i < n; i++) {
        real x = inp[i], cdf = gelu_cdf(x);
        out[i] = x * cdf;
        deriv[i] = cdf + x * gelu_pdf(x);
    }
}

// Where the derivative is 0 (ReLU's inactive units) the gradient is 0 whatever dout holds, as
// PyTorch's: an infinite dout there would otherwise give NaN (inf · 0).
void activation_backward(real *dinp, const real *dout, const real *deriv, long n) {
    if (dinp == dout) {
#pragma omp parallel for schedule(static) if (n >= PAR_MIN)
        for (long i = 0; i < n; i++) dinp[i] = deriv[i] != 0 ? dinp[i] * deriv[i] : 0;
        return;
    }
#pragma omp parallel for schedule(static) if (n >= PAR_MIN)
    for (long i = 0; i < n; i++) dinp[i] += deriv[i] != 0 ? dout[i] * deriv[i] : 0;
}

// ---------------------------------------------------------------------------------------------
// Dropout

int dropout_keep(real p, uint64_t key, long i) { return rng_counter_uniform(key, (uint64_t)i) >= (double)p; }

// The loops below test rng_counter_at_least against the threshold of p: dropout_keep's bits, vectorised.

static void dropout_check_p(const char *fn, real p) {
    if (!(p >= 0 && p < 1)) {
        fprintf(stderr, "%s: dropout probability %g is outside [0, 1)\n", fn, (double)p);
        exit(1);
    }
}

void dropout_forward(real *out, const real *inp, real p, uint64_t key, long n) {
    dropout_check_p("dropout_forward", p);
    if (p == 0) {
        if (out != inp) memcpy(out, inp, sizeof(real) * n);
        return;
    }
    real scale = (real)(1.0 / (1.0 - (double)p));
    uint64_t thr = rng_counter_threshold(p);
#pragma omp parallel for schedule(static) if (n >= PAR_MIN)
    for (long i = 0; i < n; i++) out[i] = rng_counter_at_least(key, (uint64_t)i, thr) ? inp[i] * scale : 0;
}

// In the forward this was out[i] = keep(i) ? inp[i] * scale : 0, the mask recomputed from (key, i).
// Called in place (dinp == dout) it overwrites, the one meaningful reading of an aliased call.
void dropout_backward(real *dinp, const real *dout, real p, uint64_t key, long n) {
    dropout_check_p("dropout_backward", p);
    int in_place = dinp == dout;
    if (p == 0) {
        if (!in_place) {
#pragma omp parallel for schedule(static) if (n >= PAR_MIN)
            for (long i = 0; i < n; i++) dinp[i] += dout[i];
        }
        return;
    }
    real scale = (real)(1.0 / (1.0 - (double)p));
    uint64_t thr = rng_counter_threshold(p);
    if (in_place) {
#pragma omp parallel for schedule(static) if (n >= PAR_MIN)
        for (long i = 0; i < n; i++) dinp[i] = rng_counter_at_least(key, (uint64_t)i, thr) ? dinp[i] * scale : 0;
    } else {
#pragma omp parallel for schedule(static) if (n >= PAR_MIN)
        for (long i = 0; i < n; i++) dinp[i] += rng_counter_at_least(key, (uint64_t)i, thr) ? dout[i] * scale : 0;
    }
}

// ---------------------------------------------------------------------------------------------
// Cross-entropy

static void crossentropy_check_targets(const char *fn, const int *targets, const uint8_t *mask, int N, int V) {
    for (int n = 0; n < N; n++) {
        if ((!mask || mask[n]) && (targets[n] < 0 || targets[n] >= V)) {
            fprintf(stderr, "%s: target %d of row %d is outside the vocabulary [0, %d)\n", fn, targets[n], n, V);
            exit(1);
        }
    }
}

// Stable softmax: exp(x - max) summed in double; the loss -log p[target] is formed as
// log(sum) - (x[target] - max) so that it stays exact where p[target] underflows.
// probs are written for every row (masked-out rows too), the losses only where masked in.
void crossentropy_forward(real *losses, real *probs, const real *logits, const int *targets, const uint8_t *mask,
                          int N, int V) {
    crossentropy_check_targets("crossentropy_forward", targets, mask, N, V);
#pragma omp parallel for schedule(static) if ((long)N * V >= PAR_MIN)
    for (int n = 0; n < N; n++) {
        const real *x = logits + (long)n * V;
        real *p = probs + (long)n * V;
        real mx = x[0];
        for (int v = 1; v < V; v++) mx = x[v] > mx ? x[v] : mx;
        for (int v = 0; v < V; v++) p[v] = exp_r(x[v] - mx);
        double sum = sum_lanes(p, V);
        real inv = (real)(1.0 / sum);
        for (int v = 0; v < V; v++) p[v] *= inv;
        losses[n] = (!mask || mask[n]) ? (real)(log(sum) - ((double)x[targets[n]] - mx)) : 0;
    }
}

// In the forward this was loss = log sum_v exp(x[v]) - x[target], so dloss/dx[v] = p[v] - [v == target].
void crossentropy_backward(real *dlogits, const real *probs, const int *targets, const uint8_t *mask, real scale,
                           int N, int V) {
    crossentropy_check_targets("crossentropy_backward", targets, mask, N, V);
#pragma omp parallel for schedule(static) if ((long)N * V >= PAR_MIN)
    for (int n = 0; n < N; n++) {
        if (mask && !mask[n]) continue;
        const real *p = probs + (long)n * V;
        real *d = dlogits + (long)n * V;
        int t = targets[n];
        real dt = d[t];
        for (int v = 0; v < V; v++) d[v] += scale * p[v];
        d[t] = dt + scale * (p[t] - 1);
    }
}
