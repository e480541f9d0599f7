// The task registry (one line per task) and the dispatch of task.h's calls to a task's ops.
#include <stdlib.h>
#include <string.h>

#include "config.h"
#include "error.h"
#include "tasks/task_impl.h"

// The registry: X(t) for each task, whose file defines `const TaskOps t_ops`. Their order is the
// order of their keys in the schema (task_keys.c) and of the names in task.name's choices.
#define TASKS(X) X(flipflop) X(counting) X(selcopy) X(lm)

#define DECLARE(t) extern const TaskOps t##_ops;
#define ENTRY(t) &t##_ops,
TASKS(DECLARE)
const TaskOps *const task_registry[] = {TASKS(ENTRY) NULL};

// The task named `name`; NULL if none is.
static const TaskOps *find_task(const char *name) {
    for (int i = 0; task_registry[i]; i++)
        if (strcmp(name, task_registry[i]->name) == 0) return task_registry[i];
    return NULL;
}

int task_eval_length(const TaskConfig *tc, int block_size) {
    const TaskOps *ops = find_task(tc->name);
    if (!ops || !ops->default_eval_length) return 0;
    return tc->eval_length > 0 ? tc->eval_length : ops->default_eval_length(tc, block_size);
}

Task *task_create(const TaskConfig *cfg, int block_size, uint64_t seed, char *err, int errlen) {
    if (block_size < 1 || block_size > TASK_MAX_CONTEXT) {
        errf(err, errlen, "model.block_size: %d, expected 1 to %d", block_size, TASK_MAX_CONTEXT);
        return NULL;
    }
    // Also holds task.name to the registry's names (its choices).
    if (config_check_task(cfg, err, errlen) != 0) return NULL;
    const TaskOps *ops = find_task(cfg->name);
    Task *t = calloc(1, sizeof *t);
    if (!t) {
        errf(err, errlen, "task: out of memory");
        return NULL;
    }
    t->ops = ops;
    t->cfg = *cfg;
    t->block_size = block_size;
    t->run_seed = seed;
    t->data_seed = cfg->data_seed >= 0 ? (uint64_t)cfg->data_seed : seed;
    if (strcmp(cfg->loss_on, "auto") == 0)
        t->answer_loss = ops->answer_loss_auto;
    else
        t->answer_loss = strcmp(cfg->loss_on, "answer") == 0;
    if (ops->create(t, err, errlen) != 0) {
        if (ops->destroy) ops->destroy(t);
        free(t);
        return NULL;
    }
    return t;
}

void task_free(Task *t) {
    if (!t) return;
    if (t->ops->destroy) t->ops->destroy(t);
    if (t->skipped.cap_B) batch_free(&t->skipped);
    free(t);
}

int task_vocab_size(const Task *t) { return t->vocab_size; }
int task_max_length(const Task *t) { return t->max_length; }
int task_is_language_model(const Task *t) { return t->is_lm; }
const char *task_token_str(const Task *t, int id) {
    if (id < 0 || id >= t->vocab_size) return "?";
    return t->ops->token_str(t, id);
}

const char *task_token_text(const Task *t, int id, size_t *len) {
    if (id < 0 || id >= t->vocab_size || !t->ops->token_text) return NULL;
    return t->ops->token_text(t, id, len);
}
long task_encode(Task *t, const char *text, size_t len, int *out) {
    return t->ops->encode ? t->ops->encode(t, text, len, out) : -1;
}

void task_next_train(Task *t, Batch *b, int B) { t->ops->next_train(t, b, B); }
// Every task draws a batch row by row from its cursor (a stream's Rng, an epoch sampler), so n
// rows of one are n batches of one: a sequence of a sequential stream (flip-flop, selective copy)
// must be generated to reach the next one in any case; the others copy one row they then drop.
void task_skip_train(Task *t, long n) {
    if (n > 0 && !t->skipped.cap_B) batch_alloc(&t->skipped, 1, t->max_length);
    for (long i = 0; i < n; i++) t->ops->next_train(t, &t->skipped, 1);
}
double task_train_epoch(const Task *t) { return t->ops->train_epoch ? t->ops->train_epoch(t) : -1.0; }

const char *const *task_split_names(const Task *t) { return t->splits; }

static int split_index(const Task *t, const char *split) {
    for (int i = 0; t->splits[i]; i++)
        if (strcmp(t->splits[i], split) == 0) return i;
    return -1;
}

long task_split_size(Task *t, const char *split) {
    int s = split_index(t, split);
    return s < 0 ? -1 : t->ops->split_size(t, s);
}

int task_split_max_length(const Task *t, const char *split) {
    int s = split_index(t, split);
    return s < 0 ? -1 : t->ops->split_max_length(t, s);
}

int task_eval_batch(Task *t, const char *split, long first, Batch *b, int B) {
    int s = split_index(t, split);
    if (s < 0) return -1;
    long n = t->ops->split_size(t, s);
    if (first < 0) first = 0;
    if (first >= n || B <= 0) {
        batch_begin(b, 0, 0);
        return 0;
    }
    if (B > n - first) B = (int)(n - first);
    t->ops->eval_batch(t, s, first, b, B);
    return 0;
}

double task_bytes_per_token(const Task *t, const char *split) {
    int s = split_index(t, split);
    if (s < 0 || !t->ops->bytes_per_token) return -1.0;
    return t->ops->bytes_per_token(t, s);
}

// Cursor layout: "TSK1", the task's name (16 bytes), then the task's own bytes.
#define STATE_HEADER 20
size_t task_state_size(const Task *t) { return STATE_HEADER + t->ops->state_size(t); }

void task_state_save(const Task *t, void *buf) {
    uint8_t *p = buf;
    memset(p, 0, STATE_HEADER);
    memcpy(p, "TSK1", 4);
    strncpy((char *)p + 4, t->ops->name, 15);
    t->ops->state_save(t, p + STATE_HEADER);
}

int task_state_load(Task *t, const void *buf, size_t size) {
    const uint8_t *p = buf;
    if (size != task_state_size(t) || memcmp(p, "TSK1", 4) != 0 || strncmp((const char *)p + 4, t->ops->name, 15) != 0)
        return -1;
    return t->ops->state_load(t, p + STATE_HEADER, size - STATE_HEADER);
}
