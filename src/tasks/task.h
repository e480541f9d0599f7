// The task interface: a seeded, resumable stream of training batches, deterministic evaluation
// splits, and the vocabulary. One file per task (flipflop.c, counting.c, selcopy.c, lm.c); task.c
// holds the registry, the shared batch helpers and the schema of the "task" config section
// (task_config_keys), which documents every key below.
//
// Seeds: the data (a counting data set, the evaluation splits) comes from task.data_seed, or from
// the run seed when it is -1; the order of training (shuffling, fresh sequences of an endless
// stream) always comes from the run seed. So runs with several seeds can share one data set.
#ifndef TASK_H
#define TASK_H

#include <stddef.h>
#include <stdint.h>

#define TASK_STR 256
#define TASK_CHOICE 32
// The longest context of any batch: model.block_size's maximum, and task.eval_length's.
#define TASK_MAX_CONTEXT 1048576

// The "task" section of a config. Every task reads the keys it knows; config.c refuses keys that
// the chosen task does not use (see task_config_keys). KEY_CHOICE fields are char[TASK_CHOICE],
// KEY_STRING fields char[TASK_STR].
typedef struct {
    char name[TASK_CHOICE];    // flipflop | counting | selcopy | lm
    char loss_on[TASK_CHOICE]; // auto | all | answer : loss on every next token or only on the task's
                               // answer tokens; auto = answer for counting and selcopy, all otherwise
    // flip-flop (FFL(p): p = probability of an ignore instruction)
    int length;              // tokens per sequence (instruction-bit pairs ×2)
    double p_ignore;         // training distribution, FFL(0.8) by default
    int eval_sequences;      // sequences per evaluation split (flipflop, selcopy)
    char data_dir[TASK_STR]; // optional: load files instead of generating
    // shared
    int data_seed;           // -1: the run seed
    char write_dir[TASK_STR];// write the generated data here at creation ("" = no)
    int eval_length;         // flipflop: tokens per eval sequence (0 = length); lm: eval window (0 = block_size)
    int train_sequences;     // flipflop, selcopy: 0 = endless fresh stream; N = a fixed set, shuffled per epoch
    // flip-flop OOD splits
    double p_sparse;         // "sparse" split: FFL(0.98)
    double p_dense;          // "dense" split: FFL(0.1)
    // counting (official scripts/count_data_gen.py)
    int nvars;
    int max_steps;
    int n_train, n_valid, n_test;
    // selective copy
    int n_tokens;            // tokens to copy
    int alphabet;            // distinct data tokens (vocabulary = alphabet + 2: blank, marker)
    int n_blanks;            // blanks in training and valid/test sequences
    int dense_blanks;        // "dense" split
    int sparse_blanks;       // "sparse" split
    char copy_format[TASK_CHOICE]; // lm | mamba
    // language modelling
    char tokenizer[TASK_CHOICE];   // byte | word
    int min_count;           // word: rarer training words become <unk>
    int max_vocab;           // word: keep the most frequent (0 = all)
    char train_file[TASK_STR], valid_file[TASK_STR], test_file[TASK_STR];  // under data_dir
    char text_file[TASK_STR];      // one file split by fractions instead of data_dir
    double valid_fraction, test_fraction;
    char sampling[TASK_CHOICE];    // random | sequential (training windows)
} TaskConfig;

// Fills every field with its schema default (the same values config.c would give).
void task_config_defaults(TaskConfig *cfg);

// One batch, allocated by the caller for at most B sequences of at most T positions. The filled
// part is laid out densely as (B,T) with the filled B and T (row r, position t at r*T + t).
typedef struct {
    int B, T;              // sequences and positions actually filled
    int *tokens;           // (B,T) model inputs
    int *targets;          // (B,T) next-token targets
    uint8_t *loss_mask;    // (B,T) 1 where the loss counts
    uint8_t *metric_mask;  // (B,T) 1 where the task's error metric counts
    uint8_t *key_pad;      // (B,T) 1 at padding positions (never attended to as keys)
    long *rows;            // (cap_B) the task's scratch while filling: which stored sequence each row is
    int cap_B, cap_T;      // what batch_alloc allocated
} Batch;

// Allocates b for B sequences (1 ≤ B) of T positions (1 ≤ T ≤ TASK_MAX_CONTEXT). Returns 0, or -1
// with err naming the batch's shape and what failed.
int batch_init(Batch *b, int B, int T, char *err, int errlen);
// batch_init for the programs: on failure prints its message to stderr and exits with status 1.
void batch_alloc(Batch *b, int B, int T);
void batch_free(Batch *b);

typedef struct Task Task;

// Holds cfg to the config schema first (config_check_task), so a TaskConfig filled in code gets the
// same ranges as a config file. Returns NULL with one line in err naming the key or file.
Task *task_create(const TaskConfig *cfg, int block_size, uint64_t seed, char *err, int errlen);
void task_free(Task *t);

int task_vocab_size(const Task *t);
int task_max_length(const Task *t);  // the longest T its training batches have (counting: of any split)
int task_is_language_model(const Task *t);  // metrics: perplexity (and bits per byte) instead of error
const char *task_token_str(const Task *t, int id);  // printable name of a token ("?" if out of range)

// Training stream: fills b with B sequences (B ≤ b->cap_B) and advances the cursor. Finite
// training sets run epoch after epoch, reshuffled each epoch; a batch may span two epochs.
void task_next_train(Task *t, Batch *b, int B);
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
