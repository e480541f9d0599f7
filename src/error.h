// How every module reports a failure: it returns -1 (or NULL) and leaves one line in the caller's
// err buffer naming the file, key or value and what was expected; the program prints it and exits
// non-zero. errf is the one formatter of such lines.
#ifndef ERROR_H
#define ERROR_H

// Writes the message into err (when err is not NULL and errlen > 0) and returns -1, so a failing
// function can end with `return errf(err, errlen, "...", ...);`.
int errf(char *err, int errlen, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

#endif
