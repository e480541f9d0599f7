// The task interface: a seeded, resumable stream of training batches, deterministic evaluation
// splits, and the vocabulary. One file per task (flipflop.c, counting.c, selcopy.c, lm.c); task.c
// holds the registry and the shared batch helpers.
#ifndef TASK_H
#define TASK_H

#include <stddef.h>
#include <stdint.h>

#define TASK_STR 256

// The "task" section of a config. Every task reads the keys it knows; config.c refuses keys that
// the chosen task does not use (see task_config_keys).
typedef struct {
    char name[32];           // flipflop | counting | selcopy | lm
    char loss_on[32];        // all | answer : loss on every next token or only on the task's answer tokens
    // flip-flop (FFL(p): p = probability of an ignore instruction)
    int length;              // tokens per sequence (instruction-bit pairs ×2)
    double p_ignore;         // training distribution, FFL(0.8) by default
    int eval_sequences;      // sequences per evaluation split
    char data_dir[TASK_STR]; // optional: load files instead of generating
} TaskConfig;

// One batch, allocated by the caller for at most B sequences of at most T positions.
typedef struct {
    int B, T;              // sequences and positions actually filled
    int *tokens;           // (B,T) model inputs
    int *targets;          // (B,T) next-token targets
    uint8_t *loss_mask;    // (B,T) 1 where the loss counts
    uint8_t *metric_mask;  // (B,T) 1 where the task's error metric counts
    uint8_t *key_pad;      // (B,T) 1 at padding positions (never attended to as keys)
} Batch;

void batch_alloc(Batch *b, int B, int T);
void batch_free(Batch *b);

typedef struct Task Task;

Task *task_create(const TaskConfig *cfg, int block_size, uint64_t seed, char *err, int errlen);
void task_free(Task *t);

int task_vocab_size(const Task *t);
int task_max_length(const Task *t);  // the longest T its training batches have
int task_is_language_model(const Task *t);  // metrics: perplexity (and bits per byte) instead of error

// Training stream: fills b with b->B sequences and advances the cursor.
void task_next_train(Task *t, Batch *b, int B);

// Evaluation splits by name ("valid", "test", task-specific OOD splits). task_split_size gives the
// number of sequences (-1: unknown split); task_eval_batch fills sequences [first, first+B) of the
// split (fewer at the end), identically every time it is asked.
const char *const *task_split_names(const Task *t);  // NULL-terminated
long task_split_size(Task *t, const char *split);
int task_eval_batch(Task *t, const char *split, long first, Batch *b, int B);

// The training-stream cursor, saved in checkpoints so resume is exact.
size_t task_state_size(const Task *t);
void task_state_save(const Task *t, void *buf);
int task_state_load(Task *t, const void *buf, size_t size);

#endif
