// Files replaced atomically: everything goes to <path>.tmp, which is fsync'd and renamed over
// <path>, then the folder is fsync'd so the rename itself survives a crash. Until the rename <path>
// is untouched, so a kill, a crash or a full disk never leaves a half-written file under its final
// name. Checkpoints, `latest`, a run's config.json and rewritten metrics use it.
#ifndef ATOMIC_FILE_H
#define ATOMIC_FILE_H

#include <stddef.h>
#include <stdio.h>

typedef struct {
    const char *path;
    char tmp[4096];
    FILE *f;
    int failed;  // first write error seen; later writes are skipped
    int saved_errno;
} AtomicFile;

// Starts <path>.tmp. Returns 0, or -1 with err naming the path.
int atomic_open(AtomicFile *a, const char *path, char *err, int errlen);
// Appends n bytes; an error is remembered and reported by atomic_commit.
void atomic_write(AtomicFile *a, const void *p, size_t n);
// Flushes, fsyncs and renames over <path>. On any failure the temporary file is removed, <path> is
// left as it was, and err names the stage that failed and the reason (e.g. No space left on device).
int atomic_commit(AtomicFile *a, char *err, int errlen);
// The three at once for n bytes of data.
int atomic_write_file(const char *path, const void *data, size_t n, char *err, int errlen);

#endif
