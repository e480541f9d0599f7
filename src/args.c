#include "args.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

int parse_count(const char *s, long max, long *out) {
    char *end;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (errno || end == s || *end || s[0] == '-' || s[0] == '+' || v > max) return -1;
    *out = v;
    return 0;
}

int parse_size(const char *s, double *bytes) {
    char *end;
    double v = strtod(s, &end);
    if (end == s || !(v >= 0)) return -1;
    const char *units = "KMGT";
    double scale = 1;
    if (*end) {
        const char *u = strchr(units, *end);
        if (!u || (end[1] && strcmp(end + 1, "iB") != 0 && strcmp(end + 1, "B") != 0)) return -1;
        for (const char *p = units; p <= u; p++) scale *= 1024;
    }
    *bytes = v * scale;
    return 0;
}
