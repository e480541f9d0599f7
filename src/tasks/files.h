// The tasks' data files (data_dir, write_dir, text_file).
#ifndef TASKS_FILES_H
#define TASKS_FILES_H

#include <stddef.h>
#include <stdio.h>

// A data file, whole (input_read_file: regular files only), with a NUL after its *len bytes; NULL
// with err naming the file.
char *task_read_file(const char *path, size_t *len, char *err, int errlen);
// Closes a file written with input_create_file: -1 with err when any write failed.
int task_close_file(FILE *f, const char *path, char *err, int errlen);
// dir + "/" + name into out; -1 if too long.
int task_path(char *out, size_t outlen, const char *dir, const char *name);
// Is there anything at path (a file, a folder, a FIFO, even a dangling link)? An optional file that
// exists is read, so what is wrong with it is reported rather than passed over.
int task_path_exists(const char *path);
int task_mkdir_p(const char *dir, char *err, int errlen);

#endif
