#include "input.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "error.h"

static const char *file_kind(mode_t m) {
    if (S_ISDIR(m)) return "a folder";
    if (S_ISFIFO(m)) return "a FIFO";
    if (S_ISCHR(m)) return "a character device";
    if (S_ISBLK(m)) return "a block device";
    return "a socket or other special file";
}

char *input_read_file(const char *path, size_t max_bytes, size_t *len, char *err, int errlen) {
    // O_NONBLOCK: opening a FIFO that has no writer would otherwise wait forever, before fstat could
    // refuse it. It changes nothing for the regular files that are read.
    int fd = open(path, O_RDONLY | O_NONBLOCK | O_CLOEXEC);
    if (fd < 0) {
        errf(err, errlen, "%s: cannot open: %s", path, strerror(errno));
        return NULL;
    }
    struct stat st;
    if (fstat(fd, &st) != 0) {
        errf(err, errlen, "%s: cannot stat: %s", path, strerror(errno));
        close(fd);
        return NULL;
    }
    if (!S_ISREG(st.st_mode)) {
        errf(err, errlen, "%s: is %s, expected a regular file", path, file_kind(st.st_mode));
        close(fd);
        return NULL;
    }
    if ((uintmax_t)st.st_size > max_bytes) {
        errf(err, errlen, "%s: %jd bytes, more than the %zu accepted", path, (intmax_t)st.st_size, max_bytes);
        close(fd);
        return NULL;
    }
    // st_size is a hint (files in /proc say 0; a file may grow while read): read to the end, at
    // most max_bytes + 1 bytes so that a longer file is recognised, with room for the NUL.
    size_t limit = max_bytes < SIZE_MAX - 2 ? max_bytes + 2 : SIZE_MAX;
    size_t cap = (size_t)st.st_size + 2 < limit ? (size_t)st.st_size + 2 : limit, n = 0;
    if (cap < 4096 && limit >= 4096) cap = 4096;
    char *buf = malloc(cap);
    int rc = buf ? 0 : errf(err, errlen, "%s: out of memory for %zu bytes", path, cap);
    while (rc == 0) {
        if (n + 1 == cap) {
            if (cap == limit) {
                rc = errf(err, errlen, "%s: more than %zu bytes, the most accepted", path, max_bytes);
                break;
            }
            size_t ncap = cap <= limit / 2 ? cap * 2 : limit;
            char *nb = realloc(buf, ncap);
            if (!nb) {
                rc = errf(err, errlen, "%s: out of memory for %zu bytes", path, ncap);
                break;
            }
            buf = nb;
            cap = ncap;
        }
        ssize_t got = read(fd, buf + n, cap - 1 - n);
        if (got < 0 && errno == EINTR) continue;
        if (got < 0) rc = errf(err, errlen, "%s: read error: %s", path, strerror(errno));
        if (got <= 0) break;
        n += (size_t)got;
    }
    close(fd);
    if (rc == 0 && n > max_bytes) rc = errf(err, errlen, "%s: more than %zu bytes, the most accepted", path, max_bytes);
    if (rc != 0) {
        free(buf);
        return NULL;
    }
    buf[n] = 0;
    *len = n;
    return buf;
}

FILE *input_create_file(const char *path, char *err, int errlen) {
    // Refuse what is there before opening: opening a FIFO for writing blocks until a reader comes
    // (with O_NONBLOCK it fails with ENXIO, which would name no reason). Should one appear between
    // the two calls, O_NONBLOCK still keeps the open from blocking, and fstat refuses it.
    struct stat st;
    if (stat(path, &st) == 0 && !S_ISREG(st.st_mode)) {
        errf(err, errlen, "%s: is %s, expected a regular file", path, file_kind(st.st_mode));
        return NULL;
    }
    int fd = open(path, O_WRONLY | O_CREAT | O_NONBLOCK | O_CLOEXEC, 0666);
    if (fd < 0) {
        errf(err, errlen, "%s: cannot create: %s", path, strerror(errno));
        return NULL;
    }
    FILE *f = NULL;
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode))
        errf(err, errlen, "%s: is not a regular file, expected one", path);
    else if (ftruncate(fd, 0) != 0 || fcntl(fd, F_SETFL, 0) != 0 || !(f = fdopen(fd, "w")))
        errf(err, errlen, "%s: cannot write: %s", path, strerror(errno));
    if (!f) close(fd);
    return f;
}

const char *input_printable(const char *s, size_t len, char *buf, size_t n) {
    size_t o = 0, i = 0;
    for (; i < len; i++) {
        unsigned char ch = (unsigned char)s[i];
        int control = ch < 0x20 || ch == 0x7f;
        if (o + (control ? 4 : 1) + 3 >= n) break;  // room for "..." and the NUL
        if (control)
            o += (size_t)snprintf(buf + o, n - o, "\\x%02x", ch);
        else
            buf[o++] = (char)ch;
    }
    if (i < len) {
        memcpy(buf + o, "...", 3);
        o += 3;
    }
    buf[o] = 0;
    return buf;
}

// ---------------------------------------------------------------------------------------------
// JSON text checks. cJSON keeps neither the text of a number nor the length of a string, so the
// text is walked again alongside the tree cJSON built from it, token by token.

typedef struct {
    char path[256];
    const char **at;
    char *err;
    int errlen;
} Walk;

// cJSON's whitespace: every byte up to the space.
static const char *skip_ws(const char *p) {
    while (*p && (unsigned char)*p <= ' ') p++;
    return p;
}

// The string token at p (at its opening quote): the position just past it, and in *nul the first
// \u0000 escape (NULL if none).
static const char *string_end(const char *p, const char **nul) {
    *nul = NULL;
    for (p++; *p && *p != '"'; p++) {
        if (*p != '\\') continue;
        p++;
        if (*p == 'u' && !strncmp(p + 1, "0000", 4) && !*nul) *nul = p - 1;
        if (!*p) break;
    }
    return *p ? p + 1 : p;
}

static int walk_fail(Walk *w, const char *at, const char *fmt, ...) {
    *w->at = at;
    if (!w->err || w->errlen <= 0) return -1;
    int n = w->path[0] ? snprintf(w->err, (size_t)w->errlen, "%s: ", w->path) : 0;
    if (n >= 0 && n < w->errlen) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(w->err + n, (size_t)(w->errlen - n), fmt, ap);
        va_end(ap);
    }
    return -1;
}

// Appends ".name" (or "[i]" for name NULL) to the path; returns the old length to restore.
static size_t path_push(Walk *w, const char *name, int index) {
    size_t old = strlen(w->path);
    char *end = w->path + old;
    size_t room = sizeof w->path - old;
    char shown[64];
    if (name)
        snprintf(end, room, "%s%s", old ? "." : "", input_printable(name, strlen(name), shown, sizeof shown));
    else
        snprintf(end, room, "[%d]", index);
    return old;
}

// Walks the value of item, whose text starts at *pp (after whitespace); moves *pp past it.
static int walk(Walk *w, const char **pp, const cJSON *item) {
    const char *p = skip_ws(*pp), *nul;
    if (cJSON_IsObject(item) || cJSON_IsArray(item)) {
        int object = cJSON_IsObject(item), i = 0;
        if (*p != (object ? '{' : '[')) return walk_fail(w, p, "the JSON text and its parse disagree here");
        p++;
        for (const cJSON *c = item->child; c; c = c->next, i++) {
            p = skip_ws(p);
            if (object) {
                if (*p != '"') return walk_fail(w, p, "the JSON text and its parse disagree here");
                const char *key = p;
                p = skip_ws(string_end(p, &nul));
                char shown[64];
                if (nul)
                    return walk_fail(w, key, "the key \"%s...\" contains \\u0000 (a NUL character)",
                                     input_printable(c->string, strlen(c->string), shown, sizeof shown));
                if (*p != ':') return walk_fail(w, p, "the JSON text and its parse disagree here");
                p++;
            }
            size_t old = path_push(w, object ? c->string : NULL, i);
            if (walk(w, &p, c) != 0) return -1;
            w->path[old] = 0;
            p = skip_ws(p);
            if (*p == ',') p++;
        }
        p = skip_ws(p);
        if (*p != (object ? '}' : ']')) return walk_fail(w, p, "the JSON text and its parse disagree here");
        *pp = p + 1;
        return 0;
    }
    if (cJSON_IsString(item)) {
        if (*p != '"') return walk_fail(w, p, "the JSON text and its parse disagree here");
        *pp = string_end(p, &nul);
        char shown[48];
        if (nul)
            return walk_fail(w, nul, "the string contains \\u0000 (a NUL character), which would cut it short after \"%s\"",
                             input_printable(item->valuestring, strlen(item->valuestring), shown, sizeof shown));
        return 0;
    }
    if (cJSON_IsNumber(item)) {
        const char *e = p;  // cJSON's number characters
        while (*e && strchr("0123456789+-eE.", *e)) e++;
        if (e == p) return walk_fail(w, p, "the JSON text and its parse disagree here");
        *pp = e;
        int shown = e - p > 40 ? 40 : (int)(e - p);
        const char *more = e - p > 40 ? "..." : "";
        if (!isfinite(item->valuedouble))
            return walk_fail(w, p, "%.*s%s is not a finite number (a double holds at most about 1.8e308)", shown, p, more);
        if (item->valuedouble == 0) {
            size_t mantissa = strcspn(p, "eE");
            for (const char *d = p; d < p + mantissa && d < e; d++)
                if (*d >= '1' && *d <= '9')
                    return walk_fail(w, p, "%.*s%s is too small for a double, which would hold it as 0", shown, p, more);
        }
        return 0;
    }
    // true, false, null
    const char *e = p;
    while (*e >= 'a' && *e <= 'z') e++;
    if (e == p) return walk_fail(w, p, "the JSON text and its parse disagree here");
    *pp = e;
    return 0;
}

int input_json_check(const char *text, const cJSON *root, const char *root_name, const char **at, char *err,
                     int errlen) {
    Walk w = {.at = at, .err = err, .errlen = errlen};
    snprintf(w.path, sizeof w.path, "%s", root_name);
    const char *p = text;
    if (!strncmp(p, "\xEF\xBB\xBF", 3)) p += 3;  // cJSON skips a UTF-8 byte order mark
    return walk(&w, &p, root);
}
