#include "optim.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

void optimizer_init(Optimizer *o, const TrainConfig *t) {
    *o = (Optimizer){
        .lr = t->lr,
        .lr_min = t->lr_min,
        .warmup_steps = t->warmup_steps,
        .steps = t->steps,
        .schedule = !strcmp(t->schedule, "constant") ? SCHEDULE_CONSTANT
                    : !strcmp(t->schedule, "linear") ? SCHEDULE_LINEAR
                                                     : SCHEDULE_COSINE,
        .adamw = strcmp(t->optimizer, "adamw") == 0,
        .beta1 = t->beta1,
        .beta2 = t->beta2,
        .eps = t->eps,
        .weight_decay = t->weight_decay,
    };
}

double lr_at(const Optimizer *o, long step) {
    if (o->warmup_steps > 0 && step < o->warmup_steps) return o->lr * (double)(step + 1) / o->warmup_steps;
    long decay_steps = o->steps - o->warmup_steps;
    if (o->schedule == SCHEDULE_CONSTANT || decay_steps <= 0) return o->lr;
    double progress = (double)(step - o->warmup_steps) / decay_steps;
    if (progress > 1) progress = 1;
    double shape = o->schedule == SCHEDULE_LINEAR ? 1.0 - progress : 0.5 * (1.0 + cos(3.14159265358979323846 * progress));
    return o->lr_min + (o->lr - o->lr_min) * shape;
}

// Fixed-size chunks make the summation order a function of the size only.
enum { NORM_CHUNK = 8192 };

static double chunk_sum_of_squares(const real *g, long n, long c) {
    long end = (c + 1) * NORM_CHUNK < n ? (c + 1) * NORM_CHUNK : n;
    double s = 0.0;
    for (long i = c * NORM_CHUNK; i < end; i++) s += (double)g[i] * g[i];
    return s;
}

double clip_gradients(Model *m, double clip) {
    long n = m->n_params, chunks = (n + NORM_CHUNK - 1) / NORM_CHUNK;
    const real *g = m->grads;
    double partial_stack[256];
    double *partial = chunks <= 256 ? partial_stack : malloc(sizeof(double) * chunks);
    double total = 0.0;
    if (partial) {
#pragma omp parallel for schedule(static)
        for (long c = 0; c < chunks; c++) partial[c] = chunk_sum_of_squares(g, n, c);
        for (long c = 0; c < chunks; c++) total += partial[c];
        if (partial != partial_stack) free(partial);
    } else {  // out of memory: the same sums in the same order, on one thread
        for (long c = 0; c < chunks; c++) total += chunk_sum_of_squares(g, n, c);
    }
    double norm = sqrt(total);
    if (clip > 0 && norm > clip) {
        real scale = (real)(clip / norm);
        real *gw = m->grads;
#pragma omp parallel for schedule(static)
        for (long i = 0; i < n; i++) gw[i] *= scale;
    }
    return norm;
}

void adam_update(Model *m, const Optimizer *o, long step, double lr) {
    int adamw = o->adamw;
    double b1 = o->beta1, b2 = o->beta2, eps = o->eps, wd = o->weight_decay;
    double bc1 = 1.0 - pow(b1, (double)step), bc2 = 1.0 - pow(b2, (double)step);
    // One parallel region for every tensor, the threads going on to the next tensor without waiting
    // for each other (the tensors are disjoint): a region per tensor cost a fork and a join each,
    // for tensors as small as a bias.
#pragma omp parallel
    for (int k = 0; k < m->n_tensors; k++) {
        const ParamTensor *pt = &m->tensors[k];
        real *p = m->params + pt->offset;
        const real *g = m->grads + pt->offset;
        real *mo = m->adam_m + pt->offset, *ve = m->adam_v + pt->offset;
        double decay = pt->decay ? wd : 0.0;
        long size = pt->size;
#pragma omp for schedule(static) nowait
        for (long i = 0; i < size; i++) {
            double grad = g[i];
            double param = p[i];
            if (adamw)
                param -= lr * decay * param;
            else
                grad += decay * param;
            double mi = b1 * mo[i] + (1.0 - b1) * grad;
            double vi = b2 * ve[i] + (1.0 - b2) * grad * grad;
            mo[i] = (real)mi;
            ve[i] = (real)vi;
            param -= lr * (mi / bc1) / (sqrt(vi / bc2) + eps);
            p[i] = (real)param;
        }
    }
}
