// Helpers the encodings share (pe_api.h holds the types attention and the encodings both use):
// RoPE's rotation (CoPE rotates separate gate keys with it), the partial-gradient reduction, the
// sinusoidal table, and the vectorisable exp and sigmoid of the hot loops.
#ifndef PE_H
#define PE_H

#include <math.h>
#include <stdint.h>
#include <string.h>

#include "pe_api.h"

// Sinusoidal absolute PE (Vaswani et al.): table (T,C), table[t][2m] = sin(t·10000^(-2m/C)),
// table[t][2m+1] = cos(t·10000^(-2m/C)).
void pe_sinusoidal_table(real *table, int T, int C);

// RoPE's kernel, and its rotation of one head's rows t = 0..T-1 (with the table of the last prepare
// of the layer pe): dst = rot(t)·src, or dst += rot(t)ᵀ·src; _from rotates rows of positions
// t0..T-1 (row t at t - t0).
extern const PEKernel pe_rope;
void pe_rope_rotate(const AttnPE *pe, real *dst, int ldd, const real *src, int lds, int T, int dh);
void pe_rope_rotate_from(const AttnPE *pe, real *dst, int ldd, const real *src, int lds, int t0, int T, int dh);
void pe_rope_unrotate_add(const AttnPE *pe, real *dst, int ldd, const real *src, int lds, int T, int dh);

// Sums nbh partials of n reals (stride n) into dst in the order 0..nbh-1, parallel over elements;
// with cols > 0 the partials are (n/cols, cols) and dst, the sum's transpose, (cols, n/cols).
void pe_reduce_partials(real *dst, const real *partials, long nbh, long n, int cols);

// exp for the hot loops. The float build uses a polynomial (Cephes expf: |rel err| < 2e-7 on
// [-87, 88]) that vectorises under `omp simd` (with no-trapping-math, see attention.c), unlike libm's
// expf without -ffast-math; below -87 (and at -inf, masked logits) it returns exactly 0, above 88
// (+inf included) e^88, and NaN for NaN. The double build (gradient checks) uses exp().
static inline real pe_exp(real x) {
#ifdef REAL_DOUBLE
    return exp(x);
#else
    float xc = x < -87.0f ? -87.0f : x > 88.0f ? 88.0f : x;  // not fminf/fmaxf: libm calls, no vectors
    float n = floorf(xc * 1.44269504088896341f + 0.5f);
    float r = xc - n * 0.693359375f + n * 2.12194440e-4f;
    float y = 1.9875691500e-4f;
    y = y * r + 1.3981999507e-3f;
    y = y * r + 8.3334519073e-3f;
    y = y * r + 4.1665795894e-2f;
    y = y * r + 1.6666665459e-1f;
    y = y * r + 5.0000001201e-1f;
    y = y * r * r + r + 1.0f;
    // 2^n into the exponent bits, n read from the low mantissa bits of n + 1.5 * 2^23 rather than by
    // (int32_t)n: for NaN x (which passes the clamps: every compare is false) that conversion is
    // undefined and x86 gives INT_MIN, which the shift then overflows. The same bits for every
    // other x; NaN gives NaN (y is NaN).
    float k = n + 12582912.0f;
    uint32_t kb, bits;
    memcpy(&kb, &k, sizeof kb);
    bits = (kb - 0x4B400000u + 127u) << 23;
    float scale;
    memcpy(&scale, &bits, sizeof scale);
    return x < -87.0f ? 0.0f : y * scale;
#endif
}

static inline real pe_sigmoid(real x) { return 1 / (1 + pe_exp(-x)); }

#endif
