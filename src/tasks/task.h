// The task interface: a seeded, resumable stream of training batches, deterministic evaluation
// splits, and the vocabulary. One file per task (flipflop.c, counting.c, selcopy.c, lm.c); task.c
// holds the registry, task_keys.c the schema of the "task" config section (task_config_keys), which
// documents every key of TaskConfig (task_config.h).
//
// Seeds: the data (a counting data set, the evaluation splits) comes from task.data_seed, or from
// the run seed when it is -1; the order of training (shuffling, fresh sequences of an endless
// stream) always comes from the run seed. So runs with several seeds can share one data set.
#ifndef TASK_H
#define TASK_H

#include <stddef.h>
#include <stdint.h>

#include "batch.h"
#include "tasks/task_config.h"

typedef struct Task Task;

// The length of tc's evaluation sequences at model context block_size: task.eval_length, or the
// task's default for it (flipflop: task.length; lm: block_size); 0 for a task without an evaluation
// length (task.eval_length does not apply to it; its splits have lengths of their own).
int task_eval_length(const TaskConfig *tc, int block_size);

// Holds cfg to the config schema first (config_check_task), so a TaskConfig filled in code gets the
// same ranges as a config file. Returns NULL with one line in err naming the key or file.
Task *task_create(const TaskConfig *cfg, int block_size, uint64_t seed, char *err, int errlen);
void task_free(Task *t);

int task_vocab_size(const Task *t);
int task_max_length(const Task *t);  // the longest T its training batches have (counting: of any split)
int task_is_language_model(const Task *t);  // metrics: perplexity (and bits per byte) instead of error
const char *task_token_str(const Task *t, int id);  // printable name of a token ("?" if out of range)
// Language models whose tokens stand for bytes of text (the byte and BPE tokenizers): the bytes of
// token id (*len of them; NULL when the task has no such tokens or id is out of range), and text
// tokenized as the task tokenizes its data: the number of tokens, written to out unless it is NULL
// (-1 when the task has no such tokenizer).
const char *task_token_text(const Task *t, int id, size_t *len);
long task_encode(Task *t, const char *text, size_t len, int *out);

// Training stream: fills b with B sequences (B ≤ b->cap_B) and advances the cursor. Finite
// training sets run epoch after epoch, reshuffled each epoch; a batch may span two epochs.
void task_next_train(Task *t, Batch *b, int B);
// Advances the training stream past n sequences exactly as task_next_train would, keeping none: a
// rank of a data-parallel job steps over the other ranks' shares of each batch (src/dist.h).
void task_skip_train(Task *t, long n);
// Epochs of a finite training set done so far (fractional); -1 for endless streams.
double task_train_epoch(const Task *t);

// Evaluation splits by name ("valid", "test", task-specific OOD splits). task_split_size gives the
// number of sequences (-1: unknown split); task_eval_batch fills sequences [first, first+B) of the
// split (fewer at the end: b->B says how many), identically every time it is asked, and returns
// 0 (-1: unknown split). task_split_max_length is the longest T of the split's batches: allocate
// evaluation batches with it, as it may exceed task_max_length (OOD splits are longer).
const char *const *task_split_names(const Task *t);  // NULL-terminated
long task_split_size(Task *t, const char *split);
int task_split_max_length(const Task *t, const char *split);
int task_eval_batch(Task *t, const char *split, long first, Batch *b, int B);
// Language models: bytes of text per token in the split (1 for byte-level), for bits per byte.
double task_bytes_per_token(const Task *t, const char *split);

// The training-stream cursor, saved in checkpoints so resume is exact.
size_t task_state_size(const Task *t);
void task_state_save(const Task *t, void *buf);
int task_state_load(Task *t, const void *buf, size_t size);

#endif
