// Values of the programs' command-line options, checked as strictly as config keys: a number out
// of range is refused, never wrapped or cut.
#ifndef ARGS_H
#define ARGS_H

// A decimal integer in [0, max]; -1 for anything else (a sign, a suffix, overflow).
int parse_count(const char *s, long max, long *out);
// "512M", "8G", "1.5G", "100000" (bytes; K, M, G, T are powers of 1024, with an optional "B" or
// "iB") into bytes; -1 if malformed.
int parse_size(const char *s, double *bytes);

#endif
