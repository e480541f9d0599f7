// The token cache's file: a 64-byte header, then the ids as little-endian u32.
//   0  "CPTOKEN1"     8  tokenizer name (16 bytes, NUL-padded)   24 fingerprint u64
//   32 text bytes u64 40 text CRC-32 u32   44 tokens u64   52 CRC-32 of the ids' bytes u32   56 zero
#include "tasks/token_cache.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <zlib.h>

#include "atomic_file.h"
#include "bytes.h"
#include "error.h"

enum { HEADER = 64, CHUNK = 1 << 16 };
static const char MAGIC[8] = "CPTOKEN1";

uint32_t text_crc32(const void *p, size_t n) {
    uLong crc = crc32(0L, Z_NULL, 0);
    const Bytef *b = p;
    while (n > 0) {
        uInt k = n > (1u << 30) ? 1u << 30 : (uInt)n;
        crc = crc32(crc, b, k);
        b += k;
        n -= k;
    }
    return (uint32_t)crc;
}

static void make_header(uint8_t h[HEADER], const TokenCacheKey *key, long n, uint32_t ids_crc) {
    memset(h, 0, HEADER);
    memcpy(h, MAGIC, 8);
    memcpy(h + 8, key->tokenizer, strnlen(key->tokenizer, 15));
    put_u64(h + 24, key->fingerprint);
    put_u64(h + 32, key->text_len);
    put_u32(h + 40, key->text_crc);
    put_u64(h + 44, (uint64_t)n);
    put_u32(h + 52, ids_crc);
}

// What in the header does not match key (stale) or the file's size (corrupt); NULL when all does.
static const char *check_header(const uint8_t h[HEADER], const TokenCacheKey *key, long long size) {
    char name[16] = {0};
    memcpy(name, key->tokenizer, strnlen(key->tokenizer, 15));
    if (memcmp(h, MAGIC, 8) != 0) return "corrupt (not a token cache file)";
    if (memcmp(h + 8, name, 16) != 0 || get_u64(h + 24) != key->fingerprint) return "stale (another tokenizer made it)";
    if (get_u64(h + 32) != key->text_len || get_u32(h + 40) != key->text_crc)
        return "stale (the text changed since it was made)";
    uint64_t n = get_u64(h + 44);
    if (n > (uint64_t)(size - HEADER) / 4 || (long long)(HEADER + 4 * n) != size) return "corrupt (its size does not match its header)";
    return NULL;
}

// The ids' bytes (4n of them, at buf) into ids, in place; -1 when one is out of range.
static int decode_ids(uint8_t *buf, long n, int n_tokens) {
    int *ids = (int *)(void *)buf;
    for (long i = 0; i < n; i++) {
        uint32_t v = get_u32(buf + 4 * i);
        if (v >= (uint32_t)n_tokens) return -1;
        ids[i] = (int)v;
    }
    return 0;
}

int token_cache_load(const char *path, const TokenCacheKey *key, int **ids, long *n, char *why, int whylen) {
    struct stat st;
    if (stat(path, &st) != 0) {
        if (errno == ENOENT) return 1;
        errf(why, whylen, "unreadable (%s)", strerror(errno));
        return 2;
    }
    if (!S_ISREG(st.st_mode)) {
        errf(why, whylen, "not a regular file");
        return 2;
    }
    FILE *f = fopen(path, "rb");
    uint8_t h[HEADER];
    const char *bad = !f ? "unreadable" : fread(h, 1, HEADER, f) != HEADER ? "corrupt (shorter than its header)"
                                                                            : check_header(h, key, (long long)st.st_size);
    uint8_t *buf = NULL;
    if (!bad) {
        *n = (long)get_u64(h + 44);
        buf = malloc(4 * (size_t)*n + 4);
        if (!buf)
            bad = "too large for memory";
        else if (fread(buf, 1, 4 * (size_t)*n, f) != 4 * (size_t)*n)
            bad = "corrupt (cut short)";
        else if (text_crc32(buf, 4 * (size_t)*n) != get_u32(h + 52))
            bad = "corrupt (the CRC of its ids does not match)";
        else if (decode_ids(buf, *n, key->n_tokens) != 0)
            bad = "corrupt (an id beyond the tokenizer's)";
    }
    if (f) fclose(f);
    if (bad) {
        free(buf);
        errf(why, whylen, "%s", bad);
        return 2;
    }
    *ids = (int *)(void *)buf;
    return 0;
}

int token_cache_save(const char *path, const TokenCacheKey *key, const int *ids, long n, char *err, int errlen) {
    uint8_t *chunk = malloc(4 * CHUNK), h[HEADER];
    if (!chunk) return errf(err, errlen, "%s: out of memory", path);
    uLong crc = crc32(0L, Z_NULL, 0);
    for (long i = 0; i < n; i += CHUNK) {  // the CRC first: the header comes before the ids
        long k = n - i < CHUNK ? n - i : CHUNK;
        for (long j = 0; j < k; j++) put_u32(chunk + 4 * j, (uint32_t)ids[i + j]);
        crc = crc32(crc, chunk, (uInt)(4 * k));
    }
    make_header(h, key, n, (uint32_t)crc);
    AtomicFile a;
    if (atomic_open(&a, path, err, errlen) != 0) {
        free(chunk);
        return -1;
    }
    atomic_write(&a, h, HEADER);
    for (long i = 0; i < n; i += CHUNK) {
        long k = n - i < CHUNK ? n - i : CHUNK;
        for (long j = 0; j < k; j++) put_u32(chunk + 4 * j, (uint32_t)ids[i + j]);
        atomic_write(&a, chunk, 4 * (size_t)k);
    }
    free(chunk);
    return atomic_commit(&a, err, errlen);
}
