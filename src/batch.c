#include "batch.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "error.h"

int batch_init(Batch *b, int B, int T, char *err, int errlen) {
    memset(b, 0, sizeof *b);
    if (B < 1 || T < 1 || T > TASK_MAX_CONTEXT)
        return errf(err, errlen, "batch of %d x %d positions: expected at least 1 sequence of 1 to %d positions", B, T,
                         TASK_MAX_CONTEXT);
    size_t n = (size_t)B * (size_t)T;  // below 2^52: no overflow, here or in the byte counts
    b->tokens = calloc(n, sizeof(int));
    b->targets = calloc(n, sizeof(int));
    b->loss_mask = calloc(n, 1);
    b->metric_mask = calloc(n, 1);
    b->key_pad = calloc(n, 1);
    b->rows = calloc((size_t)B, sizeof(long));
    if (!b->tokens || !b->targets || !b->loss_mask || !b->metric_mask || !b->key_pad || !b->rows) {
        batch_free(b);
        return errf(err, errlen, "batch of %d x %d positions: out of memory for its %.3g GiB", B, T,
                         (double)n * (2 * sizeof(int) + 3) / (1 << 30));
    }
    b->cap_B = B;
    b->cap_T = T;
    b->B = B;
    b->T = T;
    return 0;
}

void batch_alloc(Batch *b, int B, int T) {
    char err[256];
    if (batch_init(b, B, T, err, sizeof err) != 0) {
        fprintf(stderr, "%s\n", err);
        exit(1);
    }
}

void batch_free(Batch *b) {
    free(b->tokens);
    free(b->targets);
    free(b->loss_mask);
    free(b->metric_mask);
    free(b->key_pad);
    free(b->rows);
    memset(b, 0, sizeof *b);
}

Batch batch_view(const Batch *b, int first, int count) {
    long o = (long)first * b->T;
    return (Batch){.B = count, .T = b->T, .tokens = b->tokens + o, .targets = b->targets + o,
                   .loss_mask = b->loss_mask + o, .metric_mask = b->metric_mask + o, .key_pad = b->key_pad + o,
                   .cap_B = count, .cap_T = b->T};
}

// A batch of B x T must fit what batch_alloc allocated: a caller's mistake, so it stops the program.
static void batch_check(const Batch *b, int B, int T) {
    if (B > b->cap_B || T > b->cap_T) {
        fprintf(stderr,
                "task: a batch of %d x %d does not fit the %d x %d allocated (batch_alloc; evaluation batches need "
                "task_split_max_length)\n",
                B, T, b->cap_B, b->cap_T);
        exit(1);
    }
}

long *batch_rows(Batch *b, int B) {
    batch_check(b, B, 0);
    return b->rows;
}

void batch_begin(Batch *b, int B, int T) {
    batch_check(b, B, T);
    b->B = B;
    b->T = T;
    size_t n = (size_t)B * (size_t)T;
    memset(b->tokens, 0, n * sizeof(int));
    memset(b->targets, 0, n * sizeof(int));
    memset(b->loss_mask, 0, n);
    memset(b->metric_mask, 0, n);
    memset(b->key_pad, 0, n);
}

void batch_row_from_seq(Batch *b, int row, const int *seq, int n, int pad) {
    int T = b->T;
    int *tok = b->tokens + (size_t)row * T, *tgt = b->targets + (size_t)row * T;
    uint8_t *kp = b->key_pad + (size_t)row * T;
    int m = n - 1;
    for (int i = 0; i < m; i++) {
        tok[i] = seq[i];
        tgt[i] = seq[i + 1];
    }
    for (int i = m; i < T; i++) {
        tok[i] = pad;
        tgt[i] = pad;
        kp[i] = 1;
    }
}
