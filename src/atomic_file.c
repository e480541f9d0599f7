#include "atomic_file.h"

#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <unistd.h>

#include "error.h"

int atomic_open(AtomicFile *a, const char *path, char *err, int errlen) {
    a->path = path;
    a->f = NULL;
    a->failed = 0;
    a->saved_errno = 0;
    if (snprintf(a->tmp, sizeof a->tmp, "%s.tmp", path) >= (int)sizeof a->tmp) {
        return errf(err, errlen, "%s: path too long", path);
    }
    a->f = fopen(a->tmp, "wb");
    if (!a->f) {
        return errf(err, errlen, "%s: cannot create %s: %s", path, a->tmp, strerror(errno));
    }
    return 0;
}

void atomic_write(AtomicFile *a, const void *p, size_t n) {
    if (a->failed || n == 0) return;
    if (fwrite(p, 1, n, a->f) != n) {
        a->failed = 1;
        a->saved_errno = errno ? errno : EIO;
    }
}

// The parent folder of path ("." when it has none), for the fsync after the rename.
static void parent_dir(const char *path, char *dir, size_t dirlen) {
    const char *slash = strrchr(path, '/');
    if (!slash) {
        snprintf(dir, dirlen, ".");
    } else if (slash == path) {
        snprintf(dir, dirlen, "/");
    } else {
        snprintf(dir, dirlen, "%.*s", (int)(slash - path), path);
    }
}

static int fsync_dir(const char *path, char *err, int errlen) {
    char dir[4096];
    parent_dir(path, dir, sizeof dir);
    int fd = open(dir, O_RDONLY | O_DIRECTORY);
    if (fd < 0) {
        return errf(err, errlen, "%s: written, but cannot open folder %s to fsync it: %s", path, dir, strerror(errno));
    }
    // Some file systems cannot fsync a folder (EINVAL); there the rename is as durable as it gets.
    int rc = fsync(fd);
    int e = errno;
    close(fd);
    if (rc != 0 && e != EINVAL) {
        return errf(err, errlen, "%s: written, but fsync of folder %s failed: %s", path, dir, strerror(e));
    }
    return 0;
}

// Finishes the file: on any failure the tmp file is removed and <path> is left as it was.
int atomic_commit(AtomicFile *a, char *err, int errlen) {
    const char *stage = "write";
    int e = 0;
    if (a->failed) {
        e = a->saved_errno;
    } else if (fflush(a->f) != 0) {
        stage = "flush";
        e = errno;
    } else if (fsync(fileno(a->f)) != 0 && errno != EINVAL) {
        stage = "fsync";
        e = errno;
    }
    if (fclose(a->f) != 0 && e == 0) {
        stage = "close";
        e = errno;
    }
    a->f = NULL;
    if (e == 0 && rename(a->tmp, a->path) != 0) {
        stage = "rename";
        e = errno;
    }
    if (e != 0) {
        unlink(a->tmp);
        return errf(err, errlen, "%s: %s of %s failed: %s (the previous %s, if any, is untouched)", a->path, stage,
                    a->tmp, strerror(e), a->path);
    }
    return fsync_dir(a->path, err, errlen);
}

int atomic_write_file(const char *path, const void *data, size_t n, char *err, int errlen) {
    AtomicFile a;
    if (atomic_open(&a, path, err, errlen) != 0) return -1;
    atomic_write(&a, data, n);
    return atomic_commit(&a, err, errlen);
}
