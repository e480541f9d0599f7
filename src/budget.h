// Memory budgets: what a run needs, part by part, worked out before anything large is allocated and
// checked against what the machine has, so a run too big for it is refused with the figures rather
// than killed by the kernel halfway through.
#ifndef BUDGET_H
#define BUDGET_H

#include <stdio.h>

#include "model.h"

#define BUDGET_MAX_PARTS 8

typedef struct {
    char name[96];
    double bytes;
    const char *shrink;  // the config keys (or options) that make this part smaller
} BudgetPart;

typedef struct {
    BudgetPart parts[BUDGET_MAX_PARTS];
    int n;
} Budget;

// What a model takes at batch B × context T: parameters, and for training their gradients and
// both Adam moments; the activations (attention and PE caches included, model_activation_bytes);
// n_batches batch buffers of B × T.
void budget_model(Budget *b, Model *m, int training, int B, int T, int n_batches);
double budget_total(const Budget *b);
// One line per part and the total, each after `indent`.
void budget_print(const Budget *b, FILE *f, const char *indent);
// 0 when the total fits in `limit` bytes (limit <= 0: unknown, anything fits); else -1 with err
// giving the total, the limit, the largest parts and the keys that shrink them.
int budget_check(const Budget *b, double limit, char *err, int errlen);

#endif
