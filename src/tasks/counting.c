// The counting task (CoPE paper §5; official facebookresearch/RAM projects/cope), the one experiment
// the official code fully specifies. Everything here follows that code:
//
// Generator (scripts/count_data_gen.py), with our seeded Rng in place of Python's unseeded random:
//   variables: the first nvars letters; MAX_VAL = 10; statements sampled with weights SET 1,
//   DUMMY 50, INCREMENT 7 (never PRINT):
//     SET        a random variable (maybe already set) = 0      "<v> = 0 ;"
//     DUMMY                                                     "pass;"
//     INCREMENT  a random already-set variable, +1              "<v> ++;"
//   an INCREMENT with no variable set, or of a variable already at MAX_VAL, fails and the
//   statement is redrawn (up to 100 times, else the generator gives up); nsteps = randint(3,
//   max_steps) statements joined by spaces; then PRINT picks a random set variable: question
//   "print <v>", answer its value. A sample with no variable set is redrawn whole (up to 1000).
// Tokens (src/data/tokenizer.py SimpleTokenizer): lowercase, a space before . , ?, split on
//   whitespace; vocabulary <pad>=0, <sta>=1, then words by first appearance over train, valid,
//   test (context, question, answer of each sample in turn). No BOS is inserted (the official
//   add_bos is ignored).
// Collation (data_collator.py): sequence = context + question + answer tokens; sequences longer
//   than block_size keep their last block_size tokens (left truncation: ≈14% of samples at 512,
//   which can cut the relevant "= 0 ;", a label-noise source the paper's numbers include); x =
//   seq[:-1], y = seq[1:]; the batch is as long as its longest sequence, right-padded with <pad>.
// Loss: loss_on=answer (the official --train-on answer) marks the answer token(s); all = every
//   non-pad position. Metric: the answer token(s). Training runs epochs over the n_train samples,
//   reshuffled each epoch (a batch may span two epochs); the official per-sequence loss
//   normalisation is the trainer's train.loss_norm.
//
// Data: generated from the data seed (one stream per split, so n_valid does not change the
// training data), or loaded from data_dir/{train,valid,test}.jsonl in the official JSONL format
// {"context","question","answer"}; write_dir writes the generated data in that format.
#include <cjson/cJSON.h>
#include <stdlib.h>
#include <string.h>

#include "input.h"
#include "tasks/task_impl.h"
#include "tasks/tokenizer.h"

#define PAD 0
#define STA 1
#define MAX_VAL 10
#define STEP_TRIALS 100
#define SAMPLE_TRIALS 1000

enum { SPLIT_TRAIN, SPLIT_VALID, SPLIT_TEST, NSETS };
static const char *const set_names[NSETS] = {"train", "valid", "test"};

typedef struct {
    char *context, *question, *answer;
} Sample;

typedef struct {
    long n;
    long *off;     // (n+1) into tok
    int *tok;      // sequences after truncation
    int *n_answer; // (n) answer tokens at the end of each sequence
    int max_len;   // longest sequence (tokens)
} SeqSet;

typedef struct {
    SeqSet set[NSETS];
    Vocab *vocab;
    EpochSampler sampler;
} Counting;

// ---------------------------------------------------------------------------------------------
// Generator

typedef struct {
    char *s;
    size_t n, cap;
} Str;

static int str_append(Str *s, const char *text) {
    size_t len = strlen(text);
    if (s->n + len + 1 > s->cap) {
        size_t cap = s->cap ? s->cap : 1024;
        while (cap < s->n + len + 1) cap *= 2;
        char *p = realloc(s->s, cap);
        if (!p) return -1;
        s->s = p;
        s->cap = cap;
    }
    memcpy(s->s + s->n, text, len + 1);
    s->n += len;
    return 0;
}

static char *dup_str(const char *s) {
    size_t n = strlen(s) + 1;
    char *p = malloc(n);
    if (p) memcpy(p, s, n);
    return p;
}

// One sample. Returns 0, or -1 with err when the retry limits are hit or memory runs out.
static int generate_sample(Rng *r, int nvars, int max_steps, Sample *out, char *err, int errlen) {
    int value[26], order[26];  // order: set variables in the order first set (Python dict order)
    for (int trial = 0; trial < SAMPLE_TRIALS; trial++) {
        int nset = 0;
        for (int v = 0; v < nvars; v++) value[v] = -1;
        Str ctx = {0};
        long nsteps = 3 + (long)rng_below(r, (uint64_t)(max_steps - 3 + 1));
        for (long step = 0; step < nsteps; step++) {
            char stmt[16];
            int done = 0;
            for (int t = 0; t < STEP_TRIALS && !done; t++) {
                double u = rng_uniform(r) * 58.0;  // random.choices weights 1, 50, 7
                if (u < 1.0) {
                    int v = (int)rng_below(r, (uint64_t)nvars);
                    if (value[v] < 0) order[nset++] = v;
                    value[v] = 0;
                    snprintf(stmt, sizeof stmt, "%c = 0 ;", 'a' + v);
                    done = 1;
                } else if (u < 51.0) {
                    snprintf(stmt, sizeof stmt, "pass;");
                    done = 1;
                } else {
                    if (nset == 0) continue;  // GenerationFail: nothing to increment
                    int v = order[rng_below(r, (uint64_t)nset)];
                    if (value[v] >= MAX_VAL) continue;  // GenerationFail: would exceed MAX_VAL
                    value[v]++;
                    snprintf(stmt, sizeof stmt, "%c ++;", 'a' + v);
                    done = 1;
                }
            }
            if (!done) {
                free(ctx.s);
                return errf(err, errlen, "counting generator: %d failed trials for one statement", STEP_TRIALS);
            }
            if ((step > 0 && str_append(&ctx, " ") != 0) || str_append(&ctx, stmt) != 0) {
                free(ctx.s);
                return errf(err, errlen, "counting generator: out of memory");
            }
        }
        if (nset == 0) {  // no variable to print: redraw the sample
            free(ctx.s);
            continue;
        }
        int v = order[rng_below(r, (uint64_t)nset)];
        char q[16], a[16];
        snprintf(q, sizeof q, "print %c", 'a' + v);
        snprintf(a, sizeof a, "%d", value[v]);
        out->context = ctx.s ? ctx.s : dup_str("");
        out->question = dup_str(q);
        out->answer = dup_str(a);
        if (!out->context || !out->question || !out->answer)
            return errf(err, errlen, "counting generator: out of memory");
        return 0;
    }
    return errf(err, errlen, "counting generator: %d samples in a row without a variable set", SAMPLE_TRIALS);
}

static void free_samples(Sample *s, long n) {
    if (!s) return;
    for (long i = 0; i < n; i++) {
        free(s[i].context);
        free(s[i].question);
        free(s[i].answer);
    }
    free(s);
}

// ---------------------------------------------------------------------------------------------
// JSONL

// One line's object: exactly the keys context, question and answer, each once, each a string. The
// strings go to dst (malloc'd).
static int read_sample(const cJSON *obj, char **dst[3], const char *path, long line, char *err, int errlen) {
    static const char *const fields[3] = {"context", "question", "answer"};
    for (const cJSON *it = obj->child; it; it = it->next) {
        int f = 0;
        while (f < 3 && strcmp(it->string, fields[f]) != 0) f++;
        char shown[64];
        if (f == 3)
            return errf(err, errlen, "%s:%ld: unknown key \"%s\" (a sample has \"context\", \"question\" and \"answer\")",
                             path, line, input_printable(it->string, strlen(it->string), shown, sizeof shown));
        if (*dst[f])
            return errf(err, errlen, "%s:%ld: \"%s\" appears twice (a sample has each key once)", path, line, fields[f]);
        if (!cJSON_IsString(it)) return errf(err, errlen, "%s:%ld: \"%s\" is not a string", path, line, fields[f]);
        if (!(*dst[f] = dup_str(it->valuestring))) return errf(err, errlen, "%s: out of memory", path);
    }
    for (int f = 0; f < 3; f++)
        if (!*dst[f]) return errf(err, errlen, "%s:%ld: missing string field \"%s\"", path, line, fields[f]);
    return 0;
}

static int read_jsonl(const char *path, Sample **out, long *n_out, char *err, int errlen) {
    size_t size;
    char *text = task_read_file(path, &size, err, errlen);
    if (!text) return -1;
    long cap = 1024, n = 0;
    Sample *s = calloc((size_t)cap, sizeof *s);
    int rc = s ? 0 : errf(err, errlen, "%s: out of memory", path);
    char *p = text, *end = text + size;
    long line = 0;
    while (rc == 0 && p < end) {
        line++;
        char *nl = memchr(p, '\n', (size_t)(end - p));
        char *eol = nl ? nl : end;
        // cJSON reads a C string: a NUL byte would end the line there, unread.
        const char *nul = memchr(p, 0, (size_t)(eol - p));
        if (nul) {
            rc = errf(err, errlen, "%s:%ld:%ld: a NUL byte; a line is one JSON object", path, line, (long)(nul - p) + 1);
            break;
        }
        *eol = 0;
        cJSON *obj = cJSON_ParseWithOpts(p, NULL, 1);
        const char *at;
        char why[400];
        if (!obj || !cJSON_IsObject(obj)) {
            long col = 1;
            at = cJSON_GetErrorPtr();
            if (!obj && at && at >= p && at <= eol) col = (long)(at - p) + 1;
            rc = errf(err, errlen, "%s:%ld:%ld: %s", path, line, col,
                           obj ? "expected a JSON object {\"context\", \"question\", \"answer\"}"
                               : (*p ? "malformed JSON" : "empty line, expected a JSON object"));
            cJSON_Delete(obj);
            break;
        }
        if (input_json_check(p, obj, "", &at, why, sizeof why) != 0) {
            rc = errf(err, errlen, "%s:%ld:%ld: %s", path, line, (long)(at - p) + 1, why);
            cJSON_Delete(obj);
            break;
        }
        if (n == cap) {
            Sample *ns = realloc(s, sizeof *s * (size_t)(cap * 2));
            if (!ns) {
                rc = errf(err, errlen, "%s: out of memory", path);
                cJSON_Delete(obj);
                break;
            }
            memset(ns + cap, 0, sizeof *s * (size_t)cap);
            s = ns;
            cap *= 2;
        }
        char **dst[3] = {&s[n].context, &s[n].question, &s[n].answer};
        rc = read_sample(obj, dst, path, line, err, errlen);
        n++;
        cJSON_Delete(obj);
        p = nl ? nl + 1 : end;
    }
    free(text);
    if (rc == 0 && n == 0) rc = errf(err, errlen, "%s: no samples (empty file)", path);
    if (rc != 0) {
        free_samples(s, n);
        return -1;
    }
    *out = s;
    *n_out = n;
    return 0;
}

static int write_jsonl(const char *path, const Sample *s, long n, char *err, int errlen) {
    FILE *f = input_create_file(path, err, errlen);
    if (!f) return -1;
    int rc = 0;
    for (long i = 0; i < n && rc == 0; i++) {
        cJSON *o = cJSON_CreateObject();
        cJSON_AddStringToObject(o, "context", s[i].context);
        cJSON_AddStringToObject(o, "question", s[i].question);
        cJSON_AddStringToObject(o, "answer", s[i].answer);
        char *line = cJSON_PrintUnformatted(o);
        if (line)
            fprintf(f, "%s\n", line);
        else
            rc = errf(err, errlen, "%s: out of memory writing sample %ld", path, i + 1);
        free(line);
        cJSON_Delete(o);
    }
    if (rc != 0) {
        fclose(f);
        return -1;
    }
    return task_close_file(f, path, err, errlen);
}

// ---------------------------------------------------------------------------------------------
// Tokenisation (once, at creation)

// Adds the words of text to the vocabulary (when add) and appends their ids to out (when out).
static long tokenize_into(Vocab *v, const char *text, int *out, long at) {
    char *norm = simple_normalize(text);
    if (!norm) return -1;
    const char *p = norm, *w;
    size_t len;
    while ((w = next_word(&p, &len))) {
        int id = vocab_add(v, w, len);
        if (id < 0) {
            free(norm);
            return -1;
        }
        if (out) out[at] = id;
        at++;
    }
    free(norm);
    return at;
}

static int tokenize_set(Vocab *v, const Sample *s, long n, int block_size, SeqSet *out, char *err, int errlen) {
    out->n = n;
    out->off = malloc(sizeof(long) * (size_t)(n + 1));
    out->n_answer = malloc(sizeof(int) * (size_t)n);
    if (!out->off || !out->n_answer) return errf(err, errlen, "counting: out of memory");
    // First pass: lengths (and the vocabulary, in order of first appearance).
    long total = 0, longest = 0;
    for (long i = 0; i < n; i++) {
        long c = tokenize_into(v, s[i].context, NULL, 0);
        long q = tokenize_into(v, s[i].question, NULL, 0);
        long a = tokenize_into(v, s[i].answer, NULL, 0);
        if (c < 0 || q < 0 || a < 0) return errf(err, errlen, "counting: out of memory");
        long len = c + q + a;
        out->n_answer[i] = (int)a;
        out->off[i] = len;  // the full length until the second pass
        if (len > longest) longest = len;
        total += len < block_size ? len : block_size;
    }
    out->tok = malloc(sizeof(int) * (size_t)(total > 0 ? total : 1));
    if (!out->tok) return errf(err, errlen, "counting: out of memory");
    int *seq = malloc(sizeof(int) * (size_t)(longest > 0 ? longest : 1));
    if (!seq) return errf(err, errlen, "counting: out of memory");
    long at = 0;
    out->max_len = 0;
    for (long i = 0; i < n; i++) {
        long m = tokenize_into(v, s[i].context, seq, 0);
        m = tokenize_into(v, s[i].question, seq, m);
        m = tokenize_into(v, s[i].answer, seq, m);
        long keep = m < block_size ? m : block_size;  // left truncation
        out->off[i] = at;
        memcpy(out->tok + at, seq + (m - keep), sizeof(int) * (size_t)keep);
        at += keep;
        if (keep > out->max_len) out->max_len = (int)keep;
    }
    out->off[n] = at;
    free(seq);
    return 0;
}

// ---------------------------------------------------------------------------------------------
// Batches

static int fill(Task *t, const SeqSet *set, const long *idx, int B, Batch *b) {
    int T = 0;
    for (int r = 0; r < B; r++) {
        long len = set->off[idx[r] + 1] - set->off[idx[r]];
        if (len - 1 > T) T = (int)(len - 1);
    }
    batch_begin(b, B, T);
    for (int r = 0; r < B; r++) {
        const int *seq = set->tok + set->off[idx[r]];
        int n = (int)(set->off[idx[r] + 1] - set->off[idx[r]]);
        batch_row_from_seq(b, r, seq, n, PAD);
        size_t o = (size_t)r * T;
        int first_answer = n - 1 - set->n_answer[idx[r]];  // position whose target is the first answer token
        for (int i = 0; i < n - 1; i++) {
            int answer = i >= first_answer;
            b->metric_mask[o + i] = (uint8_t)answer;
            b->loss_mask[o + i] = (uint8_t)(t->answer_loss ? answer : 1);
        }
    }
    return B;
}

static void ct_next_train(Task *t, Batch *b, int B) {
    Counting *c = t->impl;
    long *rows = batch_rows(b, B);
    for (int r = 0; r < B; r++) rows[r] = sampler_next(&c->sampler);
    fill(t, &c->set[SPLIT_TRAIN], rows, B, b);
}

static long ct_split_size(Task *t, int s) { return ((Counting *)t->impl)->set[s + 1].n; }
static int ct_split_max_length(const Task *t, int s) { return ((const Counting *)t->impl)->set[s + 1].max_len - 1; }

static int ct_eval_batch(Task *t, int s, long first, Batch *b, int B) {
    Counting *c = t->impl;
    long *rows = batch_rows(b, B);
    for (int r = 0; r < B; r++) rows[r] = first + r;
    return fill(t, &c->set[s + 1], rows, B, b);
}

static const char *ct_token_str(const Task *t, int id) { return vocab_word(((const Counting *)t->impl)->vocab, id); }
static double ct_train_epoch(const Task *t) { return sampler_epoch(&((const Counting *)t->impl)->sampler); }
static size_t ct_state_size(const Task *t) {
    (void)t;
    return SAMPLER_STATE_SIZE;
}
static void ct_state_save(const Task *t, void *buf) { sampler_save(&((const Counting *)t->impl)->sampler, buf); }
static int ct_state_load(Task *t, const void *buf, size_t size) {
    if (size != SAMPLER_STATE_SIZE) return -1;
    return sampler_load(&((Counting *)t->impl)->sampler, buf);
}

// Its own keys of the "task" section (task_keys.c has the shared ones).
static const ConfigKey ct_keys[] = {
    {"task", "nvars", KEY_INT, TASK_KEY(nvars), 1, 26, NULL, "3", 0, NULL,
     "variables a, b, ... (official --nvars; the paper: 1, 3, 5)"},
    {"task", "max_steps", KEY_INT, TASK_KEY(max_steps), 3, 1000000, NULL, "512", 0, NULL,
     "context statements per sample: uniform in [3, max_steps] (official --max-steps)"},
    {"task", "n_train", KEY_INT, TASK_KEY(n_train), 1, TASK_INT_MAX, NULL, "10000", 0, NULL,
     "training samples (official --ntrain)"},
    {"task", "n_valid", KEY_INT, TASK_KEY(n_valid), 1, TASK_INT_MAX, NULL, "1000", 0, NULL,
     "validation samples (official --ntest)"},
    {"task", "n_test", KEY_INT, TASK_KEY(n_test), 1, TASK_INT_MAX, NULL, "1000", 0, NULL, "test samples (official --ntest)"},
};

static int ct_create(Task *t, char *err, int errlen) {
    const TaskConfig *cfg = &t->cfg;
    Counting *c = calloc(1, sizeof *c);
    if (!c) return errf(err, errlen, "counting: out of memory");
    t->impl = c;
    if (t->block_size < 2) return errf(err, errlen, "model.block_size: %d, counting needs at least 2", t->block_size);
    Sample *samples[NSETS] = {NULL, NULL, NULL};
    long n[NSETS] = {cfg->n_train, cfg->n_valid, cfg->n_test};
    int rc = 0;
    if (cfg->data_dir[0]) {
        rc = task_refuse_unused(cfg, "nvars|max_steps|n_train|n_valid|n_test|write_dir",
                                "has no effect with task.data_dir (the data is read from its files, not generated)", err,
                                errlen);
        for (int s = 0; s < NSETS && rc == 0; s++) {
            char path[TASK_STR + 32], name[32];
            snprintf(name, sizeof name, "%s.jsonl", set_names[s]);
            if (task_path(path, sizeof path, cfg->data_dir, name) != 0)
                rc = errf(err, errlen, "task.data_dir: path too long");
            else
                rc = read_jsonl(path, &samples[s], &n[s], err, errlen);
        }
    } else {
        for (int s = 0; s < NSETS && rc == 0; s++) {
            samples[s] = calloc((size_t)n[s], sizeof(Sample));
            if (!samples[s]) {
                rc = errf(err, errlen, "counting: out of memory for %ld samples", n[s]);
                break;
            }
            Rng r;
            task_item_rng(&r, t->data_seed, STREAM_DATA, s, 0);
            for (long i = 0; i < n[s] && rc == 0; i++)
                rc = generate_sample(&r, cfg->nvars, cfg->max_steps, &samples[s][i], err, errlen);
        }
        if (rc == 0 && cfg->write_dir[0]) {
            rc = task_mkdir_p(cfg->write_dir, err, errlen);
            for (int s = 0; s < NSETS && rc == 0; s++) {
                char path[TASK_STR + 32], name[32];
                snprintf(name, sizeof name, "%s.jsonl", set_names[s]);
                if (task_path(path, sizeof path, cfg->write_dir, name) != 0)
                    rc = errf(err, errlen, "task.write_dir: path too long");
                else
                    rc = write_jsonl(path, samples[s], n[s], err, errlen);
            }
        }
    }
    if (rc == 0) {
        c->vocab = vocab_new();
        if (!c->vocab || vocab_add(c->vocab, "<pad>", 5) != PAD || vocab_add(c->vocab, "<sta>", 5) != STA)
            rc = errf(err, errlen, "counting: out of memory");
    }
    for (int s = 0; s < NSETS && rc == 0; s++) rc = tokenize_set(c->vocab, samples[s], n[s], t->block_size, &c->set[s], err, errlen);
    for (int s = 0; s < NSETS && rc == 0; s++)
        for (long i = 0; i < n[s] && rc == 0; i++)
            if (c->set[s].n_answer[i] < 1 || c->set[s].off[i + 1] - c->set[s].off[i] < 2)
                rc = errf(err, errlen, "%s%s%s.jsonl: sample %ld (line %ld) %s", cfg->data_dir, cfg->data_dir[0] ? "/" : "",
                               set_names[s], i, i + 1,
                               c->set[s].n_answer[i] < 1 ? "has an empty answer" : "has fewer than 2 tokens");
    for (int s = 0; s < NSETS; s++) free_samples(samples[s], n[s]);
    if (rc != 0) return -1;
    if (sampler_init(&c->sampler, c->set[SPLIT_TRAIN].n, rng_key(t->run_seed, STREAM_SHUFFLE, 0, 0)) != 0)
        return errf(err, errlen, "counting: out of memory");
    t->vocab_size = vocab_size(c->vocab);
    // The longest sequence of any split, not only of train: valid and test lengths differ from
    // train's only by chance, and batches sized for train should hold them.
    int longest = 0;
    for (int s = 0; s < NSETS; s++)
        if (c->set[s].max_len > longest) longest = c->set[s].max_len;
    t->max_length = longest - 1;
    t->is_lm = 0;
    t->splits[0] = "valid";
    t->splits[1] = "test";
    t->splits[2] = NULL;
    return 0;
}

static void ct_destroy(Task *t) {
    Counting *c = t->impl;
    if (!c) return;
    for (int s = 0; s < NSETS; s++) {
        free(c->set[s].off);
        free(c->set[s].tok);
        free(c->set[s].n_answer);
    }
    vocab_free(c->vocab);
    sampler_free(&c->sampler);
    free(c);
    t->impl = NULL;
}

const TaskOps counting_ops = {
    .name = "counting",
    .title = "counting",
    .answer = "the value (official --train-on answer)",
    .answer_loss_auto = 1,
    TASK_KEYS(ct_keys),
    .shared_keys = "data_dir|write_dir",
    .create = ct_create,
    .destroy = ct_destroy,
    .next_train = ct_next_train,
    .split_size = ct_split_size,
    .split_max_length = ct_split_max_length,
    .eval_batch = ct_eval_batch,
    .token_str = ct_token_str,
    .train_epoch = ct_train_epoch,
    .bytes_per_token = NULL,
    .state_size = ct_state_size,
    .state_save = ct_state_save,
    .state_load = ct_state_load,
};
