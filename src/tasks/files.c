// The tasks' data files: reading (input.h), writing, paths and folders.
#include <errno.h>
#include <limits.h>
#include <string.h>
#include <sys/stat.h>

#include "error.h"
#include "input.h"
#include "system.h"
#include "tasks/files.h"

char *task_read_file(const char *path, size_t *len, char *err, int errlen) {
    // Token and line counts are longs.
    return input_read_file(path, LONG_MAX, len, err, errlen);
}

int task_close_file(FILE *f, const char *path, char *err, int errlen) {
    int bad = ferror(f);
    if (fclose(f) != 0 || bad) return errf(err, errlen, "%s: write error", path);
    return 0;
}

int task_path(char *out, size_t outlen, const char *dir, const char *name) {
    int n = snprintf(out, outlen, "%s/%s", dir, name);
    return n < 0 || (size_t)n >= outlen ? -1 : 0;
}

int task_path_exists(const char *path) {
    struct stat st;
    return lstat(path, &st) == 0;
}

int task_mkdir_p(const char *dir, char *err, int errlen) {
    if (make_dirs(dir) != 0) return errf(err, errlen, "%s: cannot create (%s)", dir, strerror(errno));
    return 0;
}
