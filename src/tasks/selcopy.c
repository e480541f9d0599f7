// Selective copy (Gu & Dao, Mamba §4.1; CoPE paper §5): n_tokens data tokens scattered among
// n_blanks blanks must be reproduced in order, skipping the blanks.
//
// The CoPE paper gives only the blank counts (256 in-distribution, 128 "dense", 512 "sparse");
// every other choice follows the state-spaces generator (torch_copying_data with variable=True),
// and each is [UNKNOWN] for the paper:
//   - vocabulary: blank = 0, data tokens 1..alphabet, marker = alphabet+1 (the generator's A =
//     alphabet + 2; Mamba used a vocabulary of 16, so alphabet = 14 by default);
//   - data tokens i.i.d. uniform over 1..alphabet (repeats allowed);
//   - their positions: a uniformly random n_tokens-subset of the n_blanks + n_tokens content
//     positions, kept in order (randperm(L+M)[:M], sorted); n_tokens = 16 as in Mamba;
//   - copy_format "lm" (default): content, one marker, then the copied tokens; next-token
//     targets, so the answers are the targets at the marker and at the first n_tokens-1 copied
//     tokens (teacher forcing, as the official CoPE collator does for counting answers);
//     copy_format "mamba": content then n_tokens markers, and the target at the k-th marker is the
//     k-th data token (no teacher forcing: the Mamba/S4 set-up); elsewhere targets are next tokens.
//   Both give T = n_blanks + 2·n_tokens and the same answer positions (the last n_tokens).
//   - the metric: per-token error on the copied tokens (the trainer also reports per-sequence).
// Splits: "valid", "test" (n_blanks), "dense" (dense_blanks), "sparse" (sparse_blanks), each
// eval_sequences long, sequence n generated from a seed of (data seed, split, n). Training: an
// endless stream from a sequential Rng, or a fixed set of train_sequences shuffled per epoch.
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tasks/task_impl.h"

enum { SPLIT_VALID, SPLIT_TEST, SPLIT_DENSE, SPLIT_SPARSE, NSPLITS };
static const char *const split_names[NSPLITS] = {"valid", "test", "dense", "sparse"};

typedef struct {
    int M, alphabet, marker, mamba;
    int blanks[NSPLITS];
    int train_len;          // tokens per training sequence (T + 1 in lm format)
    long n_train;           // fixed set size (0: endless stream)
    uint8_t *train;         // (n_train, train_len) in sequence form (see make_seq)
    EpochSampler sampler;
    Rng stream;
    int *row;               // one sequence as ints
    int *tgt;               // mamba targets
    uint8_t *buf;
    char (*names)[12];      // token strings
} SelCopy;

// Sequence form: the content (nb + M tokens) then, in lm format, the marker and the M copied
// tokens (nb + 2M + 1 tokens); in mamba format M markers (nb + 2M tokens) and the copied tokens
// are read back from the content.
static int seq_len(const SelCopy *s, int nb) { return nb + 2 * s->M + (s->mamba ? 0 : 1); }

static void make_seq(const SelCopy *s, Rng *r, int nb, uint8_t *seq) {
    int n = nb + s->M, need = s->M, k = 0;
    for (int i = 0; i < n; i++) {
        // selection sampling (Knuth's algorithm S): a uniform M-subset, in order
        if ((double)need > rng_uniform(r) * (double)(n - i)) {
            int tok = 1 + (int)rng_below(r, (uint64_t)s->alphabet);
            seq[i] = (uint8_t)tok;
            need--;
            if (!s->mamba) seq[n + 1 + k] = (uint8_t)tok;
            k++;
        } else
            seq[i] = 0;
    }
    if (s->mamba)
        for (int i = 0; i < s->M; i++) seq[n + i] = (uint8_t)s->marker;
    else
        seq[n] = (uint8_t)s->marker;
}

static void fill_row(Task *t, Batch *b, int row, const uint8_t *seq, int nb) {
    SelCopy *s = t->impl;
    int L = seq_len(s, nb), T = nb + 2 * s->M, first_answer = nb + s->M;
    size_t o = (size_t)row * b->T;
    if (!s->mamba) {
        for (int i = 0; i < L; i++) s->row[i] = seq[i];
        batch_row_from_seq(b, row, s->row, L, 0);
    } else {
        int k = 0;
        for (int i = 0; i < T; i++) {
            b->tokens[o + i] = seq[i];
            if (i < first_answer && seq[i] != 0) s->tgt[k++] = seq[i];
        }
        for (int i = 0; i < T; i++) b->targets[o + i] = i < first_answer ? seq[i + 1] : s->tgt[i - first_answer];
        for (int i = T; i < b->T; i++) b->key_pad[o + i] = 1;
    }
    for (int i = 0; i < T; i++) {
        int answer = i >= first_answer;
        b->metric_mask[o + i] = (uint8_t)answer;
        b->loss_mask[o + i] = (uint8_t)(t->answer_loss ? answer : 1);
    }
}

static void sc_next_train(Task *t, Batch *b, int B) {
    SelCopy *s = t->impl;
    int nb = s->blanks[SPLIT_VALID];
    batch_begin(b, B, nb + 2 * s->M);
    for (int r = 0; r < B; r++) {
        const uint8_t *seq;
        if (s->n_train > 0)
            seq = s->train + (size_t)sampler_next(&s->sampler) * s->train_len;
        else {
            make_seq(s, &s->stream, nb, s->buf);
            seq = s->buf;
        }
        fill_row(t, b, r, seq, nb);
    }
}

static long sc_split_size(Task *t, int split) {
    (void)split;
    return t->cfg.eval_sequences;
}

static int sc_split_max_length(const Task *t, int split) {
    const SelCopy *s = t->impl;
    return s->blanks[split] + 2 * s->M;
}

static int sc_eval_batch(Task *t, int split, long first, Batch *b, int B) {
    SelCopy *s = t->impl;
    int nb = s->blanks[split];
    batch_begin(b, B, nb + 2 * s->M);
    for (int r = 0; r < B; r++) {
        Rng rng;
        task_item_rng(&rng, t->data_seed, STREAM_EVAL, split, first + r);
        make_seq(s, &rng, nb, s->buf);
        fill_row(t, b, r, s->buf, nb);
    }
    return B;
}

static const char *sc_token_str(const Task *t, int id) { return ((const SelCopy *)t->impl)->names[id]; }

static double sc_train_epoch(const Task *t) {
    const SelCopy *s = t->impl;
    return s->n_train > 0 ? sampler_epoch(&s->sampler) : -1.0;
}

static size_t sc_state_size(const Task *t) {
    const SelCopy *s = t->impl;
    return s->n_train > 0 ? SAMPLER_STATE_SIZE : RNG_STATE_SIZE;
}

static void sc_state_save(const Task *t, void *buf) {
    const SelCopy *s = t->impl;
    if (s->n_train > 0)
        sampler_save(&s->sampler, buf);
    else
        rng_save(&s->stream, buf);
}

static int sc_state_load(Task *t, const void *buf, size_t size) {
    SelCopy *s = t->impl;
    if (size != sc_state_size(t)) return -1;
    if (s->n_train > 0) return sampler_load(&s->sampler, buf);
    rng_load(&s->stream, buf);
    return 0;
}

// Its own keys of the "task" section (task_keys.c has the shared ones).
static const ConfigKey sc_keys[] = {
    {"task", "n_tokens", KEY_INT, TASK_KEY(n_tokens), 1, 100000, NULL, "16", 0, NULL,
     "data tokens to copy [UNKNOWN: Mamba's 16]"},
    {"task", "alphabet", KEY_INT, TASK_KEY(alphabet), 1, 250, NULL, "14", 0, NULL,
     "distinct data tokens; vocabulary = alphabet + 2 (blank 0, marker alphabet+1), so 14 gives Mamba's "
     "vocabulary of 16 [UNKNOWN]"},
    {"task", "n_blanks", KEY_INT, TASK_KEY(n_blanks), 0, 10000000, NULL, "256", 0, NULL,
     "blanks per training, valid and test sequence (the paper: 256)"},
    {"task", "dense_blanks", KEY_INT, TASK_KEY(dense_blanks), 0, 10000000, NULL, "128", 1, NULL,
     "blanks per sequence of the OOD \"dense\" split (the paper: 128)"},
    {"task", "sparse_blanks", KEY_INT, TASK_KEY(sparse_blanks), 0, 10000000, NULL, "512", 1, NULL,
     "blanks per sequence of the OOD \"sparse\" split (the paper: 512)"},
    {"task", "copy_format", KEY_CHOICE, TASK_KEY(copy_format), 0, 0, "lm|mamba", "\"lm\"", 0, NULL,
     "lm: content, one marker, then the copied tokens as next-token targets (teacher forcing, like the "
     "official counting collator); mamba: content then n_tokens markers, the k-th marker's target is the "
     "k-th token (state-spaces torch_copying_data) [UNKNOWN which the paper used]"},
};

static int sc_create(Task *t, char *err, int errlen) {
    const TaskConfig *c = &t->cfg;
    SelCopy *s = calloc(1, sizeof *s);
    if (!s) return errf(err, errlen, "selcopy: out of memory");
    t->impl = s;
    // task_create held every key to its schema range: n_blanks + 2 n_tokens stays far below INT_MAX.
    int blanks[NSPLITS] = {c->n_blanks, c->n_blanks, c->dense_blanks, c->sparse_blanks};
    s->M = c->n_tokens;
    s->alphabet = c->alphabet;
    s->marker = c->alphabet + 1;
    s->mamba = strcmp(c->copy_format, "mamba") == 0;
    memcpy(s->blanks, blanks, sizeof blanks);
    if (c->n_blanks + 2 * s->M > t->block_size)
        return errf(err, errlen, "task.n_blanks %d + 2 x task.n_tokens %d = T %d > model.block_size %d", c->n_blanks, s->M,
                         c->n_blanks + 2 * s->M, t->block_size);
    int longest = 0;
    for (int i = 0; i < NSPLITS; i++)
        if (seq_len(s, blanks[i]) > longest) longest = seq_len(s, blanks[i]);
    s->row = malloc(sizeof(int) * (size_t)longest);
    s->tgt = malloc(sizeof(int) * (size_t)s->M);
    s->buf = malloc((size_t)longest);
    s->names = calloc((size_t)s->marker + 1, sizeof *s->names);
    if (!s->row || !s->tgt || !s->buf || !s->names) return errf(err, errlen, "selcopy: out of memory");
    snprintf(s->names[0], 12, ".");
    for (int i = 1; i <= s->alphabet; i++) {
        if (s->alphabet <= 26)
            snprintf(s->names[i], 12, "%c", 'A' + i - 1);
        else
            snprintf(s->names[i], 12, "x%d", i);
    }
    snprintf(s->names[s->marker], 12, "|");

    s->train_len = seq_len(s, c->n_blanks);
    s->n_train = c->train_sequences;
    if (s->n_train > 0) {
        s->train = malloc((size_t)s->n_train * (size_t)s->train_len);
        if (!s->train) return errf(err, errlen, "task.train_sequences: out of memory for %ld sequences", s->n_train);
        for (long n = 0; n < s->n_train; n++) {
            Rng r;
            task_item_rng(&r, t->data_seed, STREAM_DATA, 0, n);
            make_seq(s, &r, c->n_blanks, s->train + (size_t)n * s->train_len);
        }
        if (sampler_init(&s->sampler, s->n_train, rng_key(t->run_seed, STREAM_SHUFFLE, 0, 0)) != 0)
            return errf(err, errlen, "selcopy: out of memory");
    } else
        rng_seed(&s->stream, rng_key(t->run_seed, STREAM_TRAIN, 0, 0));

    t->vocab_size = c->alphabet + 2;
    t->max_length = c->n_blanks + 2 * s->M;
    t->is_lm = 0;
    for (int i = 0; i < NSPLITS; i++) t->splits[i] = split_names[i];
    t->splits[NSPLITS] = NULL;
    return 0;
}

static void sc_destroy(Task *t) {
    SelCopy *s = t->impl;
    if (!s) return;
    free(s->train);
    sampler_free(&s->sampler);
    free(s->row);
    free(s->tgt);
    free(s->buf);
    free(s->names);
    free(s);
    t->impl = NULL;
}

const TaskOps selcopy_ops = {
    .name = "selcopy",
    .title = "selective copy",
    .answer = "the copied tokens",
    .answer_loss_auto = 1,
    TASK_KEYS(sc_keys),
    .shared_keys = "eval_sequences|train_sequences",
    .create = sc_create,
    .destroy = sc_destroy,
    .next_train = sc_next_train,
    .split_size = sc_split_size,
    .split_max_length = sc_split_max_length,
    .eval_batch = sc_eval_batch,
    .token_str = sc_token_str,
    .train_epoch = sc_train_epoch,
    .bytes_per_token = NULL,
    .state_size = sc_state_size,
    .state_save = sc_state_save,
    .state_load = sc_state_load,
};
