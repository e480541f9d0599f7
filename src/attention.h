// Multi-head causal self-attention (the core after the q, k, v projections), with the position
// encodings that act inside it: RoPE (a rotation of q and k), relative PE and CoPE (terms in the
// logits). Absolute PE acts on the input and lives in the model's embedding.
//
// For one head, with s = 1/sqrt(dh), S = q·k, mask M (causal AND key padding, diagonal forced on):
//   A_ij = s·(S_ij + R_ij) + γ·b_ij       R: relative term q_i·r_m, b: CoPE term, γ = s or 1 (nodiv)
//   α = softmax_j(A) over M, dropout on α, out_i = Σ_j α'_ij v_j
// docs/cope.md §3-§5 gives the CoPE math, docs/baselines.md §1-§6 the other encodings.
#ifndef ATTENTION_H
#define ATTENTION_H

#include <stdint.h>

#include "real.h"

// The position encodings acting inside one layer's attention. Tables are parameters owned by the
// model; d-tables are their gradients (accumulated, +=). Unused fields are 0/NULL.
typedef struct {
    int rope;                 // rotate q and k per head (pairs (2t, 2t+1), angle pos·base^(-2t/dh))
    double rope_base;
    int cope;                 // CoPE logit term in this layer
    int cope_npos;            // integer positions 0..npos-1; positions clamp at npos-1
    int cope_nodiv;           // 1: γ = 1 (paper's Appendix B); 0: γ = s (official default)
    int cope_gates_unrotated; // with rope: gates from unrotated q·k (default: rotated)
    int cope_keep_positions;  // keep the positions p in the cache (training does not need them)
    const real *cope_table;   // (dh, npos), shared by the heads of the layer
    real *cope_dtable;
    const real *gate_keys;    // (B,T,C) separate keys for the gates (sep_keys), or NULL: gates use k
    real *dgate_keys;
    int rel;                  // Shaw-style relative logit term
    int rel_npos;             // table columns; distance δ = i-j uses column rel_npos-1-δ
    int rel_capped;           // distances beyond the table reuse column 0; else they are refused
    const real *rel_table;    // (dh, rel_npos), shared by all heads and layers
    real *rel_dtable;
} AttnPE;

// What the forward saves for the backward (and, on request, the CoPE positions for pictures); points
// into memory the model owns.
typedef struct {
    real *probs;  // (B,H,T,T) attention probabilities before dropout; 0 at masked keys j <= i; entries
                  // j > i unspecified
    real *gates;  // (B,H,T,T) CoPE sigmoid gates σ (unmasked), or NULL; entries j > i unspecified
    real *pos;    // (B,H,T,T) CoPE positions p before clamping when cope_keep_positions, else NULL;
                  // entries j > i unspecified
    real *z;      // (B,H,T,npos) CoPE Z = q·E, or NULL; per row block only the columns its positions
                  // reach (up to floor(min(max p, npos-1)) + 2), the others unspecified
    real *qrot;   // (B,T,C) rotated q (RoPE), or NULL
    real *krot;   // (B,T,C) rotated k (RoPE), or NULL
} AttnCache;

// Number of reals the cache needs for this layer at these sizes, and binding it to memory.
long attention_cache_size(const AttnPE *pe, int B, int T, int C, int H);
void attention_cache_bind(AttnCache *cache, real *mem, const AttnPE *pe, int B, int T, int C, int H);

// 0 when this layer can run at context length T; else writes why (e.g. uncapped relative PE beyond
// its table) into err and returns -1.
int attention_check_length(const AttnPE *pe, int T, char *err, int errlen);

// Rows per block of the blocked products (default 64; 0 restores it). A tuning and test knob: results
// agree to rounding for any value. Not to be called while attention runs.
void attention_set_block_rows(int rows);

// Threads: OpenMP over (sequence, head) pairs; outputs do not depend on the thread count. The
// workspace is one buffer kept between calls, so attention calls must not run concurrently.
// out (B,T,C) heads concatenated; q, k, v (B,T,C); key_pad (B,T) with 1 at padding keys, or NULL.
// p_drop: dropout on the probabilities, mask from drop_key (see dropout_keep in layers.h).
void attention_forward(real *out, AttnCache *cache, const real *q, const real *k, const real *v,
                       const uint8_t *key_pad, const AttnPE *pe, real p_drop, uint64_t drop_key, int B, int T, int C,
                       int H);
// dq, dk, dv (B,T,C) accumulated (+=); also pe->cope_dtable, pe->dgate_keys, pe->rel_dtable.
void attention_backward(real *dq, real *dk, real *dv, const real *dout, const AttnCache *cache, const real *q,
                        const real *k, const real *v, const uint8_t *key_pad, const AttnPE *pe, real p_drop,
                        uint64_t drop_key, int B, int T, int C, int H);

#endif
