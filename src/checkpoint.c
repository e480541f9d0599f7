#include "checkpoint.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <unistd.h>
#include <zlib.h>

#include "atomic_file.h"
#include "bytes.h"
#include "error.h"
#include "input.h"

// Payloads are the caller's raw bytes (host order; every machine we run on is little-endian); the
// framing integers are encoded explicitly (bytes.h) so the header reads the same everywhere.

static const char MAGIC[8] = {'C', 'O', 'P', 'E', 'C', 'K', 'P', 'T'};
#define NAME_MAX_LEN 1024                // a section name longer than this is garbage, not a name
#define SECTION_MIN_BYTES (4 + 1 + 8 + 4)  // length, a one-byte name, size, CRC


// zlib's crc32 takes a uInt length, so feed it in chunks for payloads over 4 GiB.
static uint32_t crc_update(uint32_t crc, const unsigned char *p, size_t n) {
    while (n > 0) {
        uInt chunk = n > (1u << 30) ? (1u << 30) : (uInt)n;
        crc = (uint32_t)crc32(crc, p, chunk);
        p += chunk;
        n -= chunk;
    }
    return crc;
}
static uint32_t crc_of(const void *p, size_t n) { return crc_update((uint32_t)crc32(0L, Z_NULL, 0), p, n); }


// ---------------------------------------------------------------------------------------------

int checkpoint_write(const char *path, const CkptSection *sections, int n, char *err, int errlen) {
    if (n < 0) {
        errf(err, errlen, "checkpoint %s: negative section count %d", path, n);
        return -1;
    }
    for (int i = 0; i < n; i++) {
        const CkptSection *s = &sections[i];
        size_t len = s->name ? strlen(s->name) : 0;
        if (len == 0 || len > NAME_MAX_LEN) {
            errf(err, errlen, "checkpoint %s: section #%d has %s name (1 to %d bytes expected)", path, i,
                    len == 0 ? "an empty" : "a too long", NAME_MAX_LEN);
            return -1;
        }
        if (s->size > 0 && !s->data) {
            errf(err, errlen, "checkpoint %s: section '%s' has %zu bytes but no data", path, s->name, s->size);
            return -1;
        }
        for (int j = 0; j < i; j++) {
            if (strcmp(sections[j].name, s->name) == 0) {
                errf(err, errlen, "checkpoint %s: section '%s' given twice", path, s->name);
                return -1;
            }
        }
    }

    AtomicFile a;
    if (atomic_open(&a, path, err, errlen) != 0) return -1;
    unsigned char hdr[16];
    memcpy(hdr, MAGIC, 8);
    put_u32(hdr + 8, CHECKPOINT_VERSION);
    put_u32(hdr + 12, (uint32_t)n);
    atomic_write(&a, hdr, 16);
    for (int i = 0; i < n; i++) {
        const CkptSection *s = &sections[i];
        uint32_t len = (uint32_t)strlen(s->name);
        unsigned char b[12];
        put_u32(b, len);
        atomic_write(&a, b, 4);
        atomic_write(&a, s->name, len);
        put_u64(b, (uint64_t)s->size);
        put_u32(b + 8, crc_of(s->data, s->size));
        atomic_write(&a, b, 12);
        atomic_write(&a, s->data, s->size);
    }
    return atomic_commit(&a, err, errlen);
}

// ---------------------------------------------------------------------------------------------

// Reads exactly n bytes; a short read is reported as truncation by the caller (we bound every
// read by the file size first, so a short read here means the file changed or an I/O error).
static int read_exact(FILE *f, void *p, size_t n) { return n == 0 || fread(p, 1, n, f) == n; }

// Skips a section the caller did not ask for; with verify, reads it in chunks to check its CRC.
static int skip_section(FILE *f, const char *path, const char *name, uint64_t size, uint32_t crc, int verify, char *err,
                        int errlen) {
    if (!verify) {
        if (fseeko(f, (off_t)size, SEEK_CUR) == 0) return 0;
        errf(err, errlen, "checkpoint %s: seek past section '%s' failed: %s", path, name, strerror(errno));
        return -1;
    }
    unsigned char buf[1 << 16];
    uint32_t got = (uint32_t)crc32(0L, Z_NULL, 0);
    for (uint64_t left = size; left > 0;) {
        size_t chunk = left < sizeof buf ? (size_t)left : sizeof buf;
        if (!read_exact(f, buf, chunk)) {
            errf(err, errlen, "checkpoint %s: read of section '%s' failed: %s", path, name,
                    ferror(f) ? strerror(errno) : "file shrank while reading");
            return -1;
        }
        got = crc_update(got, buf, chunk);
        left -= chunk;
    }
    if (got == crc) return 0;
    errf(err, errlen, "checkpoint %s: CRC mismatch in section '%s' (stored %08x, computed %08x): the file is corrupt",
            path, name, crc, got);
    return -1;
}

// A checkpoint being read: the file, its size and how far the reader is.
typedef struct {
    const char *path;
    FILE *f;
    uint64_t size, pos;
    char name[NAME_MAX_LEN + 1];  // the current section's name
    char prev[NAME_MAX_LEN + 1];  // the previous section's, for naming where a truncation happened
} Reader;

static int reader_open(Reader *r, const char *path, char *err, int errlen) {
    memset(r, 0, sizeof *r);
    r->path = path;
    // Non-blocking, so a FIFO given as a checkpoint is refused below instead of waiting for a writer.
    int fd = open(path, O_RDONLY | O_NONBLOCK | O_CLOEXEC);
    if (fd < 0)
        return errno == ENOENT ? errf(err, errlen, "checkpoint %s: no such file", path)
                               : errf(err, errlen, "checkpoint %s: cannot open: %s", path, strerror(errno));
    struct stat st;
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode) || !(r->f = fdopen(fd, "rb"))) {
        close(fd);
        return errf(err, errlen, "checkpoint %s: not a regular file", path);
    }
    r->size = (uint64_t)st.st_size;
    return 0;
}

// The file header: magic, version and a section count the file size can hold.
static int read_header(Reader *r, uint32_t *count, char *err, int errlen) {
    unsigned char hdr[16];
    if (r->size < 8 || !read_exact(r->f, hdr, 8) || memcmp(hdr, MAGIC, 8) != 0)
        return errf(err, errlen, "checkpoint %s: not a copetrain checkpoint (bad magic; expected \"COPECKPT\")", r->path);
    if (r->size < 16 || !read_exact(r->f, hdr + 8, 8))
        return errf(err, errlen, "checkpoint %s: truncated in the file header (%llu bytes)", r->path,
                    (unsigned long long)r->size);
    uint32_t version = get_u32(hdr + 8);
    *count = get_u32(hdr + 12);
    if (version != CHECKPOINT_VERSION)
        return errf(err, errlen, "checkpoint %s: unsupported format version %u (this build reads version %d)", r->path,
                    version, CHECKPOINT_VERSION);
    if ((uint64_t)*count > (r->size - 16) / SECTION_MIN_BYTES)
        return errf(err, errlen, "checkpoint %s: truncated or corrupt: header claims %u sections, file has only %llu bytes",
                    r->path, *count, (unsigned long long)r->size);
    r->pos = 16;
    return 0;
}

// Section #k's name (into r->name), payload size and CRC; the payload must fit in the file.
static int read_section_header(Reader *r, uint32_t k, uint64_t *size, uint32_t *crc, char *err, int errlen) {
    unsigned char b[12];
    if (r->size - r->pos < 4 || !read_exact(r->f, b, 4))
        return errf(err, errlen, "checkpoint %s: truncated in the header of section #%u%s%s%s", r->path, k,
                    r->prev[0] ? " (after '" : "", r->prev, r->prev[0] ? "')" : "");
    r->pos += 4;
    uint32_t len = get_u32(b);
    if (len == 0 || len > NAME_MAX_LEN)
        return errf(err, errlen, "checkpoint %s: corrupt: section #%u has a name length of %u (1 to %d expected)",
                    r->path, k, len, NAME_MAX_LEN);
    if (r->size - r->pos < len || !read_exact(r->f, r->name, len))
        return errf(err, errlen, "checkpoint %s: truncated in the name of section #%u", r->path, k);
    r->pos += len;
    r->name[len] = '\0';
    for (uint32_t i = 0; i < len; i++)  // names are identifiers we wrote: also keeps messages one line
        if ((unsigned char)r->name[i] < 0x20 || r->name[i] == 0x7f)
            return errf(err, errlen, "checkpoint %s: corrupt: section #%u has a control character in its name", r->path, k);
    if (r->size - r->pos < 12 || !read_exact(r->f, b, 12))
        return errf(err, errlen, "checkpoint %s: truncated in section '%s' (its size and CRC are cut off)", r->path,
                    r->name);
    r->pos += 12;
    *size = get_u64(b);
    *crc = get_u32(b + 8);
    if (*size > r->size - r->pos)
        return errf(err, errlen,
                    "checkpoint %s: truncated in section '%s' (%llu payload bytes expected, %llu left in the file)",
                    r->path, r->name, (unsigned long long)*size, (unsigned long long)(r->size - r->pos));
    return 0;
}

// A requested section's payload into s (allocated when s->data is NULL: *allocated set), size- and
// CRC-checked. want is the size the caller asked for (0: any, for a reader-allocated section).
static int read_payload(Reader *r, CkptSection *s, size_t want, uint64_t size, uint32_t crc, char *allocated,
                        char *err, int errlen) {
    // A caller's buffer fixes the size; a reader-allocated section may ask for a size or take any.
    if ((s->data != NULL || want > 0) && size != (uint64_t)want)
        return errf(err, errlen, "checkpoint %s: section '%s' has %llu bytes, expected %zu", r->path, r->name,
                    (unsigned long long)size, want);
    if (size >= SIZE_MAX)
        return errf(err, errlen, "checkpoint %s: section '%s' is too large (%llu bytes)", r->path, r->name,
                    (unsigned long long)size);
    if (!s->data) {
        // One byte more so a text section (the config JSON) can be used as a C string.
        s->data = malloc((size_t)size + 1);
        if (!s->data)
            return errf(err, errlen, "checkpoint %s: out of memory for section '%s' (%llu bytes)", r->path, r->name,
                        (unsigned long long)size);
        ((char *)s->data)[size] = '\0';
        *allocated = 1;
    }
    if (!read_exact(r->f, s->data, (size_t)size))
        return errf(err, errlen, "checkpoint %s: read of section '%s' failed: %s", r->path, r->name,
                    ferror(r->f) ? strerror(errno) : "file shrank while reading");
    uint32_t got = crc_of(s->data, (size_t)size);
    if (got != crc)
        return errf(err, errlen,
                    "checkpoint %s: CRC mismatch in section '%s' (stored %08x, computed %08x): the file is corrupt",
                    r->path, r->name, crc, got);
    s->size = (size_t)size;
    return 0;
}

static int find_section(const CkptSection *sections, int n, const char *name) {
    for (int i = 0; i < n; i++)
        if (strcmp(sections[i].name, name) == 0) return i;
    return -1;
}

// Every section of the file, in file order: the requested ones read, the others skipped (or, with
// verify_all, CRC-checked). found[i] marks the requested sections seen.
static int read_body(Reader *r, uint32_t count, CkptSection *sections, int n, const size_t *want, char *found,
                     char *allocated, int verify_all, char *err, int errlen) {
    for (uint32_t k = 0; k < count; k++) {
        uint64_t size = 0;  // = 0: set by the header's reader on success, as GCC -O2 cannot see
        uint32_t crc = 0;
        if (read_section_header(r, k, &size, &crc, err, errlen) != 0) return -1;
        int idx = find_section(sections, n, r->name);
        if (idx >= 0 && found[idx])
            return errf(err, errlen, "checkpoint %s: corrupt: section '%s' appears twice", r->path, r->name);
        if (idx < 0) {
            // Not asked for: skip it (its CRC is only checked by a reader that asks for it).
            if (skip_section(r->f, r->path, r->name, size, crc, verify_all, err, errlen) != 0) return -1;
        } else {
            if (read_payload(r, &sections[idx], want[idx], size, crc, &allocated[idx], err, errlen) != 0) return -1;
            found[idx] = 1;
        }
        r->pos += size;
        memcpy(r->prev, r->name, sizeof r->prev);
    }
    if (r->pos != r->size)
        return errf(err, errlen, "checkpoint %s: corrupt: %llu unexpected bytes after the last section", r->path,
                    (unsigned long long)(r->size - r->pos));
    for (int i = 0; i < n; i++)
        if (!found[i]) return errf(err, errlen, "checkpoint %s: missing section '%s'", r->path, sections[i].name);
    return 0;
}

// checkpoint_read, and with verify_all the CRC of every other section too.
static int read_sections(const char *path, CkptSection *sections, int n, int verify_all, char *err, int errlen) {
    Reader r;
    if (reader_open(&r, path, err, errlen) != 0) return -1;
    // What each requested section looked like on entry, to undo the reader's allocations on failure.
    size_t slots = (size_t)(n > 0 ? n : 1);
    char *found = calloc(slots, 1), *allocated = calloc(slots, 1);
    size_t *want = malloc(sizeof(size_t) * slots);
    uint32_t count = 0;  // set by read_header on success (= 0 for GCC -O2, which cannot see it)
    int rc = -1;
    if (!found || !want || !allocated) {
        errf(err, errlen, "checkpoint %s: out of memory", path);
    } else {
        for (int i = 0; i < n; i++) want[i] = sections[i].size;
        rc = read_header(&r, &count, err, errlen) == 0 &&
                     read_body(&r, count, sections, n, want, found, allocated, verify_all, err, errlen) == 0
                 ? 0
                 : -1;
    }
    if (rc != 0 && allocated && want)
        for (int i = 0; i < n; i++) {
            if (allocated[i]) {
                free(sections[i].data);
                sections[i].data = NULL;
            }
            sections[i].size = want[i];
        }
    free(found);
    free(want);
    free(allocated);
    fclose(r.f);
    return rc;
}

int checkpoint_read(const char *path, CkptSection *sections, int n, char *err, int errlen) {
    return read_sections(path, sections, n, 0, err, errlen);
}

int checkpoint_verify(const char *path, char *err, int errlen) { return read_sections(path, NULL, 0, 1, err, errlen); }

// ---------------------------------------------------------------------------------------------
// Run folders.

// Parses "ckpt_<digits>.bin" (at least 8 digits, as %08ld writes them); returns 1 and the step.
static int parse_ckpt_name(const char *name, long *step) {
    if (strncmp(name, "ckpt_", 5) != 0) return 0;
    const char *p = name + 5;
    long v = 0;
    int digits = 0;
    while (*p >= '0' && *p <= '9') {
        if (v > (LONG_MAX - 9) / 10) return 0;
        v = v * 10 + (*p - '0');
        p++;
        digits++;
    }
    if (digits < 8 || strcmp(p, ".bin") != 0) return 0;
    *step = v;
    return 1;
}

static int cmp_long_desc(const void *a, const void *b) {
    long x = *(const long *)a, y = *(const long *)b;
    return (x < y) - (x > y);
}

// The steps of the run folder's ckpt_*.bin files up to max_step, newest first (malloc'd, *count of
// them). Returns -1 with err when the folder cannot be listed.
static int list_steps(const char *run_dir, long max_step, long **out, size_t *count, char *err, int errlen) {
    DIR *d = opendir(run_dir);
    if (!d) {
        errf(err, errlen, "checkpoint folder %s: cannot list it: %s", run_dir, strerror(errno));
        return -1;
    }
    long *steps = NULL;
    size_t n = 0, cap = 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        long s;
        if (!parse_ckpt_name(e->d_name, &s) || s > max_step) continue;
        if (n == cap) {
            cap = cap ? 2 * cap : 16;
            long *grown = realloc(steps, cap * sizeof *steps);
            if (!grown) {
                free(steps);
                closedir(d);
                errf(err, errlen, "checkpoint folder %s: out of memory", run_dir);
                return -1;
            }
            steps = grown;
        }
        steps[n++] = s;
    }
    closedir(d);
    if (n > 1) qsort(steps, n, sizeof *steps, cmp_long_desc);
    *out = steps;
    *count = n;
    return 0;
}

// Deletes ckpt_*.bin older than `step` beyond the newest `keep` (counting `step` itself). Files
// with a later step (left by an earlier run that went further) are not ours to judge and stay.
static int prune(const char *run_dir, long step, int keep, char *err, int errlen) {
    long *steps;
    size_t count;
    if (list_steps(run_dir, step, &steps, &count, err, errlen) != 0) return -1;
    int rc = 0;
    for (size_t i = (size_t)keep; i < count; i++) {
        char path[4096];
        snprintf(path, sizeof path, "%s/ckpt_%08ld.bin", run_dir, steps[i]);
        if (unlink(path) != 0 && errno != ENOENT && rc == 0) {
            errf(err, errlen, "checkpoint %s: cannot delete old checkpoint: %s", path, strerror(errno));
            rc = -1;
        }
    }
    free(steps);
    return rc;
}

int checkpoint_newest_intact(const char *run_dir, long below_step, char *name, int namelen) {
    long *steps;
    size_t count;
    char err[1024];
    if (below_step <= 0 || list_steps(run_dir, below_step - 1, &steps, &count, err, sizeof err) != 0) return -1;
    int rc = -1;
    for (size_t i = 0; i < count && rc != 0; i++) {
        char path[4096];
        snprintf(name, (size_t)namelen, "ckpt_%08ld.bin", steps[i]);
        snprintf(path, sizeof path, "%s/%s", run_dir, name);
        if (checkpoint_verify(path, err, sizeof err) == 0) rc = 0;
    }
    free(steps);
    return rc;
}

int checkpoint_save_step(const char *run_dir, long step, int keep, const CkptSection *sections, int n, char *err,
                         int errlen) {
    if (keep < 1) {
        errf(err, errlen, "checkpoint folder %s: keep must be at least 1 (got %d)", run_dir, keep);
        return -1;
    }
    if (step < 0) {
        errf(err, errlen, "checkpoint folder %s: negative step %ld", run_dir, step);
        return -1;
    }
    char file[64], path[4096], latest[4096];
    snprintf(file, sizeof file, "ckpt_%08ld.bin", step);
    if (snprintf(path, sizeof path, "%s/%s", run_dir, file) >= (int)sizeof path ||
        snprintf(latest, sizeof latest, "%s/latest", run_dir) >= (int)sizeof latest) {
        errf(err, errlen, "checkpoint folder %s: path too long", run_dir);
        return -1;
    }
    if (checkpoint_write(path, sections, n, err, errlen) != 0) return -1;

    AtomicFile a;
    if (atomic_open(&a, latest, err, errlen) != 0) return -1;
    atomic_write(&a, file, strlen(file));
    atomic_write(&a, "\n", 1);
    if (atomic_commit(&a, err, errlen) != 0) return -1;

    return prune(run_dir, step, keep, err, errlen);
}

int checkpoint_latest(const char *run_dir, char *path, int pathlen, char *err, int errlen) {
    char latest[4096];
    if (snprintf(latest, sizeof latest, "%s/latest", run_dir) >= (int)sizeof latest) {
        errf(err, errlen, "checkpoint folder %s: path too long", run_dir);
        return -1;
    }
    size_t got;
    char *text = input_read_file(latest, 255, &got, err, errlen);
    if (!text) {
        if (access(latest, F_OK) != 0 && errno == ENOENT)
            errf(err, errlen, "checkpoint folder %s: no checkpoint yet (%s does not exist)", run_dir, latest);
        return -1;
    }
    char name[256];
    memcpy(name, text, got + 1);
    free(text);
    if (got > 0 && name[got - 1] == '\n') name[--got] = '\0';
    long step;
    if (strlen(name) != got || !parse_ckpt_name(name, &step)) {
        errf(err, errlen, "checkpoint folder %s: %s does not hold a checkpoint file name (ckpt_<step>.bin)",
                run_dir, latest);
        return -1;
    }
    if (snprintf(path, (size_t)pathlen, "%s/%s", run_dir, name) >= pathlen) {
        errf(err, errlen, "checkpoint folder %s: path of %s does not fit in %d bytes", run_dir, name, pathlen);
        return -1;
    }
    if (access(path, F_OK) != 0) {
        errf(err, errlen, "checkpoint folder %s: latest points to %s, which does not exist", run_dir, name);
        return -1;
    }
    return 0;
}
