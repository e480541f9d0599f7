// Tokenizers (docs/tokenizers.md): GPT-2's BPE against reference ids from the JavaScript encoder
// (scripts/gpt2_reference.js), the pre-tokenisation rule and Unicode classes by hand, decode(encode(x))
// == x, BPE training against a hand-worked example and against a plain trainer that recounts every
// pair at every merge, the trained tokenizer's file, and the token cache's detection of stale and
// corrupt files through the lm task.
//
// Reads tests/data/ from the repository root (where tests/run_tests.sh runs it).
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>

#include "check.h"
#include "tasks/bpe.h"
#include "tasks/files.h"
#include "tasks/task.h"
#include "tasks/token_cache.h"
#include "tasks/unicode_classes.h"

static char tmpdir[128], gpt2_dir[160];

static void path_in(char *out, size_t n, const char *sub) { snprintf(out, n, "%s/%s", tmpdir, sub); }

static void write_file(const char *path, const void *data, size_t n) {
    FILE *f = fopen(path, "wb");
    CHECK(f && fwrite(data, 1, n, f) == n && fclose(f) == 0, "cannot write %s", path);
}

static char *read_file(const char *path, size_t *n) {
    char err[512];
    char *s = task_read_file(path, n, err, sizeof err);
    CHECK(s != NULL, "%s", err);
    return s;
}

// The committed gzip copy src of one of GPT-2's files, unpacked to dst.
static int gunzip(const char *src, const char *dst) {
    gzFile in = gzopen(src, "rb");
    FILE *out = fopen(dst, "wb");
    char buf[1 << 16];
    int n, ok = in && out;
    while (ok && (n = gzread(in, buf, sizeof buf)) > 0) ok = fwrite(buf, 1, (size_t)n, out) == (size_t)n;
    if (in) gzclose(in);
    if (out && fclose(out) != 0) ok = 0;
    return ok ? 0 : -1;
}

static Bpe *load_gpt2(void) {
    char err[512];
    Bpe *b = gpt2_bpe_load(gpt2_dir, err, sizeof err);
    CHECK(b != NULL, "gpt2_bpe_load: %s", err);
    return b;
}

// The text of tokens ids[0..n) into a malloc'd buffer (*len bytes).
static char *decode(const Bpe *b, const int *ids, long n, size_t *len) {
    size_t total = 0, k;
    for (long i = 0; i < n; i++) total += (bpe_token_bytes(b, ids[i], &k), k);
    char *s = malloc(total + 1);
    *len = 0;
    for (long i = 0; i < n; i++) {
        const unsigned char *t = bpe_token_bytes(b, ids[i], &k);
        memcpy(s + *len, t, k);
        *len += k;
    }
    return s;
}

static int *encode(Bpe *b, const char *text, size_t len, long *n) {
    *n = bpe_encode(b, text, len, NULL);
    int *ids = malloc(sizeof(int) * (size_t)(*n + 1));
    CHECK(ids && bpe_encode(b, text, len, ids) == *n, "bpe_encode: out of memory or unstable count");
    return ids;
}

// Checks decode(encode(text)) == text.
static void check_round_trip(Bpe *b, const char *what, const char *text, size_t len) {
    long n;
    int *ids = encode(b, text, len, &n);
    size_t back_len;
    char *back = decode(b, ids, n, &back_len);
    size_t at = 0;
    while (at < len && at < back_len && back[at] == text[at]) at++;
    CHECK(back_len == len && at == len, "%s: decode(encode(x)) differs from x at byte %zu of %zu (got %zu bytes)",
          what, at, len, back_len);
    free(ids);
    free(back);
}

static void test_unicode_classes(void) {
    struct { uint32_t cp; UnicodeClass cls; } cases[] = {
        {'a', UC_LETTER}, {'Z', UC_LETTER}, {'7', UC_NUMBER}, {' ', UC_SPACE}, {'\t', UC_SPACE}, {'_', UC_OTHER},
        {0xE9, UC_LETTER} /* é */, {0x416, UC_LETTER} /* Ж */, {0x65E5, UC_LETTER} /* 日 */,
        {0xAC00, UC_LETTER} /* 가 */, {0xBD, UC_NUMBER} /* ½ */, {0x663, UC_NUMBER} /* Arabic-Indic 3 */,
        {0x216B, UC_NUMBER} /* Ⅻ */, {0xA0, UC_SPACE}, {0x3000, UC_SPACE}, {0x2009, UC_SPACE}, {0x85, UC_SPACE},
        {0xFEFF, UC_OTHER} /* not White_Space (JavaScript's \s has it) */, {0x301, UC_OTHER} /* combining acute */,
        {0x1F44D, UC_OTHER} /* 👍 */, {0x2014, UC_OTHER} /* — */, {0x1D400, UC_LETTER} /* 𝐀 */,
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
        CHECK(unicode_class(cases[i].cp) == cases[i].cls, "unicode_class(U+%04X) = %d, expected %d", cases[i].cp,
              unicode_class(cases[i].cp), cases[i].cls);
    struct { const char *s; size_t n, len; uint32_t cp; } utf8[] = {
        {"\xC3\xA9", 2, 2, 0xE9}, {"\xF0\x9F\x91\x8D", 4, 4, 0x1F44D}, {"\x80", 1, 1, UNICODE_INVALID},
        {"\xC0\x80", 2, 1, UNICODE_INVALID} /* overlong */, {"\xED\xA0\x80", 3, 1, UNICODE_INVALID} /* surrogate */,
        {"\xE6\x97", 2, 1, UNICODE_INVALID} /* cut */, {"\xF4\x90\x80\x80", 4, 1, UNICODE_INVALID} /* > U+10FFFF */,
    };
    for (size_t i = 0; i < sizeof utf8 / sizeof utf8[0]; i++) {
        uint32_t cp;
        size_t len = utf8_decode((const unsigned char *)utf8[i].s, utf8[i].n, &cp);
        CHECK(len == utf8[i].len && cp == utf8[i].cp, "utf8_decode case %zu: length %zu, U+%04X", i, len, cp);
    }
}

// The pre-tokens of text, joined with '|'.
static void pretokens(const char *text, char *out, size_t n) {
    size_t len = strlen(text), k = 0;
    for (size_t i = 0; i < len;) {
        size_t end = bpe_pretoken_end((const unsigned char *)text, len, i);
        if (i) k += (size_t)snprintf(out + k, n - k, "|");
        k += (size_t)snprintf(out + k, n - k, "%.*s", (int)(end - i), text + i);
        i = end;
    }
}

// Each case worked by hand from the regular expression (docs/tokenizers.md).
static void test_pretokens(void) {
    const char *cases[][2] = {
        {"I'm here", "I|'m| here"},
        {"they're we'll it'S", "they|'re| we|'ll| it|'|S"},     // contractions are lowercase only
        {"'sam", "'s|am"},
        {"a  b", "a| | b"},                                      // the last space joins the word
        {"a \n\nb", "a| \n|\n|b"},                              // \s+(?!\S), then \s+ for the last
        {"x   ", "x|   "},                                      // white space at the end: one run
        {"abc123 45", "abc|123| 45"},
        {"f(x): y!=z", "f|(|x|):| y|!=|z"},
        {"caf\xC3\xA9 na\xC3\xAFve", "caf\xC3\xA9| na\xC3\xAFve"},
        {"\xE6\x97\xA5\xE6\x9C\xAC\xE3\x80\x80x", "\xE6\x97\xA5\xE6\x9C\xAC|\xE3\x80\x80|x"},  // 日本, U+3000, x
        {"a\xC2\xA0\x62", "a|\xC2\xA0|b"},                       // no-break space is \s but not ' '
        {"\xF0\x9F\x91\x8D\xF0\x9F\x91\x8D ok", "\xF0\x9F\x91\x8D\xF0\x9F\x91\x8D| ok"},
        {"\xFF\xFEz", "\xFF\xFE|z"},                              // invalid bytes are "other"
    };
    char got[256];
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        pretokens(cases[i][0], got, sizeof got);
        CHECK(!strcmp(got, cases[i][1]), "pre-tokens of \"%s\": \"%s\", expected \"%s\"", cases[i][0], got, cases[i][1]);
    }
}

static void test_gpt2_reference_ids(void) {
    Bpe *b = load_gpt2();
    if (!b) return;
    CHECK(bpe_n_tokens(b) == 50257 && bpe_n_merges(b) == 50000, "gpt2: %d tokens, %d merges; expected 50257, 50000",
          bpe_n_tokens(b), bpe_n_merges(b));
    size_t len, idlen;
    char *text = read_file("tests/data/gpt2_reference.txt", &len), *ref = read_file("tests/data/gpt2_reference.ids", &idlen);
    if (!text || !ref) return;
    long n_ref = 0;
    int want[4096];
    for (char *p = ref, *end; *p && n_ref < 4096; p = end) {
        want[n_ref++] = (int)strtol(p, &end, 10);
        while (*end == '\n') end++;
    }
    long n;
    int *got = encode(b, text, len, &n);
    long at = 0;
    while (at < n && at < n_ref && got[at] == want[at]) at++;
    CHECK(n == n_ref && at == n, "gpt2 ids differ from the reference at token %ld (ours %d, reference %d); %ld vs %ld "
          "tokens", at, at < n ? got[at] : -1, at < n_ref ? want[at] : -1, n, n_ref);
    printf("     %ld tokens of %zu bytes equal the reference encoder's\n", n, len);
    CHECK(!strcmp(bpe_token_name(b, 50256), "<|endoftext|>") && !strcmp(bpe_token_name(b, 220), "\\x20") &&
              !strcmp(bpe_token_name(b, 464), "The"), "gpt2 token names: \"%s\" \"%s\" \"%s\"", bpe_token_name(b, 50256),
          bpe_token_name(b, 220), bpe_token_name(b, 464));
    check_round_trip(b, "reference text", text, len);
    char bytes[4096];  // every byte value, NUL and invalid UTF-8 included, in a pseudo-random order
    for (size_t i = 0; i < sizeof bytes; i++) bytes[i] = (char)((i * 2654435761u) >> 13);
    check_round_trip(b, "random bytes", bytes, sizeof bytes);
    free(got);
    free(text);
    free(ref);
    bpe_free(b);
}

static void test_gpt2_bad_files(void) {
    char dir[200], path[260], err[512];
    path_in(dir, sizeof dir, "badgpt2");
    mkdir(dir, 0700);
    CHECK(gpt2_bpe_load(dir, err, sizeof err) == NULL && strstr(err, "badgpt2/encoder.json"),
          "missing encoder.json: \"%s\"", err);
    snprintf(path, sizeof path, "%s/encoder.json", dir);
    write_file(path, "{\"a\": 0, \"b\": 0}", 16);
    CHECK(gpt2_bpe_load(dir, err, sizeof err) == NULL && strstr(err, "expected each of 0..1 once"),
          "repeated id: \"%s\"", err);
}

// A tokenizer's merges as "left right" pairs, for comparisons.
static void merges_of(const Bpe *b, int *out) {
    for (int r = 0; r < bpe_n_merges(b); r++) bpe_merge(b, r, &out[2 * r], &out[2 * r + 1]);
}

// Pre-tokens "ba", " ab", " ba", " ab": (b,a), (' ',a) and (a,b) occur twice each, a tie broken by the
// smaller left id: (' ',a) -> 256 " a". Then (b,a) and (256,b) twice each: (b,a) -> 257 "ba". Then
// (256,b) twice -> 258 " ab". Then only (' ', 257) once: training stops at 259 tokens.
static void test_bpe_train_by_hand(void) {
    const char *text = "ba ab ba ab";
    Bpe *b = bpe_train(text, strlen(text), 1000);
    CHECK(b != NULL, "bpe_train failed");
    if (!b) return;
    int got[8] = {0}, want[6] = {' ', 'a', 'b', 'a', 256, 'b'};
    CHECK(bpe_n_merges(b) == 3 && bpe_n_tokens(b) == 259, "%d merges, %d tokens; expected 3, 259", bpe_n_merges(b),
          bpe_n_tokens(b));
    merges_of(b, got);
    CHECK(!memcmp(got, want, sizeof want), "merges (%d %d) (%d %d) (%d %d), expected (32 97) (98 97) (256 98)", got[0],
          got[1], got[2], got[3], got[4], got[5]);
    // " ab" -> (32 97) first -> [256 98] -> [258]; " ba" -> [32 257]; " bab" -> [32 257 98]
    long n;
    int *ids = encode(b, " ab ba bab", 10, &n), want_ids[6] = {258, 32, 257, 32, 257, 98};
    CHECK(n == 6 && !memcmp(ids, want_ids, sizeof want_ids), "encoding \" ab ba bab\": %ld tokens (%d %d %d ...)", n,
          ids[0], ids[1], ids[2]);
    free(ids);
    bpe_free(b);
    // vocab_size caps the merges
    b = bpe_train(text, strlen(text), 257);
    CHECK(b && bpe_n_tokens(b) == 257, "vocab_size 257: %d tokens", b ? bpe_n_tokens(b) : -1);
    bpe_free(b);
}

// A text of words from a small alphabet, with spaces, line ends and some punctuation and UTF-8.
static char *make_text(size_t n, uint64_t seed) {
    static const char *parts[] = {"the", "th", "e", " ", " ", " ", "\n", "an", "d", "s", "ing", ",", ".", "\xC3\xA9", "42", "'s"};
    char *s = malloc(n + 16);
    size_t k = 0;
    while (k < n) {
        seed = seed * 6364136223846793005ULL + 1442695040888963407ULL;
        const char *p = parts[(seed >> 33) % 16];
        size_t l = strlen(p);
        memcpy(s + k, p, l);
        k += l;
    }
    return s;
}

// The plain trainer: recounts every adjacent pair of every pre-token at every merge (slow, obvious).
static Bpe *plain_train(const char *text, size_t len, int vocab_size) {
    Bpe *b = bpe_new_bytes();
    int *sym = malloc(sizeof(int) * len), n_words = 0, *start = malloc(sizeof(int) * (len + 1));
    int *wlen = malloc(sizeof(int) * (len + 1));
    for (size_t i = 0; i < len; n_words++) {
        size_t end = bpe_pretoken_end((const unsigned char *)text, len, i);
        start[n_words] = (int)i;
        wlen[n_words] = (int)(end - i);
        for (size_t j = i; j < end; j++) sym[j] = (unsigned char)text[j];
        i = end;
    }
    long *count = malloc(sizeof(long) * (size_t)vocab_size * (size_t)vocab_size);
    while (bpe_n_tokens(b) < vocab_size) {
        int V = bpe_n_tokens(b), bl = -1, br = -1;
        memset(count, 0, sizeof(long) * (size_t)V * (size_t)V);
        for (int w = 0; w < n_words; w++)
            for (int i = start[w]; i + 1 < start[w] + wlen[w]; i++) count[(size_t)sym[i] * V + sym[i + 1]]++;
        for (int l = 0; l < V; l++)  // the largest count, first in (left, right) order
            for (int r = 0; r < V; r++)
                if (count[(size_t)l * V + r] >= 2 && !bpe_has_merge(b, l, r) &&
                    (bl < 0 || count[(size_t)l * V + r] > count[(size_t)bl * V + br])) {
                    bl = l;
                    br = r;
                }
        if (bl < 0) break;
        int z = bpe_add_merge(b, bl, br);
        for (int w = 0; w < n_words; w++) {
            int *s = sym + start[w], k = 0;
            for (int i = 0; i < wlen[w]; k++) s[k] = i + 1 < wlen[w] && s[i] == bl && s[i + 1] == br ? (i += 2, z) : s[i++];
            wlen[w] = k;
        }
    }
    free(sym);
    free(start);
    free(wlen);
    free(count);
    bpe_finish(b);
    return b;
}

static void test_bpe_train_matches_plain(void) {
    size_t len = 20000;
    char *text = make_text(len, 7);
    Bpe *fast = bpe_train(text, len, 400), *plain = plain_train(text, len, 400);
    CHECK(fast && plain, "training failed");
    if (fast && plain) {
        CHECK(bpe_n_merges(fast) == bpe_n_merges(plain), "%d merges, the plain trainer %d", bpe_n_merges(fast),
              bpe_n_merges(plain));
        int *a = calloc(2 * 400, sizeof(int)), *p = calloc(2 * 400, sizeof(int));
        merges_of(fast, a);
        merges_of(plain, p);
        int at = 0;
        while (at < bpe_n_merges(fast) && a[2 * at] == p[2 * at] && a[2 * at + 1] == p[2 * at + 1]) at++;
        CHECK(at == bpe_n_merges(fast), "merge %d: (%d %d), the plain trainer (%d %d)", at, a[2 * at], a[2 * at + 1],
              p[2 * at], p[2 * at + 1]);
        CHECK(bpe_fingerprint(fast) == bpe_fingerprint(plain), "fingerprints differ");
        printf("     %d merges equal the plain trainer's\n", at);
        check_round_trip(fast, "trained BPE, its training text", text, len);
        free(a);
        free(p);
    }
    Bpe *again = bpe_train(text, len, 400);
    CHECK(again && fast && bpe_fingerprint(again) == bpe_fingerprint(fast), "a second training differs");
    bpe_free(again);
    bpe_free(plain);
    // its file
    char path[200], err[512];
    path_in(path, sizeof path, "t.merges");
    uint32_t crc = text_crc32(text, len);
    CHECK(fast && bpe_save(fast, path, len, crc, err, sizeof err) == 0, "bpe_save: %s", err);
    Bpe *loaded = bpe_load(path, len, crc, 400, err, sizeof err);
    CHECK(loaded && fast && bpe_fingerprint(loaded) == bpe_fingerprint(fast), "bpe_load: %s", loaded ? "other tokenizer" : err);
    bpe_free(loaded);
    CHECK(!bpe_load(path, len, crc ^ 1, 400, err, sizeof err) && strstr(err, "trained on other text"), "other text: %s", err);
    CHECK(!bpe_load(path, len, crc, 300, err, sizeof err) && strstr(err, "more than task.vocab_size 300"), "%s", err);
    size_t n;
    char *file = read_file(path, &n);
    if (file) {
        char *line = strstr(file, "\n32 ");  // some merge line: make its left id unknown
        if (line) memcpy(line + 1, "-1", 2);
        write_file(path, file, n);
        CHECK(!bpe_load(path, len, crc, 400, err, sizeof err) && strstr(err, "is not a new pair of known ids"), "%s", err);
        free(file);
    }
    bpe_free(fast);
    free(text);
}

static void test_token_cache_file(void) {
    char path[200], why[256];
    path_in(path, sizeof path, "c.tokens");
    TokenCacheKey key = {"bpe300", 0x1234, 1000, 0xabcdef, 300};
    int ids[5] = {1, 299, 0, 7, 42}, *got = NULL;
    long n = 0;
    CHECK(token_cache_load(path, &key, &got, &n, why, sizeof why) == 1, "absent file not reported as absent");
    char err[512];
    CHECK(token_cache_save(path, &key, ids, 5, err, sizeof err) == 0, "%s", err);
    CHECK(token_cache_load(path, &key, &got, &n, why, sizeof why) == 0 && n == 5 && !memcmp(got, ids, sizeof ids),
          "round trip: %s", why);
    free(got);
    TokenCacheKey other = key;
    other.text_crc ^= 1;
    CHECK(token_cache_load(path, &other, &got, &n, why, sizeof why) == 2 && strstr(why, "stale (the text changed"), "%s", why);
    other = key;
    other.fingerprint++;
    CHECK(token_cache_load(path, &other, &got, &n, why, sizeof why) == 2 && strstr(why, "stale (another tokenizer"), "%s", why);
    other = key;
    other.n_tokens = 100;
    CHECK(token_cache_load(path, &other, &got, &n, why, sizeof why) == 2 && strstr(why, "an id beyond"), "%s", why);
    size_t len;
    char *file = read_file(path, &len);
    if (!file) return;
    file[64 + 5] ^= 1;  // a flipped bit in the ids
    write_file(path, file, len);
    CHECK(token_cache_load(path, &key, &got, &n, why, sizeof why) == 2 && strstr(why, "CRC"), "flipped bit: %s", why);
    write_file(path, file, len - 3);
    CHECK(token_cache_load(path, &key, &got, &n, why, sizeof why) == 2 && strstr(why, "size does not match"), "cut: %s", why);
    free(file);
}

// The lm task with a BPE: the cache is written, read back, and a corrupt or stale file is rebuilt.
static Task *lm_task(const char *tokenizer, const char *text_file, const char *cache, int vocab_size) {
    TaskConfig c;
    task_config_defaults(&c);
    snprintf(c.name, sizeof c.name, "lm");
    snprintf(c.tokenizer, sizeof c.tokenizer, "%s", tokenizer);
    snprintf(c.text_file, sizeof c.text_file, "%s", text_file);
    snprintf(c.cache_dir, sizeof c.cache_dir, "%s", cache);
    if (!strcmp(tokenizer, "gpt2")) snprintf(c.bpe_dir, sizeof c.bpe_dir, "%s", gpt2_dir);
    if (!strcmp(tokenizer, "bpe")) c.vocab_size = vocab_size;
    char err[512] = "";
    Task *t = task_create(&c, 16, 1, err, sizeof err);
    CHECK(t != NULL, "task_create(lm, %s): %s", tokenizer, err);
    return t;
}

// The ids of a task's valid split, for comparing two tasks.
static long valid_ids(Task *t, int *out, long max) {
    Batch b;
    batch_alloc(&b, 1, 16);
    long n = 0;
    for (long s = 0; s < task_split_size(t, "valid") && n < max; s++) {
        task_eval_batch(t, "valid", s, &b, 1);
        for (int i = 0; i < b.T && n < max; i++) out[n++] = b.tokens[i];
    }
    batch_free(&b);
    return n;
}

static void test_lm_cache(void) {
    char text_path[200], cache[200], tokens[600], merges[600];
    path_in(text_path, sizeof text_path, "lm.txt");
    path_in(cache, sizeof cache, "cache");
    size_t len = 30000;
    char *text = make_text(len, 3);
    write_file(text_path, text, len);
    free(text);
    Task *first = lm_task("bpe", text_path, cache, 300);
    if (!first) return;
    // the cache names the file with '/' as '_'
    char name[200];
    snprintf(name, sizeof name, "%s", text_path);
    for (char *p = name; *p; p++) if (*p == '/') *p = '_';
    snprintf(tokens, sizeof tokens, "%s/%s.valid.bpe300.tokens", cache, name);
    snprintf(merges, sizeof merges, "%s/%s.train.bpe300.merges", cache, name);
    CHECK(task_path_exists(tokens) && task_path_exists(merges), "no cache files %s, %s", tokens, merges);
    CHECK(task_vocab_size(first) == 300, "vocab %d", task_vocab_size(first));
    int a[4096], b[4096];
    long na = valid_ids(first, a, 4096);
    struct stat st0, st1;
    stat(tokens, &st0);
    Task *second = lm_task("bpe", text_path, cache, 300);  // from the cache
    long nb = second ? valid_ids(second, b, 4096) : 0;
    CHECK(na == nb && na > 0 && !memcmp(a, b, sizeof(int) * (size_t)na), "cached ids differ");
    // the task state carries the tokenizer: a checkpoint of another tokenizer does not load
    size_t sz = task_state_size(first);
    void *state = malloc(sz);
    task_state_save(first, state);
    CHECK(second && task_state_load(second, state, sz) == 0, "state of the same tokenizer refused");
    Task *other = lm_task("bpe", text_path, cache, 280);
    CHECK(other && task_state_size(other) == sz && task_state_load(other, state, sz) != 0,
          "state of another tokenizer accepted");
    task_free(other);
    free(state);
    task_free(second);
    // corrupt the ids: rebuilt, same ids
    size_t n;
    char *file = read_file(tokens, &n);
    if (file) {
        file[n - 1] ^= 0x40;
        write_file(tokens, file, n);
        free(file);
    }
    second = lm_task("bpe", text_path, cache, 300);
    nb = second ? valid_ids(second, b, 4096) : 0;
    CHECK(na == nb && !memcmp(a, b, sizeof(int) * (size_t)na), "ids after rebuilding a corrupt cache differ");
    stat(tokens, &st1);
    CHECK(st1.st_size == st0.st_size, "rebuilt cache has another size");
    task_free(second);
    // the gpt2 tokenizer on the same text, with its own cache files
    Task *g = lm_task("gpt2", text_path, cache, 0);
    CHECK(g && task_vocab_size(g) == 50257, "gpt2 vocabulary %d", g ? task_vocab_size(g) : -1);
    size_t tl;
    const char *tt = g ? task_token_text(g, 464, &tl) : NULL;
    CHECK(tt && tl == 3 && !memcmp(tt, "The", 3), "task_token_text(464)");
    int ids[8];
    CHECK(g && task_encode(g, "Hello world", 11, ids) == 2 && ids[0] == 15496 && ids[1] == 995, "task_encode(gpt2)");
    task_free(g);
    task_free(first);
}

static void test_lm_bpe_refusals(void) {
    TaskConfig c;
    task_config_defaults(&c);
    snprintf(c.name, sizeof c.name, "lm");
    path_in(c.text_file, sizeof c.text_file, "lm.txt");
    char err[512] = "";
    c.vocab_size = 1000;
    CHECK(!task_create(&c, 16, 1, err, sizeof err) && strstr(err, "task.vocab_size: 1000 applies to the bpe tokenizer only"),
          "%s", err);
    task_config_defaults(&c);
    snprintf(c.name, sizeof c.name, "lm");
    path_in(c.text_file, sizeof c.text_file, "lm.txt");
    snprintf(c.tokenizer, sizeof c.tokenizer, "gpt2");
    path_in(c.bpe_dir, sizeof c.bpe_dir, "nowhere");
    CHECK(!task_create(&c, 16, 1, err, sizeof err) && strstr(err, "nowhere/encoder.json"), "%s", err);
    snprintf(c.tokenizer, sizeof c.tokenizer, "byte");
    CHECK(!task_create(&c, 16, 1, err, sizeof err) && strstr(err, "task.bpe_dir") && strstr(err, "gpt2 tokenizer only"),
          "%s", err);
}

int main(void) {
    snprintf(tmpdir, sizeof tmpdir, "/tmp/test_tokenizer_XXXXXX");
    if (!mkdtemp(tmpdir)) {
        perror("mkdtemp");
        return 1;
    }
    // GPT-2's files: the committed gzip copies (tests/data/gpt2/README.md), unpacked
    path_in(gpt2_dir, sizeof gpt2_dir, "gpt2");
    mkdir(gpt2_dir, 0700);
    char dst[300];
    snprintf(dst, sizeof dst, "%s/encoder.json", gpt2_dir);
    int ok = gunzip("tests/data/gpt2/encoder.json.gz", dst) == 0;
    snprintf(dst, sizeof dst, "%s/vocab.bpe", gpt2_dir);
    ok = ok && gunzip("tests/data/gpt2/vocab.bpe.gz", dst) == 0;
    if (!ok) fprintf(stderr, "cannot unpack tests/data/gpt2/*.gz (run from the repository root)\n");
    RUN(test_unicode_classes);
    RUN(test_pretokens);
    RUN(test_gpt2_reference_ids);
    RUN(test_gpt2_bad_files);
    RUN(test_bpe_train_by_hand);
    RUN(test_bpe_train_matches_plain);
    RUN(test_token_cache_file);
    RUN(test_lm_cache);
    RUN(test_lm_bpe_refusals);
    char cmd[300];
    snprintf(cmd, sizeof cmd, "rm -rf %s", tmpdir);
    if (system(cmd) != 0) fprintf(stderr, "could not remove %s\n", tmpdir);
    return check_summary("tokenizer") || !ok;
}
