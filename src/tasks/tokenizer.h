// Tokenizers: a vocabulary (words <-> ids; a word is any byte string, NUL bytes included), the official counting code's SimpleTokenizer
// normalisation, and the word-level tokenizer of language modelling (<unk>, <eos>, min count).
// Byte-level tokenization needs none of this: a byte is its own id; BPE (bpe.h) interns its tokens
// and pre-tokens in Vocabs.
#ifndef TOKENIZER_H
#define TOKENIZER_H

#include <stddef.h>

typedef struct Vocab Vocab;

Vocab *vocab_new(void);
void vocab_free(Vocab *v);
int vocab_size(const Vocab *v);
int vocab_find(const Vocab *v, const char *w, size_t len);  // -1: absent
int vocab_add(Vocab *v, const char *w, size_t len);         // the word's id, new or existing (-1: out of memory)
const char *vocab_word(const Vocab *v, int id);  // NUL-terminated (after its length)
const char *vocab_bytes(const Vocab *v, int id, size_t *len);  // NULL if out of range
// Per-word counters for building a vocabulary by frequency: count[id] grows with each vocab_count.
int vocab_count(Vocab *v, const char *w, size_t len);        // adds the word if new; returns its id
long vocab_get_count(const Vocab *v, int id);

// The official SimpleTokenizer (src/data/tokenizer.py): strip, lowercase, a space before each
// '.', ',' and '?', split on whitespace. Returns a malloc'd normalised copy; iterate its words
// with next_word.
char *simple_normalize(const char *text);
// The next whitespace-separated word at or after *p (NULL at the end); *p moves past it.
const char *next_word(const char **p, size_t *len);

// Word-level language-model vocabulary from training text: <unk> = 0, <eos> = 1 (end of line),
// then the words seen at least min_count times, most frequent first (ties: first seen first),
// at most max_vocab ids in all (0 = no cap).
Vocab *word_vocab_build(const char *text, size_t len, int min_count, int max_vocab);
#define WORD_UNK 0
#define WORD_EOS 1
// Encodes text with a word vocabulary: words and one <eos> per line end (a final line without
// '\n' gets one too). out may be NULL to count only. Returns the number of tokens.
long word_encode(const Vocab *v, const char *text, size_t len, int *out);

#endif
