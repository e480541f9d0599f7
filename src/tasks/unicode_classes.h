// The Unicode character classes of GPT-2's pre-tokenisation rule (docs/tokenizers.md): letters
// (\p{L}), numbers (\p{N}), white space (\s) and the rest, and the UTF-8 decoding that finds a
// text's code points. The letter and number ranges are generated (scripts/unicode_classes.py).
#ifndef UNICODE_CLASSES_H
#define UNICODE_CLASSES_H

#include <stddef.h>
#include <stdint.h>

typedef enum { UC_OTHER, UC_LETTER, UC_NUMBER, UC_SPACE } UnicodeClass;

typedef struct {
    uint32_t lo, hi;  // inclusive
    UnicodeClass cls;
} UnicodeRange;
extern const UnicodeRange unicode_ranges[];  // sorted, disjoint: the letters and numbers
extern const int unicode_n_ranges;
extern const char unicode_version[];

// The class of code point cp. White space is Unicode's White_Space property (what GPT-2's Python
// `regex` calls \s).
UnicodeClass unicode_class(uint32_t cp);
// The code point at s[0..n) (n ≥ 1) into *cp and its length in bytes. A byte that does not start a
// well-formed UTF-8 sequence (a stray continuation byte, an overlong form, a surrogate, a cut
// sequence) is one code point of its own, UNICODE_INVALID, of class UC_OTHER.
#define UNICODE_INVALID 0xFFFFFFFFu
size_t utf8_decode(const unsigned char *s, size_t n, uint32_t *cp);

#endif
