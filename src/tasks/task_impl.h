// What a task file implements, and the helpers the task files share (task.c). Not for use
// outside src/tasks/: the rest of the program sees only task.h.
#ifndef TASK_IMPL_H
#define TASK_IMPL_H

#include <stdio.h>

#include "error.h"
#include "rng.h"
#include "tasks/task.h"

#define TASK_MAX_SPLITS 8

typedef struct {
    const char *name;
    // Fills the Task fields below (vocab_size, max_length, splits, impl...) from t->cfg.
    int (*create)(Task *t, char *err, int errlen);
    void (*destroy)(Task *t);
    void (*next_train)(Task *t, Batch *b, int B);
    long (*split_size)(Task *t, int split);
    int (*split_max_length)(const Task *t, int split);
    int (*eval_batch)(Task *t, int split, long first, Batch *b, int B);
    const char *(*token_str)(const Task *t, int id);
    double (*train_epoch)(const Task *t);                      // NULL: endless stream
    double (*bytes_per_token)(const Task *t, int split);       // NULL: not a language model
    // The cursor: a fixed number of bytes for a given task and config.
    size_t (*state_size)(const Task *t);
    void (*state_save)(const Task *t, void *buf);
    int (*state_load)(Task *t, const void *buf, size_t size);
} TaskOps;

struct Task {
    const TaskOps *ops;
    TaskConfig cfg;
    int block_size;
    uint64_t run_seed;     // training order
    uint64_t data_seed;    // data sets and evaluation splits
    int answer_loss;       // loss_on resolved: 1 = only the answer tokens
    int vocab_size, max_length, is_lm;
    const char *splits[TASK_MAX_SPLITS + 1];  // NULL-terminated
    void *impl;
};

extern const TaskOps flipflop_ops, counting_ops, selcopy_ops, lm_ops;

// Stream identifiers mixed into seeds, so no two streams share random numbers.
enum { STREAM_TRAIN = 1, STREAM_EVAL = 2, STREAM_DATA = 3, STREAM_SHUFFLE = 4 };
// A generator seeded for item n of (seed, stream, split): independent of every other item.
void task_item_rng(Rng *r, uint64_t seed, int stream, int split, long n);

// Epochs over a finite set of n items: a permutation per epoch, drawn from an Rng. The cursor is
// (epoch, index, the Rng's state at the start of the epoch); loading it redraws that permutation.
typedef struct {
    long n;
    long *perm;
    uint64_t epoch;
    long index;
    Rng rng;          // after drawing the current permutation
    Rng epoch_start;  // before drawing it
} EpochSampler;

int sampler_init(EpochSampler *s, long n, uint64_t seed);  // -1: out of memory
void sampler_free(EpochSampler *s);
long sampler_next(EpochSampler *s);                         // the next item (advances the cursor)
double sampler_epoch(const EpochSampler *s);
#define SAMPLER_STATE_SIZE 56
void sampler_save(const EpochSampler *s, void *buf);
int sampler_load(EpochSampler *s, const void *buf);  // -1: a cursor for another set size

// Rng state as a cursor.
#define RNG_STATE_SIZE 32
void rng_save(const Rng *r, void *buf);
void rng_load(Rng *r, const void *buf);

// Keys (names '|'-separated) that have no effect in some setting must keep their defaults, or a
// value given for them would be silently ignored: -1 with err "task.KEY: VALUE <why>; leave it out"
// for the first that does not.
int task_refuse_unused(const TaskConfig *c, const char *keys, const char *why, char *err, int errlen);

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
