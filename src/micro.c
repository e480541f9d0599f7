#include "micro.h"

#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "matmul.h"

double micro_extra_bytes(Model *m, int n, int B, int T) {
    double one = model_activation_bytes(m, B, T) + sizeof(real) * (double)m->n_params;
    return (n - 1) * one;
}

int micro_init(MicroRunner *r, Model *m, int n, int k_max, int B, int T, char *err, int errlen) {
    memset(r, 0, sizeof *r);
    r->model = m;
    r->n = 1;
    r->extra = calloc(n > 1 ? n - 1 : 1, sizeof *r->extra);
    r->stats = calloc(n, sizeof *r->stats);
    r->grad_sum = k_max > 1 ? malloc(sizeof(real) * (size_t)m->n_params) : NULL;
    if (!r->extra || !r->stats || (k_max > 1 && !r->grad_sum)) {
        snprintf(err, errlen, "out of memory for the gradient sum of %d micro-batches", k_max);
        return -1;
    }
    for (; r->n < n; r->n++) {
        Model *x = &r->extra[r->n - 1];
        if (model_replica(x, m, err, errlen) != 0 || model_prepare(x, B, T, err, errlen) != 0) {
            model_free(x);
            return -1;
        }
    }
    return 0;
}

void micro_free(MicroRunner *r) {
    for (int i = 0; i < r->n - 1; i++) model_free(&r->extra[i]);
    free(r->extra);
    free(r->stats);
    free(r->grad_sum);
    memset(r, 0, sizeof *r);
}

static Model *replica(const MicroRunner *r, int i) { return i == 0 ? r->model : &r->extra[i - 1]; }

// One micro-batch's gradient from zero, in x's gradients; its loss and statistics. Its products
// are cut as at the top level, whatever the level it runs at (matmul_set_top_level), so a replica's
// bits are the ones a model running alone would compute.
static void one_micro(Model *x, const Batch *b, uint64_t key, real loss_scale, double *loss, EvalStats *stats) {
    matmul_set_top_level(omp_get_level());
    model_zero_grad(x);
    *loss = model_forward(x, b, key);
    eval_accumulate(stats, x, b);
    model_backward(x, b, loss_scale);
    matmul_set_top_level(0);
}

// sum = g (first) or sum += g_0, g_1, ... in order: the replicas' gradients of micro-batches a0..a0+n-1.
static void fold(real *sum, const MicroRunner *r, int n, int first) {
    long size = r->model->n_params;
#pragma omp parallel for schedule(static)
    for (long i = 0; i < size; i++) {
        real s = first ? r->model->grads[i] : sum[i] + r->model->grads[i];
        for (int j = 1; j < n; j++) s += r->extra[j - 1].grads[i];
        sum[i] = s;
    }
}

void micro_gradients(MicroRunner *r, const Batch *batches, int k, const uint64_t *keys, real loss_scale,
                     double *losses, EvalStats *stats) {
    int threads = omp_get_max_threads(), at_once = r->n < threads ? r->n : threads;
    for (int a0 = 0; a0 < k; a0 += at_once) {
        int n = k - a0 < at_once ? k - a0 : at_once;
        memset(r->stats, 0, sizeof *r->stats * (size_t)n);
        if (n == 1) {  // outside a parallel region, so that its passes use every thread
            one_micro(r->model, &batches[a0], keys[a0], loss_scale, &losses[a0], &r->stats[0]);
        } else {
#pragma omp parallel num_threads(n)
            {
                // A replica's passes run on its own thread: where OMP_MAX_ACTIVE_LEVELS lets nested
                // regions fork, each would otherwise start a team of the program's thread count.
                omp_set_num_threads(1);
#pragma omp for schedule(static, 1)
                for (int i = 0; i < n; i++)
                    one_micro(replica(r, i), &batches[a0 + i], keys[a0 + i], loss_scale, &losses[a0 + i],
                              &r->stats[i]);
            }
        }
        if (k > 1) fold(r->grad_sum, r, n, a0 == 0);
        if (stats)
            for (int i = 0; i < n; i++) eval_add(stats, &r->stats[i]);
    }
    if (k > 1) memcpy(r->model->grads, r->grad_sum, sizeof(real) * (size_t)r->model->n_params);
}
