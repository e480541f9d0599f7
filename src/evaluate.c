#include "evaluate.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

void eval_accumulate(EvalStats *s, const Model *m, const Batch *b) {
    int V = m->V;
    for (int i = 0; i < b->B; i++) {
        int has_metric = 0, wrong = 0;
        for (int t = 0; t < b->T; t++) {
            long n = (long)i * b->T + t;
            if (b->loss_mask[n]) {
                s->loss_sum += m->losses[n];
                s->n_loss++;
            }
            if (!b->metric_mask[n]) continue;
            const real *row = m->logits + n * V;
            int best = 0;
            for (int v = 1; v < V; v++)
                if (row[v] > row[best]) best = v;
            has_metric = 1;
            s->n_metric++;
            if (best != b->targets[n]) {
                s->n_metric_err++;
                wrong = 1;
            }
        }
        s->n_seq += has_metric;
        s->n_seq_err += wrong;
    }
}

double eval_loss(const EvalStats *s) { return s->loss_sum / (s->n_loss > 0 ? s->n_loss : 1); }
double loss_bits(double nats) { return nats / 0.69314718055994531; }
double loss_ppl(double nats) { return exp(nats); }
double eval_error(const EvalStats *s) { return s->n_metric ? (double)s->n_metric_err / s->n_metric : 0.0; }
double eval_seq_error(const EvalStats *s) { return s->n_seq ? (double)s->n_seq_err / s->n_seq : 0.0; }

int evaluate_split(Model *m, Task *t, const char *split, long max_sequences, Batch *buf, EvalStats *s, char *err,
                   int errlen) {
    memset(s, 0, sizeof *s);
    long size = task_split_size(t, split);
    if (size < 0) {
        snprintf(err, errlen, "unknown split \"%s\"", split);
        return -1;
    }
    if (max_sequences > 0 && max_sequences < size) size = max_sequences;
    int capacity = buf->B;
    for (long first = 0; first < size; first += capacity) {
        int want = size - first < capacity ? (int)(size - first) : capacity;
        if (task_eval_batch(t, split, first, buf, want) != 0) {
            snprintf(err, errlen, "split \"%s\": cannot read sequences %ld..%ld", split, first, first + want - 1);
            return -1;
        }
        if (model_prepare(m, buf->B, buf->T, err, errlen) != 0) return -1;
        model_forward(m, buf, 0);
        eval_accumulate(s, m, buf);
        buf->B = capacity;
    }
    return 0;
}

double batch_loss_normaliser(const Batch *b, const char *loss_norm) {
    long count = 0;
    int per_sequence = strcmp(loss_norm, "sequence") == 0;
    for (int i = 0; i < b->B; i++) {
        long row = 0;
        for (int t = 0; t < b->T; t++) row += b->loss_mask[(long)i * b->T + t];
        count += per_sequence ? (row > 0) : row;
    }
    return (double)count;
}
