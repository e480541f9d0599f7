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

#include "pe/pe_api.h"
#include "real.h"


// Number of reals the cache needs for this layer at these sizes, and binding it to memory.
long attention_cache_size(const AttnPE *pe, int B, int T, int C, int H);
void attention_cache_bind(AttnCache *cache, real *mem, const AttnPE *pe, int B, int T, int C, int H);

// 0 when this layer can run at context length T; else writes why (e.g. uncapped relative PE beyond
// its table) into err and returns -1.
int attention_check_length(const AttnPE *pe, int T, char *err, int errlen);

// Rows per block of the blocked products (0, the default: 32, and 64 from T = 2048 on), for the
// caches bound after it: the calls on a cache cut its rows as it was bound (the kernels' caches
// depend on it). A tuning and test knob: results agree to rounding for any value. Not to be called
// while attention runs, nor between sizing a cache and binding it.
void attention_set_block_rows(int rows);
// Whether the blocks' products read the head's rows of q, k, v and the output gradient from copies
// (and sum dq, dk, dv from zero in rows of their own, added to the given ones at the end): -1, the
// default, where the head's rows outgrow L1 and are not contiguous (see head_rows in attention.c);
// 1 and 0 force it, for tests. The bits are the same either way where dq, dk, dv start at zero (the
// model's do), else the same to rounding. Not while attention runs.
void attention_set_copy_rows(int on);

// Threads: OpenMP over (sequence, head) pairs; outputs do not depend on the thread count. Calls
// from different threads may run at once on different caches and AttnPEs (each calling thread keeps
// its own workspace; the kernels' tables live in the layer's AttnPE).
// out (B,T,C) heads concatenated; q, k, v (B,T,C); key_pad (B,T) with 1 at padding keys, or NULL.
// p_drop: dropout on the probabilities, mask from drop_key (see dropout_keep in layers.h).
void attention_forward(real *out, AttnCache *cache, const real *q, const real *k, const real *v,
                       const uint8_t *key_pad, const AttnPE *pe, real p_drop, uint64_t drop_key, int B, int T, int C,
                       int H);
// The forward of one sequence's query rows r0..T-1 only, against keys 0..T-1, without dropout: for
// inference (decoding a new row with the keys of the earlier ones, streaming a long sequence in row
// blocks). q, k, v, out are one sequence's (T,C) (q, out: rows r0..T-1 are read and written), key_pad
// its (T) or NULL; the cache holds R = T - r0 rows (attention_*_rows with B = 1, R).
long attention_cache_size_rows(const AttnPE *pe, int B, int R, int T, int C, int H);
void attention_cache_bind_rows(AttnCache *cache, real *mem, const AttnPE *pe, int B, int R, int T, int C, int H);
void attention_forward_rows(real *out, AttnCache *cache, const real *q, const real *k, const real *v,
                            const uint8_t *key_pad, const AttnPE *pe, int T, int r0, int C, int H);
// dq, dk, dv (B,T,C) accumulated (+=); also pe->dgate_keys and the gradients of the kernels' tables.
void attention_backward(real *dq, real *dk, real *dv, const real *dout, const AttnCache *cache, const real *q,
                        const real *k, const real *v, const uint8_t *key_pad, const AttnPE *pe, real p_drop,
                        uint64_t drop_key, int B, int T, int C, int H);

#endif
