// Position encodings: the absolute table the model adds to its input, and the kernels that act inside
// attention (one file each: rope.c, rel.c, cope.c). attention.c runs the same loop for every layer and
// calls the hooks of the kernels a layer has switched on; adding an encoding means a new file with one
// PEKernel and a line in pe_kernels[] (registry.c), plus its fields in AttnPE (attention.h).
//
// How attention.c drives the hooks, per (sequence b, head h), rows cut into blocks [i0, i1):
//   forward:  qk_forward (whole batch, before the heads: RoPE) → head_forward →
//             per block: S = Q·Kᵀ (columns < i1) → block_forward → per row: logits a[j] = s·S_ij,
//             row_logits adds the kernel's terms, mask, softmax → out = α'·V
//   backward: head_backward → per block: dα = G·Vᵀ → block_backward → per row: softmax backward gives
//             dA, dS = s·dA, row_backward adds the kernel's paths → dV, dQ, dK products →
//             block_backward_end → head_backward_end → qk_backward (RoPE: rotate dq, dk back) →
//             reduce (after all heads: sum the per-head partial parameter gradients in a fixed order).
// Every hook may be NULL. The hooks of one head run on one thread; everything they write is either
// private to the head (its slice of the cache, of dq/dk/dv, its partial gradient) or per-thread work.
#ifndef PE_H
#define PE_H

#include <math.h>
#include <stdint.h>
#include <string.h>

#include "attention.h"

// Sinusoidal absolute PE (Vaswani et al.): table (T,C), table[t][2m] = sin(t·10000^(-2m/C)),
// table[t][2m+1] = cos(t·10000^(-2m/C)).
void pe_sinusoidal_table(real *table, int T, int C);

// One (sequence, head) as the kernels see it. Rows of the (T,dh) head views are `ld` apart.
typedef struct {
    const AttnPE *pe;
    AttnCache *cache;
    int T, C, dh;
    long bh;                    // b·H + h: this head's index in the (B,H,...) cache arrays
    real s;                     // 1/sqrt(dh)
    const real *q, *k;          // as attention uses them (rotated under RoPE); ld C
    const real *q_in, *k_in;    // as given to attention (unrotated); ld C
    const real *gate_keys;      // this head's separate gate keys (ld C), or NULL
    const uint8_t *pad;         // this sequence's key padding (T), or NULL
    const real *S;              // forward: raw q·k of the current block, row i at S + (i - i0)·T
    real *dq, *dk;              // backward: += gradients w.r.t. q, k (rotated space under RoPE); ld ldd
    int ldd;
    real *dq_in, *dk_in;        // backward: += gradients w.r.t. the unrotated inputs; ld C
    real *dgate_keys;           // backward: += gradient w.r.t. gate_keys (ld C), or NULL
    int rows;                   // the largest row block (work buffers are sized for it)
    int i0, i1;                 // the current row block
    int blk;                    // a kernel's per-block state, kept from block_* to its row hooks
    real *work;                 // this kernel's per-thread work (work_size reals)
    real *partial;              // this kernel's per-head partial parameter gradient (zeroed; partial_size reals)
} PEHead;

typedef struct {
    const char *name;
    int (*on)(const AttnPE *pe);
    int (*check_length)(const AttnPE *pe, int T, char *err, int errlen);
    // reals this kernel needs in the layer cache (bound after probs), per thread, per head
    long (*cache_size)(const AttnPE *pe, int B, int T, int C, int H);
    void (*cache_bind)(AttnCache *cache, real *mem, const AttnPE *pe, int B, int T, int C, int H);
    long (*work_size)(const AttnPE *pe, int T, int dh, int rows);
    long (*partial_size)(const AttnPE *pe, int dh);
    // before any head, outside the parallel region (tables that depend on T)
    void (*prepare)(const AttnPE *pe, int T, int dh);
    // q/k transform: writes the transformed q, k into the cache and points *qa, *ka at them
    void (*qk_forward)(const real **qa, const real **ka, AttnCache *cache, const real *q, const real *k,
                       const AttnPE *pe, int B, int T, int C, int H);
    void (*qk_saved)(const real **qa, const real **ka, const AttnCache *cache);
    void (*qk_backward)(PEHead *hd);  // dq_in, dk_in += Jᵀ·(dq, dk) for this head
    // logit term
    void (*head_forward)(PEHead *hd);
    void (*block_forward)(PEHead *hd);
    void (*row_logits)(PEHead *hd, int i, real *a);  // a[j] += term_ij for j <= i
    void (*head_backward)(PEHead *hd);
    void (*block_backward)(PEHead *hd);
    void (*row_backward)(PEHead *hd, int i, const real *dA, real *dS);  // dA, dS: row i, j <= i
    void (*block_backward_end)(PEHead *hd);
    void (*head_backward_end)(PEHead *hd);
    // dtable += Σ_h partials[h·partial_size ...] in order h = 0..nbh-1
    void (*reduce)(const AttnPE *pe, const real *partials, long nbh, int dh);
} PEKernel;

extern const PEKernel pe_rope, pe_rel, pe_cope;
extern const PEKernel *const pe_kernels[];
extern const int pe_n_kernels;

// RoPE on one head's rows t = 0..T-1 (the table of the last prepare): dst = rot(t)·src, or dst += rot(t)ᵀ·src.
void pe_rope_rotate(real *dst, int ldd, const real *src, int lds, int T, int dh);
void pe_rope_unrotate_add(real *dst, int ldd, const real *src, int lds, int T, int dh);

// Sums nbh partials of n reals (stride n) into dst in the order 0..nbh-1, parallel over elements.
void pe_reduce_partials(real *dst, const real *partials, long nbh, long n);

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
