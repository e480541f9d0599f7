// Loss and task metrics over batches: the training loop's running statistics and the evaluation
// of a task split.
#ifndef EVALUATE_H
#define EVALUATE_H

#include "model.h"
#include "tasks/task.h"

typedef struct {
    double loss_sum;      // summed cross-entropy over loss-mask positions
    long n_loss;          // loss-mask positions
    long n_metric;        // metric-mask positions
    long n_metric_err;    // ... whose argmax is not the target
    long n_seq;           // sequences with at least one metric position
    long n_seq_err;       // ... with at least one error
} EvalStats;

// Adds the batch of the last model_forward (its losses and logits) to s.
void eval_accumulate(EvalStats *s, const Model *m, const Batch *b);
double eval_loss(const EvalStats *s);       // mean loss over the loss-mask positions, in nats
double eval_error(const EvalStats *s);      // fraction of metric positions wrong
double eval_seq_error(const EvalStats *s);  // fraction of sequences with an error

// A mean loss in nats as bits (per token, or per byte after dividing by bytes per token), and as
// perplexity.
double loss_bits(double nats);
double loss_ppl(double nats);

void eval_add(EvalStats *into, const EvalStats *s);
// Sums the counts of s over the ranks of a data-parallel job (src/dist.h; loss_sum is left alone).
void eval_sum_ranks(EvalStats *s);

// Evaluates up to max_sequences (0: all) of a split with dropout off, in batches of buf's
// capacity. Deterministic; changes nothing but the model's activations. In a job of several ranks
// every rank calls it and gets the whole split's statistics, each having evaluated a block of it.
int evaluate_split(Model *m, Task *t, const char *split, long max_sequences, Batch *buf, EvalStats *s, char *err,
                   int errlen);

// The loss normaliser of a batch: its number of loss-mask positions (train.loss_norm "token") or,
// per_sequence, of sequences with at least one ("sequence").
double batch_loss_normaliser(const Batch *b, int per_sequence);

#endif
