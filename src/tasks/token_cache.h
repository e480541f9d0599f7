// Tokenised texts saved, so a large corpus is tokenised once (docs/tokenizers.md). A cache file
// holds a header naming the tokenizer (its name and fingerprint) and the text it came from (size and
// CRC-32), then the token ids; a file whose header names another tokenizer or text is stale, one
// whose size or payload CRC does not check is corrupt, and either is tokenised again and replaced.
#ifndef TOKEN_CACHE_H
#define TOKEN_CACHE_H

#include <stddef.h>
#include <stdint.h>

typedef struct {
    char tokenizer[16];    // "gpt2", "bpe"
    uint64_t fingerprint;  // bpe_fingerprint
    uint64_t text_len;
    uint32_t text_crc;
    int n_tokens;          // ids must be below it
} TokenCacheKey;

// CRC-32 (zlib's) of n bytes, any n.
uint32_t text_crc32(const void *p, size_t n);

// Reads the ids cached at path for key: 0 with *ids (malloc'd) and *n; 1 when there is no file; 2
// when the file cannot be used, with why saying why (stale, corrupt, unreadable).
int token_cache_load(const char *path, const TokenCacheKey *key, int **ids, long *n, char *why, int whylen);
// Writes the cache file atomically (atomic_file.h); -1 with err naming the path.
int token_cache_save(const char *path, const TokenCacheKey *key, const int *ids, long n, char *err, int errlen);

#endif
