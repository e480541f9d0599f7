#include "evaluate.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dist.h"

// The summed loss of row i of the last forward: each sequence's own sum, so that a split's loss,
// these added in sequence order, has the same bits whatever the batch size or the number of
// ranks that evaluated it.
static double row_loss(const Model *m, const Batch *b, int i) {
    double sum = 0;
    for (int t = 0; t < b->T; t++) {
        long n = (long)i * b->T + t;
        if (b->loss_mask[n]) sum += m->losses[n];
    }
    return sum;
}

void eval_accumulate(EvalStats *s, const Model *m, const Batch *b) {
    int V = m->V;
    for (int i = 0; i < b->B; i++) {
        int has_metric = 0, wrong = 0;
        s->loss_sum += row_loss(m, b, i);
        for (int t = 0; t < b->T; t++) {
            long n = (long)i * b->T + t;
            s->n_loss += b->loss_mask[n];
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

void eval_add(EvalStats *into, const EvalStats *s) {
    into->loss_sum += s->loss_sum;
    into->n_loss += s->n_loss;
    into->n_metric += s->n_metric;
    into->n_metric_err += s->n_metric_err;
    into->n_seq += s->n_seq;
    into->n_seq_err += s->n_seq_err;
}

void eval_sum_ranks(EvalStats *s) {
    long counts[5] = {s->n_loss, s->n_metric, s->n_metric_err, s->n_seq, s->n_seq_err};
    dist_sum_longs(counts, 5);
    s->n_loss = counts[0];
    s->n_metric = counts[1];
    s->n_metric_err = counts[2];
    s->n_seq = counts[3];
    s->n_seq_err = counts[4];
}

// Evaluates this rank's block of the split's batches [lo, hi), each sequence's loss into seq_loss
// (indexed from the block's first sequence).
static int evaluate_block(Model *m, Task *t, const char *split, long size, long lo, long hi, Batch *buf,
                          EvalStats *s, double *seq_loss, char *err, int errlen) {
    int capacity = buf->B;
    for (long batch = lo; batch < hi; batch++) {
        long first = batch * capacity;
        int want = size - first < capacity ? (int)(size - first) : capacity;
        if (task_eval_batch(t, split, first, buf, want) != 0) {
            snprintf(err, errlen, "split \"%s\": cannot read sequences %ld..%ld", split, first, first + want - 1);
            return -1;
        }
        if (model_prepare(m, buf->B, buf->T, err, errlen) != 0) return -1;
        model_forward(m, buf, 0);
        eval_accumulate(s, m, buf);
        for (int i = 0; i < buf->B; i++) seq_loss[first - lo * capacity + i] = row_loss(m, buf, i);
        buf->B = capacity;
    }
    return 0;
}

// In a job of several ranks each evaluates a block of the batches; the losses of every sequence
// are then added in sequence order, as one process adds them.
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
    long lo, hi, n_batches = (size + capacity - 1) / capacity;
    dist_block(n_batches, dist_rank(), dist_size(), &lo, &hi);
    double *seq_loss = malloc(sizeof *seq_loss * (size_t)(2 * size + 1));
    if (!seq_loss) {
        snprintf(err, errlen, "split \"%s\": out of memory for the losses of %ld sequences", split, size);
        return -1;
    }
    double *all = seq_loss + size;
    int rc = evaluate_block(m, t, split, size, lo, hi, buf, s, seq_loss, err, errlen);
    if (rc == 0) {
        long first = lo * capacity, end = hi * capacity < size ? hi * capacity : size;
        dist_gather_doubles(seq_loss, first < end ? end - first : 0, all);
        s->loss_sum = 0;
        for (long i = 0; i < size; i++) s->loss_sum += all[i];
        eval_sum_ranks(s);
    }
    free(seq_loss);
    return rc;
}

double batch_loss_normaliser(const Batch *b, int per_sequence) {
    long count = 0;
    for (int i = 0; i < b->B; i++) {
        long row = 0;
        for (int t = 0; t < b->T; t++) row += b->loss_mask[(long)i * b->T + t];
        count += per_sequence ? (row > 0) : row;
    }
    return (double)count;
}
