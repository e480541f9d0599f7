// What a task file implements (TaskOps), and the helpers the task files share (files.h, sampler.h,
// task_refuse_unused). Not for use outside src/tasks/: the rest of the program sees only task.h.
#ifndef TASK_IMPL_H
#define TASK_IMPL_H

#include "config.h"
#include "error.h"
#include "tasks/files.h"
#include "tasks/sampler.h"
#include "tasks/task.h"

#define TASK_MAX_SPLITS 8

typedef struct {
    const char *name;                // task.name
    const char *title;               // what it is, for task.name's doc ("flip-flop language modelling")
    const char *answer;              // its answer tokens, for task.loss_on's doc; NULL: none (every token)
    int answer_loss_auto;            // task.loss_on auto: 1 = the answer tokens, 0 = all
    // Its own config keys (applies left NULL: task_config_keys makes them apply to this task), and
    // the shared keys it reads ('|'-separated: data_dir, write_dir, eval_sequences, eval_length,
    // train_sequences; see task_keys.c).
    const ConfigKey *keys;
    int n_keys;
    const char *shared_keys;
    // task.eval_length's value when it is 0 (e.g. task.length); NULL: the task has no evaluation
    // length (its splits have lengths of their own) and does not read task.eval_length.
    int (*default_eval_length)(const TaskConfig *c, int block_size);
    // Fills the Task fields below (vocab_size, max_length, splits, impl...) from t->cfg.
    int (*create)(Task *t, char *err, int errlen);
    void (*destroy)(Task *t);
    void (*next_train)(Task *t, Batch *b, int B);
    long (*split_size)(Task *t, int split);
    int (*split_max_length)(const Task *t, int split);
    int (*eval_batch)(Task *t, int split, long first, Batch *b, int B);
    const char *(*token_str)(const Task *t, int id);
    // Language models on text: the bytes a token stands for, and text to tokens (task.h). NULL, or
    // NULL / -1 for a tokenizer whose tokens do not stand for bytes (words).
    const char *(*token_text)(const Task *t, int id, size_t *len);
    long (*encode)(Task *t, const char *text, size_t len, int *out);
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
    Batch skipped;  // task_skip_train's one-row scratch (allocated at its first use)
};

// Every task, NULL-terminated (task.c's TASKS: one entry per task).
extern const TaskOps *const task_registry[];

// A key's schema entry, in a task's key table: KEY_xxx fields are TaskConfig's.
#define TASK_KEY(field) offsetof(Config, task.field)
#define TASK_INT_MAX 2147483647.0
#define TASK_KEYS(table) .keys = table, .n_keys = (int)(sizeof table / sizeof table[0])

// Keys (names '|'-separated) that have no effect in some setting must keep their defaults, or a
// value given for them would be silently ignored: -1 with err "task.KEY: VALUE <why>; leave it out"
// for the first that does not.
int task_refuse_unused(const TaskConfig *c, const char *keys, const char *why, char *err, int errlen);

#endif
