// Language modelling on text (WikiText-103, tinyshakespeare, the code corpus of
// scripts/build_code_corpus.py): next-token prediction on every position.
//
// Text: data_dir/{train_file, valid_file, test_file}, or one text_file cut into train, valid and
// test (in that order) at the first line end after the valid_fraction / test_fraction shares of
// its bytes. Tokens: bytes (vocabulary 256, the default), words (tokenizer.h: the training text's
// whitespace-separated words with <unk> = 0 and <eos> = 1 at each line end, min_count, max_vocab),
// or byte-level BPE (bpe.h, docs/tokenizers.md): GPT-2's (gpt2; the paper presumably used it
// [UNKNOWN]) or one trained on the training text (bpe). A BPE tokenises each split's text whole
// (merges never cross pre-tokens, so cutting first would change nothing but the cut), and keeps the
// ids in task.cache_dir (token_cache.h), with the trained tokenizer: the file is named by the text
// and vocab_size and holds the text's size and CRC, so ./eval and ./sample, which rebuild the task
// from the run's config, read the very tokenizer ./train made (and training is deterministic, so
// without the file they make it again, the same). The checkpoints' task state holds the
// tokenizer's fingerprint: --resume with another tokenizer is refused.
//
// Training: windows of block_size + 1 tokens (T = block_size). sampling "random" draws each
// window's offset uniformly from the Rng (the cursor is its state); "sequential" takes
// consecutive windows with stride block_size (each token predicted once per pass), wrapping to
// the start when the next window does not fit (the cursor is the offset).
// Evaluation: the split cut into non-overlapping windows of eval_length (default block_size)
// predicted tokens, window k = tokens [k·W, k·W + W] (W + 1 tokens), the last one shorter and
// padded; so every token but the first is predicted exactly once and the perplexity covers the
// whole split. Early tokens of each window see little context (no sliding window).
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bytes.h"
#include "system.h"
#include "tasks/bpe.h"
#include "tasks/task_impl.h"
#include "tasks/token_cache.h"
#include "tasks/tokenizer.h"

enum { S_TRAIN, S_VALID, S_TEST, NSTREAMS };
static const char *const stream_names[NSTREAMS] = {"train", "valid", "test"};

typedef struct {
    long n;         // tokens
    uint8_t *t8;    // byte tokens, or
    int *t32;       // word and BPE tokens
    double bytes;   // text bytes the tokens came from
} Stream;

enum { TOK_BYTE, TOK_WORD, TOK_BPE };

typedef struct {
    int kind;       // TOK_*
    int word;       // kind == TOK_WORD
    Vocab *vocab;
    Bpe *bpe;
    char tag[16];   // the BPE in cache file names: "gpt2", "bpe4096"
    char byte_names[256][8];
    unsigned char byte_text[256];  // byte_text[i] = i
    Stream st[NSTREAMS];
    int eval_split_stream[NSTREAMS];  // eval split index -> stream
    int W;                            // evaluation window (predicted tokens)
    int sequential;
    Rng rng;
    long pos;
    int *row;
} Lm;

static inline int tok_at(const Stream *s, long i) { return s->t8 ? s->t8[i] : s->t32[i]; }

// Row `row` from tokens [start, start + n) of a stream (n ≥ 2), padded to b->T.
static void fill_window(Task *t, Batch *b, int row, const Stream *s, long start, int n) {
    Lm *m = t->impl;
    for (int i = 0; i < n; i++) m->row[i] = tok_at(s, start + i);
    batch_row_from_seq(b, row, m->row, n, 0);
    size_t o = (size_t)row * b->T;
    for (int i = 0; i < n - 1; i++) {
        b->loss_mask[o + i] = 1;
        b->metric_mask[o + i] = 1;
    }
}

static void lm_next_train(Task *t, Batch *b, int B) {
    Lm *m = t->impl;
    const Stream *s = &m->st[S_TRAIN];
    int n = t->block_size + 1;
    batch_begin(b, B, t->block_size);
    for (int r = 0; r < B; r++) {
        long start;
        if (m->sequential) {
            if (m->pos + n > s->n) m->pos = 0;
            start = m->pos;
            m->pos += t->block_size;
        } else
            start = (long)rng_below(&m->rng, (uint64_t)(s->n - n + 1));
        fill_window(t, b, r, s, start, n);
    }
}

static long lm_split_size(Task *t, int split) {
    Lm *m = t->impl;
    const Stream *s = &m->st[m->eval_split_stream[split]];
    return (s->n - 1 + m->W - 1) / m->W;
}

static int lm_split_max_length(const Task *t, int split) {
    const Lm *m = t->impl;
    const Stream *s = &m->st[m->eval_split_stream[split]];
    return s->n - 1 < m->W ? (int)(s->n - 1) : m->W;
}

static int lm_eval_batch(Task *t, int split, long first, Batch *b, int B) {
    Lm *m = t->impl;
    const Stream *s = &m->st[m->eval_split_stream[split]];
    int T = 0;
    for (int r = 0; r < B; r++) {
        long start = (first + r) * m->W, left = s->n - 1 - start;
        int n = left < m->W ? (int)left : m->W;
        if (n > T) T = n;
    }
    batch_begin(b, B, T);
    for (int r = 0; r < B; r++) {
        long start = (first + r) * m->W, left = s->n - 1 - start;
        int n = left < m->W ? (int)left : m->W;
        fill_window(t, b, r, s, start, n + 1);
    }
    return B;
}

static const char *lm_token_str(const Task *t, int id) {
    const Lm *m = t->impl;
    return m->kind == TOK_WORD ? vocab_word(m->vocab, id) : m->kind == TOK_BPE ? bpe_token_name(m->bpe, id) : m->byte_names[id];
}

// Bytes and BPE tokens stand for bytes of text; a word token (spaces and line ends dropped) does not.
static const char *lm_token_text(const Task *t, int id, size_t *len) {
    const Lm *m = t->impl;
    if (m->kind == TOK_WORD) return NULL;
    if (m->kind == TOK_BPE) return (const char *)bpe_token_bytes(m->bpe, id, len);
    *len = 1;
    return (const char *)m->byte_text + id;
}

static long lm_encode(Task *t, const char *text, size_t len, int *out) {
    Lm *m = t->impl;
    if (m->kind == TOK_BPE) return bpe_encode(m->bpe, text, len, out);
    if (m->kind == TOK_WORD) return -1;
    for (size_t i = 0; out && i < len; i++) out[i] = (unsigned char)text[i];
    return (long)len;
}

static double lm_bytes_per_token(const Task *t, int split) {
    const Lm *m = t->impl;
    const Stream *s = &m->st[m->eval_split_stream[split]];
    return s->n > 0 ? s->bytes / (double)s->n : 1.0;
}

// The cursor: the Rng, the position, and with a BPE the tokenizer's fingerprint (a resume with
// another tokenizer would feed the model ids that mean other text).
#define LM_STATE_SIZE (RNG_STATE_SIZE + 8)
static size_t lm_state_size(const Task *t) {
    const Lm *m = t->impl;
    return LM_STATE_SIZE + (m->kind == TOK_BPE ? 8 : 0);
}
static void lm_state_save(const Task *t, void *buf) {
    const Lm *m = t->impl;
    rng_save(&m->rng, buf);
    put_u64((uint8_t *)buf + RNG_STATE_SIZE, (uint64_t)m->pos);
    if (m->kind == TOK_BPE) put_u64((uint8_t *)buf + LM_STATE_SIZE, bpe_fingerprint(m->bpe));
}
static int lm_state_load(Task *t, const void *buf, size_t size) {
    Lm *m = t->impl;
    if (size != lm_state_size(t)) return -1;
    if (m->kind == TOK_BPE && get_u64((const uint8_t *)buf + LM_STATE_SIZE) != bpe_fingerprint(m->bpe)) return -1;
    long pos = (long)get_u64((const uint8_t *)buf + RNG_STATE_SIZE);
    if (pos < 0 || pos > m->st[S_TRAIN].n) return -1;
    rng_load(&m->rng, buf);
    m->pos = pos;
    return 0;
}

// source (a file, or a text_file's part) as a cache file name: letters, digits, '.', '-', and '_'
// for the rest; then the tokenizer's tag.
static int cache_path(char *out, size_t n, const char *dir, const char *source, const char *tag, const char *ext) {
    char name[2 * TASK_STR];
    size_t k = 0;
    for (const char *p = source; *p && k + 1 < sizeof name; p++) {
        char c = *p;
        int keep = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.' || c == '-';
        name[k++] = keep ? c : '_';
    }
    name[k] = 0;
    int w = snprintf(out, n, "%s/%s.%s.%s", dir, name, tag, ext);
    return w < 0 || (size_t)w >= n ? -1 : 0;
}

// BPE tokens of text[0..len) into s, from the cache when it holds them (source names the text).
static int encode_bpe(Lm *m, const TaskConfig *c, const char *text, size_t len, Stream *s, const char *source,
                      char *err, int errlen) {
    char path[3 * TASK_STR], why[256];
    TokenCacheKey key = {.fingerprint = bpe_fingerprint(m->bpe), .text_len = len, .n_tokens = bpe_n_tokens(m->bpe)};
    snprintf(key.tokenizer, sizeof key.tokenizer, "%s", m->tag);
    int cached = c->cache_dir[0] && cache_path(path, sizeof path, c->cache_dir, source, m->tag, "tokens") == 0;
    if (cached) {
        key.text_crc = text_crc32(text, len);
        int rc = token_cache_load(path, &key, &s->t32, &s->n, why, sizeof why);
        if (rc == 0) return 0;
        if (rc == 2) fprintf(stderr, "lm: %s: %s; tokenising %s again\n", path, why, source);
    }
    double t0 = now_seconds();
    s->n = bpe_encode(m->bpe, text, len, NULL);
    s->t32 = s->n >= 0 ? malloc(sizeof(int) * (size_t)(s->n > 0 ? s->n : 1)) : NULL;
    if (!s->t32) return errf(err, errlen, "%s: out of memory tokenising it", source);
    bpe_encode(m->bpe, text, len, s->t32);
    double dt = now_seconds() - t0;
    fprintf(stderr, "lm: %s: %ld %s tokens (%.2f bytes per token) in %.1fs, %.1f MB/s\n", source, s->n, m->tag,
            s->n ? (double)len / (double)s->n : 0.0, dt, dt > 0 ? (double)len / dt / 1e6 : 0.0);
    if (cached && (task_mkdir_p(c->cache_dir, err, errlen) != 0 ||
                   token_cache_save(path, &key, s->t32, s->n, err, errlen) != 0))
        fprintf(stderr, "lm: not cached (%s); the next run tokenises it again\n", err);
    return 0;
}

// Tokenizes text[0..len) into stream s (vocabulary already built for words, BPE loaded or trained).
static int encode(Lm *m, const TaskConfig *c, const char *text, size_t len, Stream *s, const char *source, char *err,
                  int errlen) {
    s->bytes = (double)len;
    if (m->kind == TOK_BPE) return encode_bpe(m, c, text, len, s, source, err, errlen);
    if (!m->word) {
        s->n = (long)len;
        s->t8 = malloc(len > 0 ? len : 1);
        if (!s->t8) return errf(err, errlen, "%s: out of memory for %zu bytes", source, len);
        memcpy(s->t8, text, len);
        return 0;
    }
    s->n = word_encode(m->vocab, text, len, NULL);
    s->t32 = malloc(sizeof(int) * (size_t)(s->n > 0 ? s->n : 1));
    if (!s->t32) return errf(err, errlen, "%s: out of memory for %ld tokens", source, s->n);
    word_encode(m->vocab, text, len, s->t32);
    return 0;
}

// The word tokenizer keeps words as C strings, so a NUL byte would end one early: text only.
static int no_nul(const char *text, size_t len, const char *what, char *err, int errlen) {
    const char *nul = memchr(text, 0, len);
    if (!nul) return 0;
    long line = 1;
    for (const char *p = text; p < nul; p++) line += *p == '\n';
    return errf(err, errlen, "%s: byte %zu (line %ld) is a NUL byte; the word tokenizer reads text (bytes take any)",
                     what, (size_t)(nul - text) + 1, line);
}

// The byte offset of the first line end at or after `at` (just past it), or `at` without one.
static size_t cut_after_line(const char *text, size_t len, size_t at) {
    const char *nl = at < len ? memchr(text + at, '\n', len - at) : NULL;
    return nl ? (size_t)(nl - text) + 1 : at;
}

// Its own keys of the "task" section (task_keys.c has the shared ones).
static const ConfigKey lm_keys[] = {
    {"task", "tokenizer", KEY_CHOICE, TASK_KEY(tokenizer), 0, 0, "byte|word|gpt2|bpe", "\"byte\"", 0, NULL,
     "byte: the 256 byte values; word: whitespace-separated words of the training text, <unk> and <eos> "
     "(end of line); gpt2: GPT-2's byte-level BPE from task.bpe_dir (the paper's LM tokenizer, presumably "
     "[UNKNOWN]); bpe: a byte-level BPE of task.vocab_size ids trained on the training text, see "
     "docs/tokenizers.md"},
    {"task", "bpe_dir", KEY_STRING, TASK_KEY(bpe_dir), 0, 0, NULL, "\"data/gpt2\"", 0, NULL,
     "gpt2: the folder holding GPT-2's encoder.json and vocab.bpe, fetched by scripts/fetch_data.sh gpt2"},
    {"task", "vocab_size", KEY_INT, TASK_KEY(vocab_size), 257, 1048576, NULL, "4096", 0, NULL,
     "bpe: token ids in all, the 256 bytes included: at most vocab_size - 256 merges, fewer when no pair "
     "of tokens occurs twice more"},
    {"task", "cache_dir", KEY_STRING, TASK_KEY(cache_dir), 0, 0, NULL, "\"data/cache\"", 1, NULL,
     "gpt2, bpe: where tokenised texts and trained tokenizers are kept, so a corpus is tokenised once (a "
     "stale or corrupt file is made again); \"\" = keep none"},
    {"task", "min_count", KEY_INT, TASK_KEY(min_count), 1, TASK_INT_MAX, NULL, "1", 0, NULL,
     "word: words seen fewer times in the training text become <unk>"},
    {"task", "max_vocab", KEY_INT, TASK_KEY(max_vocab), 0, TASK_INT_MAX, NULL, "0", 0, NULL,
     "word: keep only the most frequent words (0 = all)"},
    {"task", "train_file", KEY_STRING, TASK_KEY(train_file), 0, 0, NULL, "\"train.txt\"", 0, NULL,
     "training text, under data_dir"},
    {"task", "valid_file", KEY_STRING, TASK_KEY(valid_file), 0, 0, NULL, "\"valid.txt\"", 1, NULL,
     "validation text, under data_dir"},
    {"task", "test_file", KEY_STRING, TASK_KEY(test_file), 0, 0, NULL, "\"test.txt\"", 1, NULL, "test text, under data_dir"},
    {"task", "text_file", KEY_STRING, TASK_KEY(text_file), 0, 0, NULL, "\"\"", 0, NULL,
     "one text file cut into train, valid and test (in that order) by valid_fraction and "
     "test_fraction, instead of data_dir (a share of 0 leaves that split out)"},
    {"task", "valid_fraction", KEY_REAL, TASK_KEY(valid_fraction), 0, 0.5, NULL, "0.05", 0, NULL,
     "text_file: share of its bytes for valid (cut at the next line end)"},
    {"task", "test_fraction", KEY_REAL, TASK_KEY(test_fraction), 0, 0.5, NULL, "0.05", 0, NULL,
     "text_file: share of its bytes for test, the end of the file (cut at the next line end)"},
    {"task", "sampling", KEY_CHOICE, TASK_KEY(sampling), 0, 0, "random|sequential", "\"random\"", 0, NULL,
     "training windows of block_size+1 tokens: random = uniform random offsets; sequential = consecutive "
     "windows (stride block_size), wrapping at the end"},
};

// task.eval_length 0: the training window.
static int lm_default_eval_length(const TaskConfig *c, int block_size) {
    (void)c;
    return block_size;
}

enum { WHAT_LEN = TASK_STR + 48 };

// text_file cut into train, valid and test at line ends: the three parts of one buffer (*whole).
static int cut_text_file(const TaskConfig *c, int word, char **whole, char *text[], size_t len[], char what[][WHAT_LEN],
                         char *err, int errlen) {
    size_t n;
    *whole = task_read_file(c->text_file, &n, err, errlen);
    if (!*whole) return -1;
    if (word && no_nul(*whole, n, c->text_file, err, errlen) != 0) return -1;
    double fv = c->valid_fraction, ft = c->test_fraction;
    if (!(fv >= 0 && ft >= 0 && fv + ft < 1))
        return errf(err, errlen, "task.valid_fraction %g + task.test_fraction %g: expected shares summing below 1", fv, ft);
    size_t a = cut_after_line(*whole, n, (size_t)((1.0 - fv - ft) * (double)n));
    size_t b = cut_after_line(*whole, n, (size_t)((1.0 - ft) * (double)n));
    if (b < a) b = a;
    size_t cuts[4] = {0, a, b, n};
    for (int s = 0; s < NSTREAMS; s++) {
        text[s] = *whole + cuts[s];
        len[s] = cuts[s + 1] - cuts[s];
        snprintf(what[s], WHAT_LEN, "%s (%s part)", c->text_file, stream_names[s]);
    }
    return 0;
}

// data_dir's train_file, valid_file and test_file, each in its own buffer.
static int read_data_dir(const TaskConfig *c, int word, char *text[], size_t len[], char what[][WHAT_LEN], char *err,
                         int errlen) {
    const char *files[NSTREAMS] = {c->train_file, c->valid_file, c->test_file};
    for (int s = 0; s < NSTREAMS; s++) {
        if (task_path(what[s], WHAT_LEN, c->data_dir, files[s]) != 0) return errf(err, errlen, "task.data_dir: path too long");
        text[s] = task_read_file(what[s], &len[s], err, errlen);
        if (!text[s]) return -1;
        if (len[s] == 0) return errf(err, errlen, "%s: empty file", what[s]);
        if (word && no_nul(text[s], len[s], what[s], err, errlen) != 0) return -1;
    }
    return 0;
}

// The BPE: GPT-2's, or the one trained on the training text (source names it) read from the cache,
// or trained and cached.
static int make_bpe(Lm *m, const TaskConfig *c, const char *train, size_t len, const char *source, char *err,
                    int errlen) {
    if (!strcmp(c->tokenizer, "gpt2")) {
        snprintf(m->tag, sizeof m->tag, "gpt2");
        m->bpe = gpt2_bpe_load(c->bpe_dir, err, errlen);
        return m->bpe ? 0 : -1;
    }
    snprintf(m->tag, sizeof m->tag, "bpe%d", c->vocab_size);
    char path[3 * TASK_STR], why[TASK_STR + 256];
    uint32_t crc = text_crc32(train, len);
    int cached = c->cache_dir[0] && cache_path(path, sizeof path, c->cache_dir, source, m->tag, "merges") == 0;
    if (cached && task_path_exists(path)) {
        m->bpe = bpe_load(path, len, crc, c->vocab_size, why, sizeof why);
        if (m->bpe) return 0;
        fprintf(stderr, "lm: %s; training the tokenizer again\n", why);
    }
    double t0 = now_seconds();
    m->bpe = bpe_train(train, len, c->vocab_size);
    if (!m->bpe) return errf(err, errlen, "%s: out of memory training the BPE tokenizer", source);
    fprintf(stderr, "lm: trained a BPE of %d tokens (%d merges) on %s (%.1f MB) in %.1fs\n", bpe_n_tokens(m->bpe),
            bpe_n_merges(m->bpe), source, (double)len / 1e6, now_seconds() - t0);
    if (cached && (task_mkdir_p(c->cache_dir, err, errlen) != 0 || bpe_save(m->bpe, path, len, crc, err, errlen) != 0))
        fprintf(stderr, "lm: tokenizer not saved (%s); the next run trains it again\n", err);
    return 0;
}

// The three texts, tokenized into m->st (and the word vocabulary or the BPE made first).
static int load_streams(Lm *m, const TaskConfig *c, char what[][WHAT_LEN], char *err, int errlen) {
    char *text[NSTREAMS] = {NULL, NULL, NULL}, *whole = NULL;
    size_t len[NSTREAMS] = {0, 0, 0};
    int rc;
    if (c->text_file[0])
        rc = cut_text_file(c, m->word, &whole, text, len, what, err, errlen);
    else if (c->data_dir[0])
        rc = read_data_dir(c, m->word, text, len, what, err, errlen);
    else
        rc = errf(err, errlen,
                  "task.data_dir or task.text_file: lm needs text (scripts/fetch_data.sh, scripts/build_code_corpus.py)");
    char source[NSTREAMS][WHAT_LEN];  // what[s] as a cache file names it
    for (int s = 0; s < NSTREAMS; s++) {
        if (c->text_file[0])
            snprintf(source[s], WHAT_LEN, "%.*s.%s", TASK_STR, c->text_file, stream_names[s]);
        else
            memcpy(source[s], what[s], WHAT_LEN);
    }
    if (rc == 0 && m->word) {
        m->vocab = word_vocab_build(text[S_TRAIN], len[S_TRAIN], c->min_count, c->max_vocab);
        if (!m->vocab) rc = errf(err, errlen, "%s: out of memory building the vocabulary", what[S_TRAIN]);
    }
    if (rc == 0 && m->kind == TOK_BPE) rc = make_bpe(m, c, text[S_TRAIN], len[S_TRAIN], source[S_TRAIN], err, errlen);
    for (int s = 0; s < NSTREAMS && rc == 0; s++) rc = encode(m, c, text[s], len[s], &m->st[s], source[s], err, errlen);
    if (whole)
        free(whole);
    else
        for (int s = 0; s < NSTREAMS; s++) free(text[s]);
    return rc;
}

// The evaluation splits: each needs a token to predict. A split that is there must have one: only a
// text_file share of 0 leaves a split out.
static int set_splits(Task *t, Lm *m, char what[][WHAT_LEN], char *err, int errlen) {
    const TaskConfig *c = &t->cfg;
    const char *share_key[NSTREAMS] = {NULL, "task.valid_fraction", "task.test_fraction"};
    double share[NSTREAMS] = {1.0, c->valid_fraction, c->test_fraction};
    int k = 0;
    for (int s = S_VALID; s < NSTREAMS; s++) {
        long n = m->st[s].n;
        if (c->text_file[0] && share[s] == 0) continue;
        if (n < 2 && c->text_file[0])
            return errf(err, errlen,
                        "%s: %ld token%s after the cuts at line ends; %s %g needs at least 2 there (0 leaves the split out)",
                        what[s], n, n == 1 ? "" : "s", share_key[s], share[s]);
        if (n < 2)
            return errf(err, errlen, "%s: %ld token; an evaluation split needs at least 2 (one to predict)", what[s], n);
        m->eval_split_stream[k] = s;
        t->splits[k++] = stream_names[s];
    }
    t->splits[k] = NULL;
    return 0;
}

// Keys that the tokenizer or the source of the text leaves without effect.
static int refuse_unused(const TaskConfig *c, int word, char *err, int errlen) {
    if (!word && task_refuse_unused(c, "min_count|max_vocab", "applies to the word tokenizer only", err, errlen) != 0)
        return -1;
    int gpt2 = !strcmp(c->tokenizer, "gpt2"), bpe = !strcmp(c->tokenizer, "bpe");
    if (!gpt2 && task_refuse_unused(c, "bpe_dir", "applies to the gpt2 tokenizer only", err, errlen) != 0) return -1;
    if (!bpe && task_refuse_unused(c, "vocab_size", "applies to the bpe tokenizer only", err, errlen) != 0) return -1;
    if (!gpt2 && !bpe &&
        task_refuse_unused(c, "cache_dir", "applies to the gpt2 and bpe tokenizers only (bytes and words need no cache)",
                           err, errlen) != 0)
        return -1;
    if (c->text_file[0])
        return task_refuse_unused(c, "data_dir|train_file|valid_file|test_file",
                                  "has no effect with task.text_file (the splits are cut from it)", err, errlen);
    return task_refuse_unused(c, "valid_fraction|test_fraction",
                              "applies to task.text_file only (the splits are data_dir's files)", err, errlen);
}

static int lm_create(Task *t, char *err, int errlen) {
    const TaskConfig *c = &t->cfg;
    Lm *m = calloc(1, sizeof *m);
    if (!m) return errf(err, errlen, "lm: out of memory");
    t->impl = m;
    if (t->answer_loss)
        return errf(err, errlen, "task.loss_on: \"answer\" does not apply to lm (every token is a target); use all or auto");
    m->word = strcmp(c->tokenizer, "word") == 0;
    m->kind = m->word ? TOK_WORD : strcmp(c->tokenizer, "byte") == 0 ? TOK_BYTE : TOK_BPE;
    m->sequential = strcmp(c->sampling, "sequential") == 0;
    if (refuse_unused(c, m->word, err, errlen) != 0) return -1;
    m->W = task_eval_length(c, t->block_size);
    char what[NSTREAMS][WHAT_LEN];
    if (load_streams(m, c, what, err, errlen) != 0) return -1;
    if (m->st[S_TRAIN].n < (long)t->block_size + 1)
        return errf(err, errlen, "%s: %ld tokens, fewer than model.block_size + 1 = %d", what[S_TRAIN], m->st[S_TRAIN].n,
                    t->block_size + 1);
    if (set_splits(t, m, what, err, errlen) != 0) return -1;
    int row_len = (m->W > t->block_size ? m->W : t->block_size) + 1;
    m->row = malloc(sizeof(int) * (size_t)row_len);
    if (!m->row) return errf(err, errlen, "lm: out of memory");
    for (int i = 0; i < 256; i++) {
        m->byte_text[i] = (unsigned char)i;
        if (i >= 33 && i < 127 && i != '\\')
            snprintf(m->byte_names[i], sizeof m->byte_names[i], "%c", i);
        else
            snprintf(m->byte_names[i], sizeof m->byte_names[i], "\\x%02x", i);
    }
    rng_seed(&m->rng, rng_key(t->run_seed, STREAM_TRAIN, 0, 0));
    t->vocab_size = m->word ? vocab_size(m->vocab) : m->bpe ? bpe_n_tokens(m->bpe) : 256;
    t->max_length = t->block_size;
    t->is_lm = 1;
    return 0;
}

static void lm_destroy(Task *t) {
    Lm *m = t->impl;
    if (!m) return;
    for (int s = 0; s < NSTREAMS; s++) {
        free(m->st[s].t8);
        free(m->st[s].t32);
    }
    vocab_free(m->vocab);
    bpe_free(m->bpe);
    free(m->row);
    free(m);
    t->impl = NULL;
}

const TaskOps lm_ops = {
    .name = "lm",
    .title = "language modelling on text",
    .answer = NULL,
    .answer_loss_auto = 0,
    TASK_KEYS(lm_keys),
    .shared_keys = "data_dir|eval_length",
    .default_eval_length = lm_default_eval_length,
    .create = lm_create,
    .destroy = lm_destroy,
    .next_train = lm_next_train,
    .split_size = lm_split_size,
    .split_max_length = lm_split_max_length,
    .eval_batch = lm_eval_batch,
    .token_str = lm_token_str,
    .token_text = lm_token_text,
    .encode = lm_encode,
    .train_epoch = NULL,
    .bytes_per_token = lm_bytes_per_token,
    .state_size = lm_state_size,
    .state_save = lm_state_save,
    .state_load = lm_state_load,
};
