// The layers of the transformer other than attention: forward/backward pairs.
//
// Conventions (after llm.c): outputs first, then saved intermediates, then inputs, then weights,
// then sizes. Forward writes its outputs (=); backward ACCUMULATES (+=) into every gradient it is
// given (dinp included), so residual branches and tied weights are correct by construction and
// gradients are zeroed once per step. A NULL gradient pointer means "not needed". The exceptions, on
// request: linear_backward sets dinp (=) with GRAD_SET, sparing the caller the zeroing of a buffer
// that the product alone writes; dropout_backward and activation_backward called in place
// (dinp == dout) overwrite.
// Threads: loops are OpenMP over independent rows/outputs; weight-gradient reductions are
// either one BLAS product or per-thread partials summed in a fixed order, so results do not depend
// on scheduling.
#ifndef LAYERS_H
#define LAYERS_H

#include <stdint.h>

#include "real.h"

// Token embedding plus an optional position table added to it.
// out (N,T,C) [N sequences], tokens (N,T), wte (V,C), wpe (>=T,C) or NULL.
void embedding_forward(real *out, const int *tokens, const real *wte, const real *wpe, int N, int T, int C);
// dwte (V,C), dwpe (>=T,C) or NULL.
void embedding_backward(real *dwte, real *dwpe, const real *dout, const int *tokens, int N, int T, int C);

// LayerNorm over the last axis, eps 1e-5 (PyTorch's default).
// out (N,C), mean (N), rstd (N), inp (N,C), weight (C), bias (C).
void layernorm_forward(real *out, real *mean, real *rstd, const real *inp, const real *weight, const real *bias,
                       int N, int C);
void layernorm_backward(real *dinp, real *dweight, real *dbias, const real *dout, const real *inp,
                        const real *weight, const real *mean, const real *rstd, int N, int C);

// Affine map out = inp · weightᵀ + bias, weight stored (OC,IC) as PyTorch's nn.Linear.
// out (N,OC), inp (N,IC), weight (OC,IC), bias (OC) or NULL.
void linear_forward(real *out, const real *inp, const real *weight, const real *bias, int N, int IC, int OC);
// dinp (N,IC), dweight (OC,IC), dbias (OC) or NULL; dinp is added to (GRAD_ADD) or set (GRAD_SET).
typedef enum { GRAD_ADD, GRAD_SET } GradMode;
void linear_backward(real *dinp, real *dweight, real *dbias, const real *dout, const real *inp,
                     const real *weight, int N, int IC, int OC, GradMode dinp_mode);

// Elementwise activations, n values. GELU is the exact erf form (PyTorch's nn.GELU default).
// out = act(inp), and deriv = act'(inp) unless deriv is NULL (no backward follows); deriv may be inp
// itself, which the backward does not need.
void relu_forward(real *out, real *deriv, const real *inp, long n);
void gelu_forward(real *out, real *deriv, const real *inp, long n);
// dinp += dout·deriv, deriv from either forward; called in place (dinp == dout) it overwrites, as
// dropout_backward does.
void activation_backward(real *dinp, const real *dout, const real *deriv, long n);

// Inverted dropout with a counter-based mask: element i is kept iff
// rng_counter_uniform(key, i) >= p, and scaled by 1/(1-p). The mask is a pure function of
// (key, i), so the backward recomputes it and the bits do not depend on the thread count.
// p == 0 copies. out may alias inp. dinp == dout is allowed and then overwrites (dinp = mask·dout);
// with distinct buffers the backward accumulates as every backward does.
void dropout_forward(real *out, const real *inp, real p, uint64_t key, long n);
void dropout_backward(real *dinp, const real *dout, real p, uint64_t key, long n);
// 1 when element i of stream key is kept (shared with attention-probability dropout).
int dropout_keep(real p, uint64_t key, long i);

// Softmax cross-entropy over a target mask.
// losses (N): -log softmax(logits[n])[targets[n]] where mask[n], 0 elsewhere.
// probs (N,V): the softmax, saved for the backward. logits (N,V), targets (N), mask (N) or NULL (all).
void crossentropy_forward(real *losses, real *probs, const real *logits, const int *targets, const uint8_t *mask,
                          int N, int V);
// dlogits (N,V) += scale * (probs - onehot(target)) on masked rows; scale is the loss
// normalisation (1/number of target tokens, or 1/number of sequences).
void crossentropy_backward(real *dlogits, const real *probs, const int *targets, const uint8_t *mask, real scale,
                           int N, int V);

#endif
