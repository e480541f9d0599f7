#include "tasks/tokenizer.h"

#include <ctype.h>
#include <limits.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

// Words live in one growing character arena (offsets, so realloc is safe); an open-addressing
// table of ids indexes them by an FNV-1a hash.
struct Vocab {
    char *chars;
    size_t nchars, capchars;
    size_t *start;  // (n) offset of each word in chars (NUL-terminated there)
    size_t *len;    // (n) its length: words may hold NUL bytes (BPE tokens, pre-tokens)
    long *count;    // (n)
    int n, cap;
    int *table;     // (tabsize) id + 1, 0 = empty
    size_t tabsize;
};

static uint64_t hash_word(const char *w, size_t len) {
    uint64_t h = 1469598103934665603ULL;
    for (size_t i = 0; i < len; i++) h = (h ^ (unsigned char)w[i]) * 1099511628211ULL;
    return h;
}

Vocab *vocab_new(void) {
    Vocab *v = calloc(1, sizeof *v);
    if (!v) return NULL;
    v->tabsize = 1024;
    v->table = calloc(v->tabsize, sizeof(int));
    if (!v->table) {
        free(v);
        return NULL;
    }
    return v;
}

void vocab_free(Vocab *v) {
    if (!v) return;
    free(v->chars);
    free(v->start);
    free(v->len);
    free(v->count);
    free(v->table);
    free(v);
}

int vocab_size(const Vocab *v) { return v->n; }
const char *vocab_word(const Vocab *v, int id) { return id >= 0 && id < v->n ? v->chars + v->start[id] : NULL; }
long vocab_get_count(const Vocab *v, int id) { return id >= 0 && id < v->n ? v->count[id] : 0; }
const char *vocab_bytes(const Vocab *v, int id, size_t *len) {
    if (id < 0 || id >= v->n) return NULL;
    *len = v->len[id];
    return v->chars + v->start[id];
}

static size_t slot_of(const Vocab *v, const char *w, size_t len) {
    size_t mask = v->tabsize - 1, i = (size_t)hash_word(w, len) & mask;
    for (;;) {
        int id = v->table[i] - 1;
        if (id < 0) return i;
        if (v->len[id] == len && memcmp(v->chars + v->start[id], w, len) == 0) return i;
        i = (i + 1) & mask;
    }
}

int vocab_find(const Vocab *v, const char *w, size_t len) { return v->table[slot_of(v, w, len)] - 1; }

static int grow_table(Vocab *v) {
    size_t size = v->tabsize * 2;
    int *t = calloc(size, sizeof(int));
    if (!t) return -1;
    free(v->table);
    v->table = t;
    v->tabsize = size;
    for (int id = 0; id < v->n; id++) v->table[slot_of(v, v->chars + v->start[id], v->len[id])] = id + 1;
    return 0;
}

int vocab_add(Vocab *v, const char *w, size_t len) {
    size_t slot = slot_of(v, w, len);
    if (v->table[slot]) return v->table[slot] - 1;
    if (v->n == v->cap) {
        if (v->cap > INT_MAX / 2) return -1;  // ids are ints: as full as out of memory
        int cap = v->cap ? v->cap * 2 : 64;
        size_t *st = realloc(v->start, sizeof(size_t) * (size_t)cap);
        if (!st) return -1;
        v->start = st;
        size_t *ln = realloc(v->len, sizeof(size_t) * (size_t)cap);
        if (!ln) return -1;
        v->len = ln;
        long *ct = realloc(v->count, sizeof(long) * (size_t)cap);
        if (!ct) return -1;
        v->count = ct;
        v->cap = cap;
    }
    if (v->nchars + len + 1 > v->capchars) {
        size_t cap = v->capchars ? v->capchars : 4096;
        while (cap < v->nchars + len + 1) cap *= 2;
        char *c = realloc(v->chars, cap);
        if (!c) return -1;
        v->chars = c;
        v->capchars = cap;
    }
    memcpy(v->chars + v->nchars, w, len);
    v->chars[v->nchars + len] = 0;
    v->start[v->n] = v->nchars;
    v->len[v->n] = len;
    v->count[v->n] = 0;
    v->nchars += len + 1;
    v->table[slot] = ++v->n;
    if ((size_t)v->n * 2 > v->tabsize && grow_table(v) != 0) return -1;
    return v->n - 1;
}

int vocab_count(Vocab *v, const char *w, size_t len) {
    int id = vocab_add(v, w, len);
    if (id >= 0) v->count[id]++;
    return id;
}

char *simple_normalize(const char *text) {
    while (isspace((unsigned char)*text)) text++;
    size_t n = strlen(text);
    while (n > 0 && isspace((unsigned char)text[n - 1])) n--;
    char *out = malloc(2 * n + 1), *o = out;
    if (!out) return NULL;
    for (size_t i = 0; i < n; i++) {
        char ch = text[i];
        if (ch == '.' || ch == ',' || ch == '?') *o++ = ' ';
        *o++ = (char)tolower((unsigned char)ch);
    }
    *o = 0;
    return out;
}

const char *next_word(const char **p, size_t *len) {
    const char *s = *p;
    while (*s && isspace((unsigned char)*s)) s++;
    if (!*s) {
        *p = s;
        return NULL;
    }
    const char *e = s;
    while (*e && !isspace((unsigned char)*e)) e++;
    *len = (size_t)(e - s);
    *p = e;
    return s;
}

// Calls fn on every word of text[0..len) and on each end of line (w == NULL).
static long each_word(const char *text, size_t len, void (*fn)(void *, const char *, size_t), void *ctx) {
    long n = 0;
    size_t i = 0;
    while (i < len) {
        while (i < len && text[i] != '\n' && isspace((unsigned char)text[i])) i++;
        if (i < len && text[i] == '\n') {
            fn(ctx, NULL, 0);
            n++;
            i++;
            continue;
        }
        if (i >= len) break;
        size_t s = i;
        while (i < len && !isspace((unsigned char)text[i])) i++;
        fn(ctx, text + s, i - s);
        n++;
    }
    if (len > 0 && text[len - 1] != '\n') {
        fn(ctx, NULL, 0);
        n++;
    }
    return n;
}

static void count_fn(void *ctx, const char *w, size_t len) {
    if (w) vocab_count(ctx, w, len);
}

typedef struct {
    long count;
    int id;
} Ranked;
static int by_count(const void *a, const void *b) {
    const Ranked *x = a, *y = b;
    if (x->count != y->count) return x->count > y->count ? -1 : 1;
    return (x->id > y->id) - (x->id < y->id);
}

Vocab *word_vocab_build(const char *text, size_t len, int min_count, int max_vocab) {
    Vocab *counts = vocab_new(), *v = vocab_new();
    Ranked *ids = NULL;
    if (!counts || !v) goto fail;
    each_word(text, len, count_fn, counts);
    ids = malloc(sizeof(Ranked) * (size_t)(counts->n > 0 ? counts->n : 1));
    if (!ids) goto fail;
    for (int i = 0; i < counts->n; i++) ids[i] = (Ranked){counts->count[i], i};
    qsort(ids, (size_t)counts->n, sizeof(Ranked), by_count);
    if (vocab_add(v, "<unk>", 5) != WORD_UNK || vocab_add(v, "<eos>", 5) != WORD_EOS) goto fail;
    for (int i = 0; i < counts->n; i++) {
        if (max_vocab > 0 && v->n >= max_vocab) break;
        int id = ids[i].id;
        if (counts->count[id] < min_count) break;
        int nid = vocab_add(v, counts->chars + counts->start[id], counts->len[id]);
        if (nid < 0) goto fail;
        v->count[nid] = counts->count[id];
    }
    free(ids);
    vocab_free(counts);
    return v;
fail:
    free(ids);
    vocab_free(counts);
    vocab_free(v);
    return NULL;
}

typedef struct {
    const Vocab *v;
    int *out;
    long n;
} EncodeCtx;
static void encode_fn(void *ctx, const char *w, size_t len) {
    EncodeCtx *e = ctx;
    if (e->out) {
        int id = WORD_EOS;
        if (w) {
            id = vocab_find(e->v, w, len);
            if (id < 0) id = WORD_UNK;
        }
        e->out[e->n] = id;
    }
    e->n++;
}

long word_encode(const Vocab *v, const char *text, size_t len, int *out) {
    EncodeCtx e = {v, out, 0};
    each_word(text, len, encode_fn, &e);
    return e.n;
}
