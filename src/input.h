// What users hand the program, read with suspicion: whole files (regular files only, never a FIFO
// that would block or a device that never ends, and at most a given size), the files written where
// a user said (regular files only, for the same reasons), and the JSON that cJSON
// accepts but silently misreads (a \u0000 escape cuts a string short; 1e400 becomes infinity, 1e-400
// zero). The config loader and every task's data reader use these, so each input is refused the
// same way, naming the file.
#ifndef INPUT_H
#define INPUT_H

#include <stddef.h>
#include <stdio.h>

struct cJSON;

// Reads the regular file at path into a malloc'd buffer with a NUL after its *len bytes (the text
// may itself hold NUL bytes: callers that want text check). At most max_bytes are accepted. NULL,
// with one line in err naming the path, when it cannot be opened, is not a regular file (a folder, a
// FIFO, a device), is larger than max_bytes, or cannot be read or held in memory.
char *input_read_file(const char *path, size_t max_bytes, size_t *len, char *err, int errlen);

// s[0..len) fit for a one-line message: control characters written as \xNN, and cut with "..." to
// fit buf (n ≥ 8). Returns buf.
const char *input_printable(const char *s, size_t len, char *buf, size_t n);

// Opens path for writing a regular file, created or emptied. Something else already there (a folder,
// a FIFO, whose open would block until a reader came, a device) is refused. NULL with err naming
// the path.
FILE *input_create_file(const char *path, char *err, int errlen);

// Checks JSON text that cJSON parsed into root (the same text, so the two walk in step): every
// string and object key is free of \u0000, and every number is finite and, when written with a
// nonzero digit, nonzero. Returns 0, or -1 with *at pointing into text at the offending token and
// err "PATH: what was written and what was expected", PATH being the object keys (and [i] array
// indexes) down to the value, joined by '.' (the root itself is root_name).
int input_json_check(const char *text, const struct cJSON *root, const char *root_name, const char **at, char *err,
                     int errlen);

#endif
