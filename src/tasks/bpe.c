// Byte-level BPE: the tokens and merges, GPT-2's pre-tokenisation rule, the encoder with its cache
// of pre-tokens, and the trained tokenizer's file. See bpe.h and docs/tokenizers.md.
#include "tasks/bpe.h"

#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "atomic_file.h"
#include "error.h"
#include "tasks/files.h"
#include "tasks/pair_map.h"
#include "tasks/tokenizer.h"
#include "tasks/unicode_classes.h"

// Pre-tokens up to this many bytes are cached (longer ones are rare: runs of spaces or symbols); the
// cache starts again empty when it holds CACHE_WORDS of them, so memory stays bounded.
enum { CACHE_MAX_LEN = 64, CACHE_WORDS = 1 << 20 };

struct Bpe {
    Vocab *tokens;      // id -> bytes (and bytes -> id)
    int byte_id[256];   // the token of each single byte
    int n_merges, cap_merges;
    int *left, *right, *result;  // (n_merges) by rank
    PairMap rank;       // (left, right) -> rank
    uint64_t fingerprint;
    char *names;        // the tokens' printable names, NUL-separated
    size_t *name_at;    // (n_tokens) offset of each in names
    // The encoder's cache: pre-token (a word of cache) -> its tokens, cache_ids[cache_at[w] ...]
    Vocab *cache;
    size_t *cache_at;
    int *cache_ids;
    size_t n_cache_ids, cap_cache_ids, cap_cache_at;
    int *scratch;       // the tokens of one long pre-token
    size_t cap_scratch;
};

// ---- Unicode classes and UTF-8 ----

UnicodeClass unicode_class(uint32_t cp) {
    switch (cp) {  // Unicode's White_Space property
    case 0x09: case 0x0A: case 0x0B: case 0x0C: case 0x0D: case 0x20: case 0x85: case 0xA0: case 0x1680:
    case 0x2028: case 0x2029: case 0x202F: case 0x205F: case 0x3000:
        return UC_SPACE;
    }
    if (cp >= 0x2000 && cp <= 0x200A) return UC_SPACE;
    int lo = 0, hi = unicode_n_ranges - 1;
    while (lo <= hi) {
        int mid = (lo + hi) / 2;
        if (cp < unicode_ranges[mid].lo)
            hi = mid - 1;
        else if (cp > unicode_ranges[mid].hi)
            lo = mid + 1;
        else
            return unicode_ranges[mid].cls;
    }
    return UC_OTHER;
}

size_t utf8_decode(const unsigned char *s, size_t n, uint32_t *cp) {
    unsigned c = s[0];
    size_t len = c < 0x80 ? 1 : c >= 0xC2 && c <= 0xDF ? 2 : c >= 0xE0 && c <= 0xEF ? 3 : c >= 0xF0 && c <= 0xF4 ? 4 : 0;
    if (len == 1) {
        *cp = c;
        return 1;
    }
    *cp = UNICODE_INVALID;
    if (len == 0 || len > n) return 1;
    uint32_t v = c & (0x7F >> len);
    for (size_t k = 1; k < len; k++) {
        if ((s[k] & 0xC0) != 0x80) return 1;
        v = v << 6 | (s[k] & 0x3F);
    }
    static const uint32_t least[5] = {0, 0, 0x80, 0x800, 0x10000};
    if (v < least[len] || v > 0x10FFFF || (v >= 0xD800 && v <= 0xDFFF)) return 1;
    *cp = v;
    return len;
}

// ---- GPT-2's pre-tokenisation rule ----

// The class of the code point at s[i] and, in *len, its length.
static UnicodeClass class_at(const unsigned char *s, size_t n, size_t i, size_t *len) {
    if (s[i] < 0x80) {
        unsigned c = s[i];
        *len = 1;
        if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z')) return UC_LETTER;
        if (c >= '0' && c <= '9') return UC_NUMBER;
        if ((c >= 0x09 && c <= 0x0D) || c == ' ') return UC_SPACE;
        return UC_OTHER;
    }
    uint32_t cp;
    *len = utf8_decode(s + i, n - i, &cp);
    return cp == UNICODE_INVALID ? UC_OTHER : unicode_class(cp);
}

// The end of the run of code points of class cls from s[i] (i itself if none is).
static size_t run_end(const unsigned char *s, size_t n, size_t i, UnicodeClass cls) {
    size_t len;
    while (i < n && class_at(s, n, i, &len) == cls) i += len;
    return i;
}

// 's|'t|'re|'ve|'m|'ll|'d at s[i]: its length, or 0.
static size_t contraction(const unsigned char *s, size_t n, size_t i) {
    if (s[i] != '\'' || i + 1 >= n) return 0;
    unsigned c = s[i + 1];
    if (c == 's' || c == 't' || c == 'm' || c == 'd') return 2;
    if (i + 2 < n && ((c == 'r' && s[i + 2] == 'e') || (c == 'v' && s[i + 2] == 'e') || (c == 'l' && s[i + 2] == 'l')))
        return 3;
    return 0;
}

size_t bpe_pretoken_end(const unsigned char *s, size_t n, size_t i) {
    size_t c = contraction(s, n, i), len;
    if (c) return i + c;
    // ' ?\p{L}+', ' ?\p{N}+', ' ?[^\s\p{L}\p{N}]+': a run of one class, after an optional space
    size_t start = i + (s[i] == ' ' && i + 1 < n);
    UnicodeClass cls = class_at(s, n, start, &len);
    if (cls != UC_SPACE) return run_end(s, n, start, cls);
    // '\s+(?!\S)': the white space run but its last code point when text follows (which then may start
    // the next pre-token as its optional space); '\s+': a run of one code point followed by text
    size_t end = run_end(s, n, i, UC_SPACE);
    if (end == n) return end;
    size_t last = i, next = i;
    while (next < end) {
        last = next;
        class_at(s, n, next, &len);
        next += len;
    }
    return last > i ? last : end;
}

// ---- Tokens and merges ----

Bpe *bpe_new(void) {
    Bpe *b = calloc(1, sizeof *b);
    if (!b) return NULL;
    b->tokens = vocab_new();
    b->cache = vocab_new();
    if (!b->tokens || !b->cache) {
        bpe_free(b);
        return NULL;
    }
    for (int i = 0; i < 256; i++) b->byte_id[i] = -1;
    return b;
}

void bpe_free(Bpe *b) {
    if (!b) return;
    vocab_free(b->tokens);
    vocab_free(b->cache);
    free(b->left);
    free(b->right);
    free(b->result);
    pair_map_free(&b->rank);
    free(b->names);
    free(b->name_at);
    free(b->cache_at);
    free(b->cache_ids);
    free(b->scratch);
    free(b);
}

int bpe_n_tokens(const Bpe *b) { return vocab_size(b->tokens); }
int bpe_n_merges(const Bpe *b) { return b->n_merges; }
int bpe_has_merge(const Bpe *b, int left, int right) { return pair_map_get(&b->rank, left, right) >= 0; }
uint64_t bpe_fingerprint(const Bpe *b) { return b->fingerprint; }
void bpe_merge(const Bpe *b, int rank, int *left, int *right) {
    *left = b->left[rank];
    *right = b->right[rank];
}
const unsigned char *bpe_token_bytes(const Bpe *b, int id, size_t *len) {
    return (const unsigned char *)vocab_bytes(b->tokens, id, len);
}
const char *bpe_token_name(const Bpe *b, int id) { return b->names + b->name_at[id]; }

int bpe_find_token(const Bpe *b, const void *s, size_t len) { return vocab_find(b->tokens, s, len); }

int bpe_add_token(Bpe *b, const void *s, size_t len) {
    if (len == 0 || vocab_find(b->tokens, s, len) >= 0) return -1;
    int id = vocab_add(b->tokens, s, len);
    if (id >= 0 && len == 1) b->byte_id[*(const unsigned char *)s] = id;
    return id;
}

int bpe_add_merge(Bpe *b, int left, int right) {
    int n = bpe_n_tokens(b);
    if (left < 0 || left >= n || right < 0 || right >= n || pair_map_get(&b->rank, left, right) >= 0) return -1;
    size_t ll, rl;
    const char *l = vocab_bytes(b->tokens, left, &ll), *r = vocab_bytes(b->tokens, right, &rl);
    char *joined = malloc(ll + rl);
    if (!joined) return -1;
    memcpy(joined, l, ll);
    memcpy(joined + ll, r, rl);
    int result = vocab_find(b->tokens, joined, ll + rl);
    if (result < 0) result = vocab_add(b->tokens, joined, ll + rl);
    free(joined);
    if (result < 0) return -1;
    if (b->n_merges == b->cap_merges) {
        int cap = b->cap_merges ? 2 * b->cap_merges : 1024;
        int *nl = realloc(b->left, sizeof(int) * cap), *nr = nl ? realloc(b->right, sizeof(int) * cap) : NULL;
        if (nl) b->left = nl;
        if (nr) b->right = nr;
        int *nres = nr ? realloc(b->result, sizeof(int) * cap) : NULL;
        if (!nres) return -1;
        b->result = nres;
        b->cap_merges = cap;
    }
    if (pair_map_put(&b->rank, left, right, b->n_merges) != 0) return -1;
    b->left[b->n_merges] = left;
    b->right[b->n_merges] = right;
    b->result[b->n_merges++] = result;
    return result;
}

static uint64_t fnv(uint64_t h, const void *p, size_t n) {
    for (size_t i = 0; i < n; i++) h = (h ^ ((const unsigned char *)p)[i]) * 1099511628211ULL;
    return h;
}

// The printable names: bytes 0x21..0x7e but the backslash as themselves, the rest as \xNN.
static int make_names(Bpe *b) {
    int n = bpe_n_tokens(b);
    size_t total = 0, len;
    for (int id = 0; id < n; id++) {
        vocab_bytes(b->tokens, id, &len);
        total += 4 * len + 1;
    }
    b->names = malloc(total);
    b->name_at = malloc(sizeof(size_t) * (size_t)(n ? n : 1));
    if (!b->names || !b->name_at) return -1;
    char *o = b->names;
    for (int id = 0; id < n; id++) {
        const unsigned char *s = bpe_token_bytes(b, id, &len);
        b->name_at[id] = (size_t)(o - b->names);
        for (size_t i = 0; i < len; i++)
            o += s[i] > 0x20 && s[i] < 0x7F && s[i] != '\\' ? sprintf(o, "%c", s[i]) : sprintf(o, "\\x%02x", s[i]);
        *o++ = 0;
    }
    return 0;
}

int bpe_finish(Bpe *b) {
    for (int i = 0; i < 256; i++)
        if (b->byte_id[i] < 0) return -1;
    uint64_t h = 1469598103934665603ULL;
    size_t len;
    for (int id = 0; id < bpe_n_tokens(b); id++) {
        const unsigned char *s = bpe_token_bytes(b, id, &len);
        uint64_t l = len;
        h = fnv(fnv(h, &l, sizeof l), s, len);
    }
    for (int r = 0; r < b->n_merges; r++) {
        int m[3] = {b->left[r], b->right[r], b->result[r]};
        h = fnv(h, m, sizeof m);
    }
    b->fingerprint = h;
    return make_names(b);
}

// ---- Encoding ----

int bpe_encode_word(const Bpe *b, const unsigned char *s, size_t len, int *out) {
    int n = (int)len;
    for (int i = 0; i < n; i++) out[i] = b->byte_id[s[i]];
    while (n > 1) {
        int best = INT_MAX;
        for (int i = 0; i + 1 < n; i++) {
            int r = pair_map_get(&b->rank, out[i], out[i + 1]);
            if (r >= 0 && r < best) best = r;
        }
        if (best == INT_MAX) break;
        int left = b->left[best], right = b->right[best], k = 0;
        for (int i = 0; i < n; k++) {
            if (i + 1 < n && out[i] == left && out[i + 1] == right) {
                out[k] = b->result[best];
                i += 2;
            } else {
                out[k] = out[i++];
            }
        }
        n = k;
    }
    return n;
}

// Grows *p (of *cap elements of size `size`) to hold at least `need`.
static int reserve(void **p, size_t *cap, size_t need, size_t size) {
    if (need <= *cap) return 0;
    size_t c = *cap ? *cap : 1024;
    while (c < need) c *= 2;
    void *q = realloc(*p, c * size);
    if (!q) return -1;
    *p = q;
    *cap = c;
    return 0;
}

// The tokens of pre-token s[0..len): *ids points at them (in the cache or the scratch buffer).
static int word_tokens(Bpe *b, const unsigned char *s, size_t len, const int **ids) {
    if (len > CACHE_MAX_LEN) {
        if (reserve((void **)&b->scratch, &b->cap_scratch, len, sizeof(int)) != 0) return -1;
        *ids = b->scratch;
        return bpe_encode_word(b, s, len, b->scratch);
    }
    int w = vocab_find(b->cache, (const char *)s, len);
    if (w < 0) {
        if (vocab_size(b->cache) >= CACHE_WORDS) {
            vocab_free(b->cache);
            if (!(b->cache = vocab_new())) return -1;
            b->n_cache_ids = 0;
        }
        if (reserve((void **)&b->cache_ids, &b->cap_cache_ids, b->n_cache_ids + len, sizeof(int)) != 0) return -1;
        int n = bpe_encode_word(b, s, len, b->cache_ids + b->n_cache_ids);
        w = vocab_add(b->cache, (const char *)s, len);
        if (w < 0 || reserve((void **)&b->cache_at, &b->cap_cache_at, (size_t)w + 2, sizeof(size_t)) != 0) return -1;
        b->cache_at[w] = b->n_cache_ids;
        b->n_cache_ids += (size_t)n;
        b->cache_at[w + 1] = b->n_cache_ids;
    }
    *ids = b->cache_ids + b->cache_at[w];
    return (int)(b->cache_at[w + 1] - b->cache_at[w]);
}

long bpe_encode(Bpe *b, const void *text, size_t len, int *out) {
    const unsigned char *s = text;
    long n = 0;
    for (size_t i = 0; i < len;) {
        size_t end = bpe_pretoken_end(s, len, i);
        const int *ids;
        int k = word_tokens(b, s + i, end - i, &ids);
        if (k < 0) return -1;
        if (out) memcpy(out + n, ids, sizeof(int) * (size_t)k);
        n += k;
        i = end;
    }
    return n;
}

// ---- The trained tokenizer's file ----

#define BPE_FILE_MAGIC "copetrain-bpe 1"

int bpe_save(const Bpe *b, const char *path, size_t text_len, uint32_t text_crc, char *err, int errlen) {
    size_t cap = 128 + 24 * (size_t)b->n_merges, n;
    char *buf = malloc(cap);
    if (!buf) return errf(err, errlen, "%s: out of memory", path);
    n = (size_t)snprintf(buf, cap, "%s\ntext_bytes %zu\ntext_crc32 %08x\nmerges %d\n", BPE_FILE_MAGIC, text_len,
                         (unsigned)text_crc, b->n_merges);
    for (int r = 0; r < b->n_merges; r++) n += (size_t)snprintf(buf + n, cap - n, "%d %d\n", b->left[r], b->right[r]);
    int rc = atomic_write_file(path, buf, n, err, errlen);
    free(buf);
    return rc;
}

Bpe *bpe_new_bytes(void) {
    Bpe *b = bpe_new();
    for (int i = 0; b && i < 256; i++) {
        unsigned char c = (unsigned char)i;
        if (bpe_add_token(b, &c, 1) != i) {
            bpe_free(b);
            return NULL;
        }
    }
    return b;
}

// Reads the header and the merges of a trained tokenizer's file (text); -1 with err saying what.
static int parse_merges(Bpe *b, const char *text, const char *path, size_t text_len, uint32_t text_crc, int vocab_size,
                        char *err, int errlen) {
    size_t len;
    unsigned crc;
    int merges, used;
    if (sscanf(text, BPE_FILE_MAGIC "\ntext_bytes %zu\ntext_crc32 %8x\nmerges %d\n%n", &len, &crc, &merges, &used) != 3)
        return errf(err, errlen, "%s: not a tokenizer file (expected a \"%s\" header)", path, BPE_FILE_MAGIC);
    if (len != text_len || crc != text_crc)
        return errf(err, errlen, "%s: trained on other text (%zu bytes, CRC-32 %08x; this text: %zu bytes, %08x)", path,
                    len, crc, text_len, (unsigned)text_crc);
    if (merges < 0 || merges > vocab_size - 256)
        return errf(err, errlen, "%s: %d merges, more than task.vocab_size %d allows", path, merges, vocab_size);
    const char *p = text + used;
    for (int r = 0; r < merges; r++) {
        int left, right, k = 0;
        if (sscanf(p, "%d %d\n%n", &left, &right, &k) != 2 || k == 0 || bpe_add_merge(b, left, right) < 0)
            return errf(err, errlen, "%s: merge %d (line %d) is not a new pair of known ids", path, r + 1, r + 5);
        p += k;
    }
    if (*p) return errf(err, errlen, "%s: text after the %d merges", path, merges);
    return 0;
}

Bpe *bpe_load(const char *path, size_t text_len, uint32_t text_crc, int vocab_size, char *err, int errlen) {
    size_t n;
    char *text = task_read_file(path, &n, err, errlen);
    if (!text) return NULL;
    Bpe *b = bpe_new_bytes();
    int rc = !b ? errf(err, errlen, "%s: out of memory", path)
             : memchr(text, 0, n) ? errf(err, errlen, "%s: a NUL byte; not a tokenizer file", path)
                                  : parse_merges(b, text, path, text_len, text_crc, vocab_size, err, errlen);
    free(text);
    if (rc == 0 && bpe_finish(b) != 0) rc = errf(err, errlen, "%s: out of memory", path);
    if (rc != 0) {
        bpe_free(b);
        return NULL;
    }
    return b;
}
