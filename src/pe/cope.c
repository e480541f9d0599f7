// CoPE, contextual position encoding (Golovneva et al. 2024), as the official code implements it
// (cope_reference.md §2.2, backward §3.2-§3.3). For one head, s = 1/sqrt(dh), P = npos:
//   σ_ij = sigmoid(s·q_i·kc_j)        kc = gate_keys (sep_keys) or k;  g = σ·M
//   p_ij = Σ_{t>=j} g_it              reverse cumsum over keys;  c = min(p, P-1)
//   Z = Q·E                           E is (dh,P), shared by the heads of a layer
//   b_ij = w·Z[i][u] + (1-w)·Z[i][f]  f = floor(c), u = ceil(c), w = c - f
//   logit term γ·b_ij                 γ = s (official default) or 1 (cope_nodiv, the paper's Appendix B)
// Under RoPE, Z uses the rotated q, and the gates use the rotated q and keys (separate gate keys are
// rotated like k), or the unrotated ones with cope_gates_unrotated.
//
// Per block of rows: gates, cumsum and the row's largest position p_i0 in one pass; then Z only for the
// table columns the block reaches (u <= min(p_i0, P-1) + 1: with sparse gates most of a long table is
// never touched); then the interpolation per row inside attention's logit pass. The cache keeps σ
// (unmasked), p (before the clamp) and Z for the backward; entries j > i are not written.
#include <stdio.h>

#include "matmul.h"
#include "pe.h"

static int cope_on(const AttnPE *pe) { return pe->cope; }

static int cope_check_length(const AttnPE *pe, int T, char *err, int errlen) {
    (void)T;
    if (pe->cope_npos < 1) {
        snprintf(err, errlen, "CoPE needs at least 1 position (cope_npos %d)", pe->cope_npos);
        return -1;
    }
    return 0;
}

static long cope_cache_size(const AttnPE *pe, int B, int T, int C, int H) {
    (void)C;
    long bh = (long)B * H;
    return 2 * bh * T * T + bh * T * pe->cope_npos;
}

static void cope_cache_bind(AttnCache *cache, real *mem, const AttnPE *pe, int B, int T, int C, int H) {
    (void)C, (void)pe;
    long bhtt = (long)B * H * T * T;
    cache->gates = mem;
    cache->pos = mem + bhtt;
    cache->z = mem + 2 * bhtt;
}

static int separate_gates(const AttnPE *pe) { return pe->gate_keys != NULL || (pe->rope && pe->cope_gates_unrotated); }
static int rotated_gate_keys(const AttnPE *pe) { return pe->gate_keys != NULL && pe->rope && !pe->cope_gates_unrotated; }

// work: dZ (rows, P) | dp (T) | dS' (rows, T) when the gates are separate | rotated gate keys and
// their gradient (T, dh) each when RoPE rotates separate gate keys
static long cope_work_size(const AttnPE *pe, int T, int dh, int rows) {
    long n = (long)rows * pe->cope_npos + T;
    if (separate_gates(pe)) n += (long)rows * T;
    if (rotated_gate_keys(pe)) n += 2L * T * dh;
    return n;
}
static real *work_dz(const PEHead *hd) { return hd->work; }
static real *work_dp(const PEHead *hd) { return hd->work + (long)hd->rows * hd->pe->cope_npos; }
static real *work_dsg(const PEHead *hd) { return work_dp(hd) + hd->T; }
static real *work_keys(const PEHead *hd) { return work_dsg(hd) + (long)hd->rows * hd->T; }
static real *work_dkeys(const PEHead *hd) { return work_keys(hd) + (long)hd->T * hd->dh; }

static long cope_partial_size(const AttnPE *pe, int dh) { return (long)dh * pe->cope_npos; }

// Where the gate logits come from when they are not attention's S (sep keys, or unrotated gates under
// RoPE), and where their gradient dS' goes: gate logits = Qg·Kgᵀ, dQg += dS'·Kg, dKg += dS'ᵀ·Qg.
typedef struct {
    const real *q, *k;
    int ldq, ldk;
    real *dq, *dk;  // dk may be NULL (no gradient asked for the gate keys)
    int lddq, lddk;
} Gates;

static Gates gate_operands(const PEHead *hd) {
    const AttnPE *pe = hd->pe;
    int unrot = pe->rope && pe->cope_gates_unrotated;
    Gates g;
    g.q = unrot ? hd->q_in : hd->q;
    g.ldq = hd->C;
    g.dq = unrot ? hd->dq_in : hd->dq;
    g.lddq = unrot ? hd->C : hd->ldd;
    if (!pe->gate_keys) {  // shared keys, unrotated
        g.k = hd->k_in;
        g.ldk = hd->C;
        g.dk = hd->dk_in;
        g.lddk = hd->C;
    } else if (rotated_gate_keys(pe)) {
        g.k = work_keys(hd);
        g.ldk = hd->dh;
        g.dk = hd->dgate_keys ? work_dkeys(hd) : NULL;
        g.lddk = hd->dh;
    } else {
        g.k = hd->gate_keys;
        g.ldk = hd->C;
        g.dk = hd->dgate_keys;
        g.lddk = hd->C;
    }
    return g;
}

// The table columns the rows of the current block reach: u <= min(max_i p_i0, P-1) + 1.
static int block_columns(const PEHead *hd) {
    const real *pos = hd->cache->pos + hd->bh * hd->T * hd->T;
    int P = hd->pe->cope_npos;
    real maxp = 0;
    for (int i = hd->i0; i < hd->i1; i++)
        if (pos[(long)i * hd->T] > maxp) maxp = pos[(long)i * hd->T];
    int ncol = (maxp < P - 1 ? (int)maxp : P - 1) + 2;
    return ncol < P ? ncol : P;
}

static void cope_head_forward(PEHead *hd) {
    if (rotated_gate_keys(hd->pe)) pe_rope_rotate(work_keys(hd), hd->dh, hd->gate_keys, hd->C, hd->T, hd->dh);
}

static void cope_block_forward(PEHead *hd) {
    const AttnPE *pe = hd->pe;
    int T = hd->T, P = pe->cope_npos, i0 = hd->i0, i1 = hd->i1, sep = separate_gates(pe);
    real *gates = hd->cache->gates + hd->bh * T * T, *pos = hd->cache->pos + hd->bh * T * T;
    real s = hd->s;
    if (sep) {  // gate logits straight into the gates rows, made sigmoids in place below
        Gates g = gate_operands(hd);
        matmul(0, 1, i1 - i0, i1, hd->dh, 1, g.q + (long)i0 * g.ldq, g.ldq, g.k, g.ldk, 0, gates + (long)i0 * T, T);
    }
    const uint8_t *pad = hd->pad;
    for (int i = i0; i < i1; i++) {
        const real *x = sep ? gates + (long)i * T : hd->S + (long)(i - i0) * T;
        real *sg = gates + (long)i * T, *p = pos + (long)i * T;
#pragma omp simd
        for (int j = 0; j <= i; j++) sg[j] = pe_sigmoid(s * x[j]);
        real acc = 0;  // p_ij = Σ_{t>=j} σ_it·M_it
        if (pad) {
            for (int j = i; j >= 0; j--) {
                if (j == i || !pad[j]) acc += sg[j];
                p[j] = acc;
            }
        } else {
            for (int j = i; j >= 0; j--) {
                acc += sg[j];
                p[j] = acc;
            }
        }
    }
    int ncol = block_columns(hd);
    hd->blk = ncol;
    // Z[rows][0:ncol] = Q[rows]·E[:, 0:ncol]
    matmul(0, 0, i1 - i0, ncol, hd->dh, 1, hd->q + (long)i0 * hd->C, hd->C, pe->cope_table, P, 0,
           hd->cache->z + (hd->bh * T + i0) * P, P);
}

static void cope_row_logits(PEHead *hd, int i, real *a) {
    int T = hd->T, P = hd->pe->cope_npos;
    const real *p = hd->cache->pos + (hd->bh * T + i) * T, *z = hd->cache->z + (hd->bh * T + i) * P;
    real gamma = hd->pe->cope_nodiv ? 1 : hd->s, top = (real)(P - 1);
    for (int j = 0; j <= i; j++) {
        real c = p[j] < top ? p[j] : top;
        int f = (int)c;
        real w = c - f;
        int u = f + (w > 0);
        a[j] += gamma * (w * z[u] + (1 - w) * z[f]);
    }
}

static void cope_head_backward(PEHead *hd) {
    if (rotated_gate_keys(hd->pe)) {
        pe_rope_rotate(work_keys(hd), hd->dh, hd->gate_keys, hd->C, hd->T, hd->dh);
        memset(work_dkeys(hd), 0, sizeof(real) * hd->T * hd->dh);
    }
}

static void cope_block_backward(PEHead *hd) {
    int P = hd->pe->cope_npos, T = hd->T, rows = hd->i1 - hd->i0;
    int ncol = block_columns(hd);
    hd->blk = ncol;
    real *dz = work_dz(hd);
    for (int r = 0; r < rows; r++) memset(dz + (long)r * P, 0, sizeof(real) * ncol);
    if (separate_gates(hd->pe)) {
        real *dsg = work_dsg(hd);
        for (int r = 0; r < rows; r++) memset(dsg + (long)r * T, 0, sizeof(real) * hd->i1);
    }
}

// Quoting the forward:  a_ij += γ·(w·Z[i][u] + (1-w)·Z[i][f]),  c = min(p, P-1),  p_ij = Σ_{t>=j} g_it,
// g = σ(s·x)·M. Hence db = γ·dA; dZ[u] += w·db, dZ[f] += (1-w)·db; dp = db·(Z[u] - Z[f]) below the
// clamp (0 above it, and 0 at integer c where u = f: the reference's choice at the kink); the reverse
// cumsum turns into a prefix sum dg_it = Σ_{j<=t} dp_ij; dx = s·σ(1-σ)·M·dg.
static void cope_row_backward(PEHead *hd, int i, const real *dA, real *dS) {
    const AttnPE *pe = hd->pe;
    int T = hd->T, P = pe->cope_npos, r = i - hd->i0;
    const real *p = hd->cache->pos + (hd->bh * T + i) * T, *z = hd->cache->z + (hd->bh * T + i) * P;
    const real *sg = hd->cache->gates + (hd->bh * T + i) * T;
    real gamma = pe->cope_nodiv ? 1 : hd->s, top = (real)(P - 1), s = hd->s;
    real *dz = work_dz(hd) + (long)r * P, *dp = work_dp(hd);
    for (int j = 0; j <= i; j++) {
        real db = gamma * dA[j];
        real c = p[j] < top ? p[j] : top;
        int f = (int)c;
        real w = c - f;
        int u = f + (w > 0);
        dz[u] += w * db;
        dz[f] += (1 - w) * db;
        dp[j] = p[j] < top ? db * (z[u] - z[f]) : 0;
    }
    real *dx = separate_gates(pe) ? work_dsg(hd) + (long)r * T : dS;
    const uint8_t *pad = hd->pad;
    real acc = 0;
    for (int j = 0; j <= i; j++) {
        acc += dp[j];
        if (!pad || j == i || !pad[j]) dx[j] += s * sg[j] * (1 - sg[j]) * acc;
    }
}

static void cope_block_backward_end(PEHead *hd) {
    const AttnPE *pe = hd->pe;
    int P = pe->cope_npos, T = hd->T, i0 = hd->i0, i1 = hd->i1, rows = i1 - i0, ncol = hd->blk, dh = hd->dh;
    const real *dz = work_dz(hd);
    // dq[rows] += dZ[rows][0:ncol]·E[:, 0:ncol]ᵀ ;  partial[:, 0:ncol] += Q[rows]ᵀ·dZ[rows][0:ncol]
    matmul(0, 1, rows, dh, ncol, 1, dz, P, pe->cope_table, P, 1, hd->dq + (long)i0 * hd->ldd, hd->ldd);
    matmul(1, 0, dh, ncol, rows, 1, hd->q + (long)i0 * hd->C, hd->C, dz, P, 1, hd->partial, P);
    if (separate_gates(pe)) {
        Gates g = gate_operands(hd);
        const real *dsg = work_dsg(hd);
        matmul(0, 0, rows, dh, i1, 1, dsg, T, g.k, g.ldk, 1, g.dq + (long)i0 * g.lddq, g.lddq);
        if (g.dk) matmul(1, 0, i1, dh, rows, 1, dsg, T, g.q + (long)i0 * g.ldq, g.ldq, 1, g.dk, g.lddk);
    }
}

static void cope_head_backward_end(PEHead *hd) {
    if (rotated_gate_keys(hd->pe) && hd->dgate_keys)
        pe_rope_unrotate_add(hd->dgate_keys, hd->C, work_dkeys(hd), hd->dh, hd->T, hd->dh);
}

static void cope_reduce(const AttnPE *pe, const real *partials, long nbh, int dh) {
    if (pe->cope_dtable) pe_reduce_partials(pe->cope_dtable, partials, nbh, (long)dh * pe->cope_npos);
}

const PEKernel pe_cope = {
    .name = "cope",
    .on = cope_on,
    .check_length = cope_check_length,
    .cache_size = cope_cache_size,
    .cache_bind = cope_cache_bind,
    .work_size = cope_work_size,
    .partial_size = cope_partial_size,
    .head_forward = cope_head_forward,
    .block_forward = cope_block_forward,
    .row_logits = cope_row_logits,
    .head_backward = cope_head_backward,
    .block_backward = cope_block_backward,
    .row_backward = cope_row_backward,
    .block_backward_end = cope_block_backward_end,
    .head_backward_end = cope_head_backward_end,
    .reduce = cope_reduce,
};
