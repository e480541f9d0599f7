// Training a byte-level BPE on a text (bpe.h, docs/tokenizers.md): the text's pre-tokens are
// counted once; then each merge takes the most frequent adjacent pair and rewrites only the
// pre-tokens that hold it, updating the pair counts as it goes (no recount per merge). A max-heap
// finds the most frequent pair: entries go stale when a count falls, and a stale entry is put back
// with its current count when it reaches the top.
#include <stdlib.h>
#include <string.h>

#include "tasks/bpe.h"
#include "tasks/pair_map.h"
#include "tasks/tokenizer.h"

typedef struct {
    long count;
    int left, right, pair;
} HeapEntry;

typedef struct {
    // the distinct pre-tokens ("words"): word i's tokens are sym[at[i] .. at[i] + len[i]), count[i] times
    int n_words;
    long *count;
    size_t *at;
    int *len, *sym;
    // the adjacent pairs: index maps (left, right) to a pair p; words[p] lists (maybe stale) the words
    // that hold it
    PairMap index;
    int n_pairs, cap_pairs;
    int *left, *right, *n_in, *cap_in, **words, *pushed;
    long *pcount;
    int *touched, n_touched, cap_touched;  // the pairs whose count grew in this merge step
    HeapEntry *heap;
    size_t n_heap, cap_heap;
    int failed;  // out of memory
} Trainer;

// Is x to be merged before y? More occurrences first, then the smaller left id, then the smaller right.
static int before(const HeapEntry *x, const HeapEntry *y) {
    if (x->count != y->count) return x->count > y->count;
    if (x->left != y->left) return x->left < y->left;
    return x->right < y->right;
}

static void heap_push(Trainer *t, int p) {
    if (t->n_heap == t->cap_heap) {
        size_t cap = t->cap_heap ? 2 * t->cap_heap : 4096;
        HeapEntry *h = realloc(t->heap, sizeof *h * cap);
        if (!h) {
            t->failed = 1;
            return;
        }
        t->heap = h;
        t->cap_heap = cap;
    }
    HeapEntry e = {t->pcount[p], t->left[p], t->right[p], p};
    size_t i = t->n_heap++;
    for (; i > 0 && before(&e, &t->heap[(i - 1) / 2]); i = (i - 1) / 2) t->heap[i] = t->heap[(i - 1) / 2];
    t->heap[i] = e;
}

static HeapEntry heap_pop(Trainer *t) {
    HeapEntry top = t->heap[0], last = t->heap[--t->n_heap];
    size_t i = 0, n = t->n_heap;
    for (;;) {
        size_t c = 2 * i + 1;
        if (c >= n) break;
        if (c + 1 < n && before(&t->heap[c + 1], &t->heap[c])) c++;
        if (!before(&t->heap[c], &last)) break;
        t->heap[i] = t->heap[c];
        i = c;
    }
    if (n) t->heap[i] = last;
    return top;
}

// The pair (left, right)'s index, added with count 0 if new; -1 when out of memory.
static int pair_index(Trainer *t, int left, int right) {
    int p = pair_map_get(&t->index, left, right);
    if (p >= 0) return p;
    if (t->n_pairs == t->cap_pairs) {
        int cap = t->cap_pairs ? 2 * t->cap_pairs : 4096;
        void *q[8] = {realloc(t->left, sizeof(int) * cap), realloc(t->right, sizeof(int) * cap),
                      realloc(t->n_in, sizeof(int) * cap), realloc(t->cap_in, sizeof(int) * cap),
                      realloc(t->words, sizeof(int *) * cap), realloc(t->pushed, sizeof(int) * cap),
                      realloc(t->pcount, sizeof(long) * cap)};
        if (q[0]) t->left = q[0];
        if (q[1]) t->right = q[1];
        if (q[2]) t->n_in = q[2];
        if (q[3]) t->cap_in = q[3];
        if (q[4]) t->words = q[4];
        if (q[5]) t->pushed = q[5];
        if (q[6]) t->pcount = q[6];
        for (int k = 0; k < 7; k++)
            if (!q[k]) return -1;
        t->cap_pairs = cap;
    }
    p = t->n_pairs;
    if (pair_map_put(&t->index, left, right, p) != 0) return -1;
    t->n_pairs++;
    t->left[p] = left;
    t->right[p] = right;
    t->n_in[p] = t->cap_in[p] = 0;
    t->words[p] = NULL;
    t->pushed[p] = -1;
    t->pcount[p] = 0;
    return p;
}

// Notes that word w holds pair p (once, when w is already the last one noted).
static int note_word(Trainer *t, int p, int w) {
    if (t->n_in[p] > 0 && t->words[p][t->n_in[p] - 1] == w) return 0;
    if (t->n_in[p] == t->cap_in[p]) {
        int cap = t->cap_in[p] ? 2 * t->cap_in[p] : 4;
        int *ws = realloc(t->words[p], sizeof(int) * cap);
        if (!ws) return -1;
        t->words[p] = ws;
        t->cap_in[p] = cap;
    }
    t->words[p][t->n_in[p]++] = w;
    return 0;
}

// Notes that pair p's count grew in merge step `step` (once per step).
static void touch(Trainer *t, int p, int step) {
    if (t->pushed[p] == step) return;
    t->pushed[p] = step;
    if (t->n_touched == t->cap_touched) {
        int cap = t->cap_touched ? 2 * t->cap_touched : 1024;
        int *q = realloc(t->touched, sizeof(int) * cap);
        if (!q) {
            t->failed = 1;
            return;
        }
        t->touched = q;
        t->cap_touched = cap;
    }
    t->touched[t->n_touched++] = p;
}

// Adds sign × word w's count to each of its adjacent pairs. Adding, it notes w in the pairs that hold
// `token` (all of them when token is -1) and, in merge step `step` (token ≥ 0), touches them.
static void count_pairs(Trainer *t, int w, int sign, int token, int step) {
    const int *s = t->sym + t->at[w];
    for (int i = 0; i + 1 < t->len[w] && !t->failed; i++) {
        int p = sign > 0 ? pair_index(t, s[i], s[i + 1]) : pair_map_get(&t->index, s[i], s[i + 1]);
        if (p < 0) {
            t->failed = 1;
            return;
        }
        t->pcount[p] += sign * t->count[w];
        if (sign > 0 && (token < 0 || s[i] == token || s[i + 1] == token)) {
            if (note_word(t, p, w) != 0) t->failed = 1;
            if (token >= 0) touch(t, p, step);
        }
    }
}

// Does word w hold the pair (left, right)? Not always when a pair's word list names it: the list
// is not pruned when a merge takes the pair out of a word.
static int holds(const Trainer *t, int w, int left, int right) {
    const int *s = t->sym + t->at[w];
    for (int i = 0; i + 1 < t->len[w]; i++)
        if (s[i] == left && s[i + 1] == right) return 1;
    return 0;
}

// Rewrites word w with (left, right) merged into z, left to right, non-overlapping.
static void merge_word(Trainer *t, int w, int left, int right, int z) {
    int *s = t->sym + t->at[w], n = t->len[w], k = 0;
    for (int i = 0; i < n; k++) {
        if (i + 1 < n && s[i] == left && s[i + 1] == right) {
            s[k] = z;
            i += 2;
        } else {
            s[k] = s[i++];
        }
    }
    t->len[w] = k;
}

// The text's distinct pre-tokens as byte tokens, with their counts, and their pairs counted.
static int count_words(Trainer *t, const unsigned char *text, size_t len) {
    Vocab *v = vocab_new();
    if (!v) return -1;
    for (size_t i = 0; i < len;) {
        size_t end = bpe_pretoken_end(text, len, i);
        if (vocab_count(v, (const char *)text + i, end - i) < 0) {
            vocab_free(v);
            return -1;
        }
        i = end;
    }
    t->n_words = vocab_size(v);
    size_t total = 0, wl;
    for (int w = 0; w < t->n_words; w++) total += (vocab_bytes(v, w, &wl), wl);
    t->count = malloc(sizeof(long) * (size_t)(t->n_words + 1));
    t->at = malloc(sizeof(size_t) * (size_t)(t->n_words + 1));
    t->len = malloc(sizeof(int) * (size_t)(t->n_words + 1));
    t->sym = malloc(sizeof(int) * (total + 1));
    if (!t->count || !t->at || !t->len || !t->sym) {
        vocab_free(v);
        return -1;
    }
    for (size_t w = 0, at = 0; w < (size_t)t->n_words; w++) {
        const unsigned char *s = (const unsigned char *)vocab_bytes(v, (int)w, &wl);
        t->count[w] = vocab_get_count(v, (int)w);
        t->at[w] = at;
        t->len[w] = (int)wl;
        for (size_t i = 0; i < wl; i++) t->sym[at++] = s[i];
        count_pairs(t, (int)w, +1, -1, 0);
    }
    vocab_free(v);
    for (int p = 0; p < t->n_pairs; p++) heap_push(t, p);
    return t->failed ? -1 : 0;
}

// The next pair to merge (its index), or -1 when no pair occurs twice. A pair merged before can
// occur again only when a later merge made a token that has the bytes of one of its halves (two
// merges with equal bytes share the token); it is passed over.
static int best_pair(const Bpe *b, Trainer *t) {
    while (t->n_heap > 0 && !t->failed) {
        HeapEntry e = heap_pop(t);
        long now = t->pcount[e.pair];
        if (now == e.count && now >= 2) {
            if (bpe_has_merge(b, e.left, e.right)) continue;
            return e.pair;
        }
        if (now != e.count && now > 0) heap_push(t, e.pair);
    }
    return -1;
}

// Merges pair p into a token and updates the words that hold it and the counts of their pairs.
static int apply_merge(Bpe *b, Trainer *t, int p, int step) {
    int left = t->left[p], right = t->right[p];
    int z = bpe_add_merge(b, left, right);
    if (z < 0) return -1;
    t->n_touched = 0;
    for (int k = 0; k < t->n_in[p] && !t->failed; k++) {
        int w = t->words[p][k];
        if (!holds(t, w, left, right)) continue;
        count_pairs(t, w, -1, z, step);
        merge_word(t, w, left, right, z);
        count_pairs(t, w, +1, z, step);
    }
    free(t->words[p]);
    t->words[p] = NULL;
    t->n_in[p] = t->cap_in[p] = 0;
    // the pairs that hold z: new ones, and old ones (when z is a token seen before) whose count grew
    for (int k = 0; k < t->n_touched; k++)
        if (t->pcount[t->touched[k]] > 0) heap_push(t, t->touched[k]);
    return t->failed ? -1 : 0;
}

static void trainer_free(Trainer *t) {
    for (int p = 0; p < t->n_pairs; p++) free(t->words[p]);
    free(t->count);
    free(t->at);
    free(t->len);
    free(t->sym);
    pair_map_free(&t->index);
    free(t->left);
    free(t->right);
    free(t->n_in);
    free(t->cap_in);
    free(t->words);
    free(t->pushed);
    free(t->pcount);
    free(t->heap);
    free(t->touched);
}

Bpe *bpe_train(const void *text, size_t len, int vocab_size) {
    Trainer t = {0};
    Bpe *b = bpe_new_bytes();
    int rc = b && count_words(&t, text, len) == 0 ? 0 : -1;
    for (int step = 0; rc == 0 && bpe_n_tokens(b) < vocab_size; step++) {
        int p = best_pair(b, &t);
        if (p < 0) break;
        rc = apply_merge(b, &t, p, step);
    }
    if (rc == 0 && (t.failed || bpe_finish(b) != 0)) rc = -1;
    trainer_free(&t);
    if (rc != 0) {
        bpe_free(b);
        return NULL;
    }
    return b;
}
