// A training step's gradient over k micro-batches (train.grad_accum): each micro-batch's gradient is
// formed from zero and the k are summed in the order 0..k-1, whoever computes them. With several
// threads the micro-batches run at the same time on model replicas (model_replica: the parameters
// shared, gradients and activations their own), one thread each, R at a time; the sum is the same,
// so the bits do not depend on R nor on the thread count.
//
// Why: a small model's step is many short passes over activations. One thread per micro-batch keeps
// each pass's data in that core's cache and forks and joins no threads per pass, where threads
// sharing every pass of one large batch spend their time in both (README, "Benchmark").
#ifndef MICRO_H
#define MICRO_H

#include <stdint.h>

#include "batch.h"
#include "evaluate.h"
#include "model.h"

typedef struct {
    Model *model;    // the caller's model: replica 0, and where the summed gradient lands
    Model *extra;    // replicas 1..n-1
    int n;           // replicas, 1 + the extra ones
    real *grad_sum;  // (n_params) the sum so far, when a step has more than one micro-batch
    EvalStats *stats;  // (n) the statistics of the micro-batches running at once
} MicroRunner;

// The bytes the n - 1 extra replicas take for micro-batches of B × T (activations and gradients):
// what micro_init allocates beyond the model and its gradient sum.
double micro_extra_bytes(Model *m, int n, int B, int T);

// A runner of up to n replicas (n ≥ 1; n = 1 runs the micro-batches in turn on m) for micro-batches of
// up to B × T, and with k_max > 1 the gradient sum. Returns 0, or -1 with err.
int micro_init(MicroRunner *r, Model *m, int n, int k_max, int B, int T, char *err, int errlen);
void micro_free(MicroRunner *r);

// Into r->model->grads (overwritten): Σ_a ∂(loss_scale × loss of batches[a])/∂θ over a = 0..k-1, in
// that order, with micro-batch a's dropout masks from keys[a] (0: no dropout). losses[a] gets each one's
// summed loss (model_forward), and each one's statistics are added to *stats in order (stats may be
// NULL). Runs
// min(n, k, the current OpenMP thread count) micro-batches at a time.
void micro_gradients(MicroRunner *r, const Batch *batches, int k, const uint64_t *keys, real loss_scale,
                     double *losses, EvalStats *stats);

#endif
