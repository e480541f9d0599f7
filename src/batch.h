// A batch of token sequences: what a task fills and the model reads. Allocated once by the caller
// for at most cap_B sequences of at most cap_T positions; each fill sets the shape it uses.
#ifndef BATCH_H
#define BATCH_H

#include <stdint.h>

// The longest context of any batch: model.block_size's maximum, and task.eval_length's.
#define TASK_MAX_CONTEXT 1048576

// The filled part is laid out densely as (B,T) with the filled B and T (row r, position t at r*T + t).
typedef struct {
    int B, T;              // sequences and positions actually filled
    int *tokens;           // (B,T) model inputs
    int *targets;          // (B,T) next-token targets
    uint8_t *loss_mask;    // (B,T) 1 where the loss counts
    uint8_t *metric_mask;  // (B,T) 1 where the task's error metric counts
    uint8_t *key_pad;      // (B,T) 1 at padding positions (never attended to as keys)
    long *rows;            // (cap_B) the task's scratch while filling: which stored sequence each row is
    int cap_B, cap_T;      // what batch_alloc allocated
} Batch;

// Allocates b for B sequences (1 ≤ B) of T positions (1 ≤ T ≤ TASK_MAX_CONTEXT). Returns 0, or -1
// with err naming the batch's shape and what failed.
int batch_init(Batch *b, int B, int T, char *err, int errlen);
// batch_init for the programs: on failure prints its message to stderr and exits with status 1.
void batch_alloc(Batch *b, int B, int T);
void batch_free(Batch *b);
// Rows first..first+count-1 of b's filled rows, as a batch that reads b's memory (not to be freed,
// filled or kept past b): the micro-batches of one drawn batch.
Batch batch_view(const Batch *b, int first, int count);

// For the tasks filling a batch. Sets the filled shape (checking capacity) and clears it to padding.
void batch_begin(Batch *b, int B, int T);
// The batch's row scratch (b->rows), checked to hold B rows.
long *batch_rows(Batch *b, int B);
// One row from a whole sequence seq[0..n-1]: tokens = seq[0..n-2], targets = seq[1..n-1], masks 0,
// padded to b->T with `pad` (key_pad = 1 there). n - 1 must be ≤ b->T.
void batch_row_from_seq(Batch *b, int row, const int *seq, int n, int pad);

#endif
