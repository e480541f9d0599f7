// What the fuzz targets (tests/fuzz/fuzz_<name>.c, one per reader of user input) share: a scratch
// folder for readers that take a path, and a workout of a created task that checks what every batch
// must satisfy. A violated property abort()s, which libFuzzer reports as a crash with its input.
#ifndef FUZZ_H
#define FUZZ_H

#include <stddef.h>
#include <stdint.h>

#include "tasks/task.h"

// A folder private to this process (in /dev/shm when there is one), removed at exit (or, after a
// crash, by the next fuzz target that starts).
const char *fuzz_dir(void);
// Writes n bytes to fuzz_dir()/name and returns the path (static storage, one per name slot
// until the next call with the same name).
const char *fuzz_write(const char *name, const void *data, size_t n);
// Removes fuzz_dir()/name if it is there.
void fuzz_remove(const char *name);

// Aborts unless cond, printing why first.
void fuzz_require(int cond, const char *what);

// Uses t as the trainer and the evaluator do: training batches, a saved and reloaded cursor (which
// must give the same next batch), the first windows of every split, every token's name. Every
// batch is checked: its shape within the allocation, tokens and targets in the vocabulary, masks 0
// or 1, no loss or metric on padding.
void fuzz_exercise(Task *t);

#endif
