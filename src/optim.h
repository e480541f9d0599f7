// Optimisation: learning-rate schedules, global-norm gradient clipping, and Adam / AdamW over the
// model's flat parameter buffer (per-tensor weight-decay flags).
#ifndef OPTIM_H
#define OPTIM_H

#include "config.h"
#include "model.h"

typedef enum { SCHEDULE_CONSTANT, SCHEDULE_LINEAR, SCHEDULE_COSINE } Schedule;

// The train section's optimizer settings as numbers, resolved once (optimizer_init): the step reads
// no config strings.
typedef struct {
    double lr, lr_min;
    long warmup_steps, steps;
    Schedule schedule;
    int adamw;  // decoupled weight decay (AdamW); else Adam with L2 added to the gradient
    double beta1, beta2, eps, weight_decay;
} Optimizer;

void optimizer_init(Optimizer *o, const TrainConfig *t);

// The learning rate at optimizer step `step` (0-based): linear warm-up from lr/warmup to lr over
// warmup_steps, then constant, linear or cosine decay from lr to lr_min at train.steps.
double lr_at(const Optimizer *o, long step);

// The global L2 norm of the gradients, summed in a fixed order (independent of the thread count's
// scheduling). When clip > 0 and the norm exceeds it, scales the gradients by clip/norm.
// Returns the norm before clipping.
double clip_gradients(Model *m, double clip);

// One Adam/AdamW update at 1-based step t with learning rate lr (PyTorch's semantics: AdamW decays
// the weights by lr·wd before the update; Adam adds wd·p to the gradient). Only tensors with
// decay set are decayed.
void adam_update(Model *m, const Optimizer *o, long step, double lr);

#endif
