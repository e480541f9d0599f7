// Flip-flop language modelling (Liu et al. 2023, "Exposing Attention Glitches"; CoPE paper §5).
//
// A sequence alternates instructions and bits: `w b` writes b, `i b` is a distractor, `r b` reads,
// and b must equal the last written bit. Canonical form: the first instruction is w, the last is r;
// the middle ones are i.i.d. with p_i = p and p_w = p_r = (1-p)/2 (FFL(p)); bits after w and i are
// uniform. Token ids as the synthseq/flipflop card: w=0 r=1 i=2 0=3 1=4.
//
// Batches: tokens = seq[0..L-2], targets = seq[1..L-1]. The answers are the bits after an `r`: the
// metric counts them (the origin paper's "glitch rate"), and so does the loss with loss_on=answer
// (the "clean" loss of third-party reproductions); loss_on=all is plain next-token LM loss.
//
// Splits: "valid" and "test" FFL(p_ignore), "sparse" FFL(p_sparse), "dense" FFL(p_dense), each
// eval_sequences long and eval_length tokens. Sequence n of a split is generated from a seed of
// (data seed, split, n), so evaluation is the same at any batch size and in every call. Training:
// an endless stream from a sequential Rng (the cursor), or a fixed set (train_sequences, or
// data_dir/train.txt) shuffled per epoch.
//
// Files (data_dir, write_dir): one sequence per line over the characters w r i 0 1, e.g.
// "w1i0r1..."; train.txt, and optionally valid.txt, test.txt, sparse.txt, dense.txt (a missing
// evaluation file means that split is generated; anything else at its path is read and must be a
// good file). Every line must have exactly task.length (train) or eval_length characters,
// instructions at odd columns, bits at even ones, first instruction w, last instruction r (the
// canonical form: the read a sequence is scored on), and every read bit equal to the last written
// bit.
#include <stdlib.h>
#include <string.h>

#include "input.h"
#include "tasks/task_impl.h"

enum { W = 0, R = 1, I = 2, B0 = 3, B1 = 4, NSYM = 5 };
static const char sym_chars[NSYM + 1] = "wri01";
static const char *const sym_str[NSYM] = {"w", "r", "i", "0", "1"};

enum { SPLIT_VALID, SPLIT_TEST, SPLIT_SPARSE, SPLIT_DENSE, NSPLITS };
static const char *const split_names[NSPLITS] = {"valid", "test", "sparse", "dense"};

typedef struct {
    long n;
    int len;
    uint8_t *seq;  // (n, len) token ids
} SeqSet;

typedef struct {
    int length, eval_length;
    double p[NSPLITS];
    SeqSet train;              // fixed training set (n = 0: endless stream)
    SeqSet eval[NSPLITS];      // loaded from files (n = 0: generated)
    EpochSampler sampler;
    Rng stream;
    int *row;                  // one sequence as ints
    uint8_t *buf;              // one generated sequence
} FlipFlop;

// An FFL(p_ignore) sequence of L tokens (L even, ≥ 4).
static void ffl_generate(Rng *r, double p_ignore, int L, uint8_t *seq) {
    int pairs = L / 2, reg = 0;
    double p_w = (1.0 - p_ignore) / 2.0;
    for (int k = 0; k < pairs; k++) {
        int ins;
        if (k == 0)
            ins = W;
        else if (k == pairs - 1)
            ins = R;
        else {
            double u = rng_uniform(r);
            ins = u < p_ignore ? I : u < p_ignore + p_w ? W : R;
        }
        int bit = ins == R ? reg : (int)(rng_u64(r) >> 63);
        if (ins == W) reg = bit;
        seq[2 * k] = (uint8_t)ins;
        seq[2 * k + 1] = (uint8_t)(B0 + bit);
    }
}

static void fill_row(Task *t, Batch *b, int row, const uint8_t *seq, int L) {
    FlipFlop *f = t->impl;
    for (int i = 0; i < L; i++) f->row[i] = seq[i];
    batch_row_from_seq(b, row, f->row, L, B0);
    size_t o = (size_t)row * b->T;
    for (int i = 0; i < L - 1; i++) {
        int answer = seq[i] == R;
        b->metric_mask[o + i] = (uint8_t)answer;
        b->loss_mask[o + i] = (uint8_t)(t->answer_loss ? answer : 1);
    }
}

static void ff_next_train(Task *t, Batch *b, int B) {
    FlipFlop *f = t->impl;
    int L = f->length;
    batch_begin(b, B, L - 1);
    for (int r = 0; r < B; r++) {
        const uint8_t *seq;
        if (f->train.n > 0)
            seq = f->train.seq + (size_t)sampler_next(&f->sampler) * L;
        else {
            ffl_generate(&f->stream, f->p[SPLIT_VALID], L, f->buf);
            seq = f->buf;
        }
        fill_row(t, b, r, seq, L);
    }
}

static long ff_split_size(Task *t, int s) {
    FlipFlop *f = t->impl;
    return f->eval[s].n > 0 ? f->eval[s].n : t->cfg.eval_sequences;
}

static int ff_split_max_length(const Task *t, int s) {
    const FlipFlop *f = t->impl;
    return (f->eval[s].n > 0 ? f->eval[s].len : f->eval_length) - 1;
}

// Sequence n of split s, generated (into f->buf) or loaded.
static const uint8_t *eval_seq(Task *t, int s, long n) {
    FlipFlop *f = t->impl;
    if (f->eval[s].n > 0) return f->eval[s].seq + (size_t)n * f->eval[s].len;
    Rng r;
    task_item_rng(&r, t->data_seed, STREAM_EVAL, s, n);
    ffl_generate(&r, f->p[s], f->eval_length, f->buf);
    return f->buf;
}

static int ff_eval_batch(Task *t, int s, long first, Batch *b, int B) {
    int L = ff_split_max_length(t, s) + 1;
    batch_begin(b, B, L - 1);
    for (int r = 0; r < B; r++) fill_row(t, b, r, eval_seq(t, s, first + r), L);
    return B;
}

static const char *ff_token_str(const Task *t, int id) {
    (void)t;
    return sym_str[id];
}

static double ff_train_epoch(const Task *t) {
    const FlipFlop *f = t->impl;
    return f->train.n > 0 ? sampler_epoch(&f->sampler) : -1.0;
}

static size_t ff_state_size(const Task *t) {
    const FlipFlop *f = t->impl;
    return f->train.n > 0 ? SAMPLER_STATE_SIZE : RNG_STATE_SIZE;
}

static void ff_state_save(const Task *t, void *buf) {
    const FlipFlop *f = t->impl;
    if (f->train.n > 0)
        sampler_save(&f->sampler, buf);
    else
        rng_save(&f->stream, buf);
}

static int ff_state_load(Task *t, const void *buf, size_t size) {
    FlipFlop *f = t->impl;
    if (size != ff_state_size(t)) return -1;
    if (f->train.n > 0) return sampler_load(&f->sampler, buf);
    rng_load(&f->stream, buf);
    return 0;
}

// Loads and validates a file of flip-flop strings, every line `len` characters.
static int load_file(const char *path, int len, const char *len_key, SeqSet *out, char *err, int errlen) {
    size_t size;
    char *text = task_read_file(path, &size, err, errlen);
    if (!text) return -1;
    long lines = 0;
    for (size_t i = 0; i < size; i++) lines += text[i] == '\n';
    if (size > 0 && text[size - 1] != '\n') lines++;
    out->seq = malloc((size_t)(lines > 0 ? lines : 1) * (size_t)len);
    out->len = len;
    out->n = 0;
    if (!out->seq) {
        free(text);
        return errf(err, errlen, "%s: out of memory for %ld sequences", path, lines);
    }
    char *p = text, *end = text + size;
    long line = 0;
    int rc = 0;
    while (p < end && rc == 0) {
        line++;
        char *nl = memchr(p, '\n', (size_t)(end - p));
        char *eol = nl ? nl : end;
        long n = eol - p;
        if (n > 0 && p[n - 1] == '\r') n--;
        if (n != len) {
            rc = errf(err, errlen, "%s:%ld: %ld characters, expected %d (%s)", path, line, n, len, len_key);
            break;
        }
        uint8_t *seq = out->seq + (size_t)out->n * len;
        int reg = -1;
        for (int c = 0; c < len; c++) {
            const char *q = memchr(sym_chars, p[c], NSYM);
            int id = q && p[c] ? (int)(q - sym_chars) : -1;
            int want_ins = c % 2 == 0;
            if (id < 0 || (want_ins && id >= B0) || (!want_ins && id < B0)) {
                rc = errf(err, errlen, "%s:%ld:%d: '%c' where %s expected", path, line, c + 1,
                               p[c] >= 32 && p[c] < 127 ? p[c] : '?', want_ins ? "an instruction w, r or i" : "a bit 0 or 1");
                break;
            }
            if (c == 0 && id != W) {
                rc = errf(err, errlen, "%s:%ld:1: the first instruction must be w", path, line);
                break;
            }
            if (!want_ins) {
                int bit = id - B0, ins = seq[c - 1];
                if (ins == W) reg = bit;
                if (ins == R && bit != reg) {
                    rc = errf(err, errlen, "%s:%ld:%d: read returns %d but the last written bit is %d", path, line,
                                   c + 1, bit, reg);
                    break;
                }
            }
            seq[c] = (uint8_t)id;
        }
        if (rc == 0 && seq[len - 2] != R)
            rc = errf(err, errlen,
                           "%s:%ld:%d: '%c' where the last instruction must be r (a sequence is scored on the bits its "
                           "reads return)",
                           path, line, len - 1, p[len - 2]);
        if (rc == 0) out->n++;
        p = nl ? nl + 1 : end;
    }
    free(text);
    if (rc == 0 && out->n == 0) rc = errf(err, errlen, "%s: no sequences (empty file)", path);
    return rc;
}

static int write_file(const char *path, const SeqSet *set, Task *t, int split, long n, char *err, int errlen) {
    FILE *fp = input_create_file(path, err, errlen);
    if (!fp) return -1;
    FlipFlop *f = t->impl;
    int L = set ? set->len : f->eval_length;
    char *line = malloc((size_t)L + 1);
    if (!line) {
        fclose(fp);
        return errf(err, errlen, "%s: out of memory", path);
    }
    line[L] = '\n';
    for (long i = 0; i < n; i++) {
        const uint8_t *seq = set ? set->seq + (size_t)i * L : eval_seq(t, split, i);
        for (int c = 0; c < L; c++) line[c] = sym_chars[seq[c]];
        fwrite(line, 1, (size_t)L + 1, fp);
    }
    free(line);
    return task_close_file(fp, path, err, errlen);
}

static int ff_write(Task *t, const char *dir, char *err, int errlen) {
    FlipFlop *f = t->impl;
    char path[TASK_STR + 32];
    if (task_mkdir_p(dir, err, errlen) != 0) return -1;
    if (f->train.n > 0) {
        if (task_path(path, sizeof path, dir, "train.txt") != 0) return errf(err, errlen, "%s: path too long", dir);
        if (write_file(path, &f->train, t, 0, f->train.n, err, errlen) != 0) return -1;
    }
    for (int s = 0; s < NSPLITS; s++) {
        char name[32];
        snprintf(name, sizeof name, "%s.txt", split_names[s]);
        if (task_path(path, sizeof path, dir, name) != 0) return errf(err, errlen, "%s: path too long", dir);
        if (write_file(path, f->eval[s].n > 0 ? &f->eval[s] : NULL, t, s, ff_split_size(t, s), err, errlen) != 0)
            return -1;
    }
    return 0;
}

// Its own keys of the "task" section (task_keys.c has the shared ones).
static const ConfigKey ff_keys[] = {
    {"task", "length", KEY_INT, TASK_KEY(length), 4, TASK_INT_MAX, NULL, "512", 0, NULL,
     "tokens per flip-flop sequence (even: instruction-bit pairs); T = length - 1 [Liu et al.: 512]"},
    {"task", "p_ignore", KEY_REAL, TASK_KEY(p_ignore), 0, 0.999999, NULL, "0.8", 0, NULL,
     "training distribution FFL(p_ignore): ignore with p_ignore, write and read with (1-p_ignore)/2 each; "
     "also the valid and test splits"},
    {"task", "p_sparse", KEY_REAL, TASK_KEY(p_sparse), 0, 0.999999, NULL, "0.98", 1, NULL,
     "the OOD \"sparse\" split FFL(p_sparse) (long write-to-read gaps) [UNKNOWN whether the CoPE paper's OOD "
     "is exactly 0.98]"},
    {"task", "p_dense", KEY_REAL, TASK_KEY(p_dense), 0, 0.999999, NULL, "0.1", 1, NULL,
     "the OOD \"dense\" split FFL(p_dense) (short gaps; not in the CoPE paper's table)"},
};

// task.eval_length 0: the training length.
static int ff_default_eval_length(const TaskConfig *c, int block_size) {
    (void)block_size;
    return c->length;
}

static int ff_create(Task *t, char *err, int errlen) {
    const TaskConfig *c = &t->cfg;
    FlipFlop *f = calloc(1, sizeof *f);
    if (!f) return errf(err, errlen, "flipflop: out of memory");
    t->impl = f;
    f->length = c->length;
    f->eval_length = task_eval_length(c, t->block_size);
    if (f->length % 2 != 0)  // the schema holds it to at least 4
        return errf(err, errlen, "task.length: %d, expected an even number (instruction-bit pairs)", c->length);
    if (f->eval_length < 4 || f->eval_length % 2 != 0)
        return errf(err, errlen, "task.eval_length: %d, expected 0 or an even number of at least 4", c->eval_length);
    if (f->length - 1 > t->block_size)
        return errf(err, errlen, "task.length: %d tokens give T = %d > model.block_size %d", c->length, c->length - 1,
                         t->block_size);
    f->p[SPLIT_VALID] = f->p[SPLIT_TEST] = c->p_ignore;
    f->p[SPLIT_SPARSE] = c->p_sparse;
    f->p[SPLIT_DENSE] = c->p_dense;
    int row_len = f->length > f->eval_length ? f->length : f->eval_length;

    if (c->data_dir[0]) {
        if (task_refuse_unused(c, "train_sequences", "has no effect with task.data_dir (the training set is its train.txt)",
                               err, errlen) != 0)
            return -1;
        char path[TASK_STR + 32];
        if (task_path(path, sizeof path, c->data_dir, "train.txt") != 0)
            return errf(err, errlen, "task.data_dir: path too long");
        if (load_file(path, f->length, "task.length", &f->train, err, errlen) != 0) return -1;
        for (int s = 0; s < NSPLITS; s++) {
            char name[32];
            snprintf(name, sizeof name, "%s.txt", split_names[s]);
            task_path(path, sizeof path, c->data_dir, name);
            if (task_path_exists(path) &&
                load_file(path, f->eval_length, c->eval_length > 0 ? "task.eval_length" : "task.length", &f->eval[s], err,
                          errlen) != 0)
                return -1;
        }
    } else if (c->train_sequences > 0) {
        f->train.n = c->train_sequences;
        f->train.len = f->length;
        f->train.seq = malloc((size_t)f->train.n * (size_t)f->length);
        if (!f->train.seq) return errf(err, errlen, "task.train_sequences: out of memory for %d sequences", c->train_sequences);
        for (long n = 0; n < f->train.n; n++) {
            Rng r;
            task_item_rng(&r, t->data_seed, STREAM_DATA, 0, n);
            ffl_generate(&r, c->p_ignore, f->length, f->train.seq + (size_t)n * f->length);
        }
    }
    if (f->train.n > 0) {
        if (sampler_init(&f->sampler, f->train.n, rng_key(t->run_seed, STREAM_SHUFFLE, 0, 0)) != 0)
            return errf(err, errlen, "flipflop: out of memory");
    } else
        rng_seed(&f->stream, rng_key(t->run_seed, STREAM_TRAIN, 0, 0));
    for (int s = 0; s < NSPLITS; s++)
        if (f->eval[s].n > 0 && f->eval[s].len > row_len) row_len = f->eval[s].len;
    f->row = malloc(sizeof(int) * (size_t)row_len);
    f->buf = malloc((size_t)row_len);
    if (!f->row || !f->buf) return errf(err, errlen, "flipflop: out of memory");

    t->vocab_size = NSYM;
    t->max_length = f->length - 1;
    t->is_lm = 0;
    for (int s = 0; s < NSPLITS; s++) t->splits[s] = split_names[s];
    t->splits[NSPLITS] = NULL;
    if (c->write_dir[0] && ff_write(t, c->write_dir, err, errlen) != 0) return -1;
    return 0;
}

static void ff_destroy(Task *t) {
    FlipFlop *f = t->impl;
    if (!f) return;
    free(f->train.seq);
    for (int s = 0; s < NSPLITS; s++) free(f->eval[s].seq);
    sampler_free(&f->sampler);
    free(f->row);
    free(f->buf);
    free(f);
    t->impl = NULL;
}

const TaskOps flipflop_ops = {
    .name = "flipflop",
    .title = "flip-flop language modelling",
    .answer = "the bits after r",
    .answer_loss_auto = 0,
    TASK_KEYS(ff_keys),
    .shared_keys = "data_dir|write_dir|eval_sequences|eval_length|train_sequences",
    .default_eval_length = ff_default_eval_length,
    .create = ff_create,
    .destroy = ff_destroy,
    .next_train = ff_next_train,
    .split_size = ff_split_size,
    .split_max_length = ff_split_max_length,
    .eval_batch = ff_eval_batch,
    .token_str = ff_token_str,
    .train_epoch = ff_train_epoch,
    .bytes_per_token = NULL,
    .state_size = ff_state_size,
    .state_save = ff_state_save,
    .state_load = ff_state_load,
};
