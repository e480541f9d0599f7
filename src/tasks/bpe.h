// Byte-level BPE (docs/tokenizers.md): GPT-2's published tokenizer (gpt2_bpe.c) and one trained on
// the training text (bpe_train.c) share this representation and its encoder.
//
// A Bpe has n_tokens ids, each standing for a byte string, and a ranked list of merges: merge r joins
// the adjacent tokens (left[r], right[r]) into the token result[r]. Text is first cut into
// pre-tokens by GPT-2's rule (bpe_pretoken_end); each pre-token starts as its bytes' ids, and the
// adjacent pair of lowest rank is merged everywhere in it (left to right, non-overlapping) until no
// pair has a rank. Merges never cross pre-tokens, so decoding is concatenating the tokens' bytes.
#ifndef BPE_H
#define BPE_H

#include <stddef.h>
#include <stdint.h>

typedef struct Bpe Bpe;

// An empty tokenizer: no tokens, no merges. NULL when out of memory.
Bpe *bpe_new(void);
// A tokenizer of the 256 bytes, token i = byte i, and no merges yet (a trained tokenizer's start).
Bpe *bpe_new_bytes(void);
void bpe_free(Bpe *b);
// Adds a token standing for bytes s[0..len): its id (ids are given in order from 0), or -1 when out
// of memory or when the bytes already have a token.
int bpe_add_token(Bpe *b, const void *s, size_t len);
// The token whose bytes are s[0..len), or -1.
int bpe_find_token(const Bpe *b, const void *s, size_t len);
// Appends the merge of (left, right), ranked after the earlier ones, and returns its result: the
// token of left's bytes then right's, added when no token has them yet. -1 when an id is out of
// range, the pair already has a merge, or memory ends.
int bpe_add_merge(Bpe *b, int left, int right);
// Checks that each of the 256 bytes has a token (-1 otherwise) and fixes the tokenizer: its
// fingerprint and token names. Call once, after the last token and merge.
int bpe_finish(Bpe *b);

int bpe_has_merge(const Bpe *b, int left, int right);
int bpe_n_tokens(const Bpe *b);
int bpe_n_merges(const Bpe *b);
void bpe_merge(const Bpe *b, int rank, int *left, int *right);
const unsigned char *bpe_token_bytes(const Bpe *b, int id, size_t *len);
// A printable name of the token: its bytes, with control, non-ASCII and backslash bytes as \xNN.
const char *bpe_token_name(const Bpe *b, int id);
// A hash of the tokens' bytes and the merges: equal fingerprints, equal tokenizers.
uint64_t bpe_fingerprint(const Bpe *b);

// GPT-2's pre-tokenisation rule, the regular expression
//   's|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+
// matched by hand: the end of the pre-token that starts at s[i] (i < n), in (i, n].
size_t bpe_pretoken_end(const unsigned char *s, size_t n, size_t i);

// Encodes text[0..len) into out (which may be NULL to count only); returns the number of tokens, or
// -1 when out of memory. Not thread-safe: it caches the tokens of each pre-token it has seen.
long bpe_encode(Bpe *b, const void *text, size_t len, int *out);
// The tokens of one pre-token s[0..len) into out (room for len ids): their number.
int bpe_encode_word(const Bpe *b, const unsigned char *s, size_t len, int *out);

// The trained tokenizer as a file: its merges as text (docs/tokenizers.md shows the format), with
// the size and CRC-32 of the text it was trained on, so a tokenizer of other text is not taken for
// it. bpe_save writes atomically; bpe_load returns NULL with err saying what does not match.
int bpe_save(const Bpe *b, const char *path, size_t text_len, uint32_t text_crc, char *err, int errlen);
Bpe *bpe_load(const char *path, size_t text_len, uint32_t text_crc, int vocab_size, char *err, int errlen);

// Trains a byte-level BPE of at most vocab_size ids (the 256 bytes, then one id per merge) on
// text[0..len) (bpe_train.c, docs/tokenizers.md): each merge joins the adjacent pair that occurs
// most often within pre-tokens, ties going to the smaller left id, then the smaller right id; it
// stops early when no pair occurs twice. NULL when out of memory.
Bpe *bpe_train(const void *text, size_t len, int vocab_size);

// GPT-2's tokenizer from its encoder.json and vocab.bpe in dir (gpt2_bpe.c). NULL with err naming
// the file and what is wrong with it.
Bpe *gpt2_bpe_load(const char *dir, char *err, int errlen);

#endif
