#include "optim.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

double lr_at(const TrainConfig *t, long step) {
    if (t->warmup_steps > 0 && step < t->warmup_steps) return t->lr * (double)(step + 1) / t->warmup_steps;
    long decay_steps = t->steps - t->warmup_steps;
    if (strcmp(t->schedule, "constant") == 0 || decay_steps <= 0) return t->lr;
    double progress = (double)(step - t->warmup_steps) / decay_steps;
    if (progress > 1) progress = 1;
    double shape = strcmp(t->schedule, "linear") == 0 ? 1.0 - progress : 0.5 * (1.0 + cos(3.14159265358979323846 * progress));
    return t->lr_min + (t->lr - t->lr_min) * shape;
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

void adam_update(Model *m, const TrainConfig *t, long step, double lr) {
    int adamw = strcmp(t->optimizer, "adamw") == 0;
    double b1 = t->beta1, b2 = t->beta2, eps = t->eps, wd = t->weight_decay;
    double bc1 = 1.0 - pow(b1, (double)step), bc2 = 1.0 - pow(b2, (double)step);
    for (int k = 0; k < m->n_tensors; k++) {
        const ParamTensor *pt = &m->tensors[k];
        real *p = m->params + pt->offset;
        const real *g = m->grads + pt->offset;
        real *mo = m->adam_m + pt->offset, *ve = m->adam_v + pt->offset;
        double decay = pt->decay ? wd : 0.0;
        long size = pt->size;
#pragma omp parallel for schedule(static)
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
