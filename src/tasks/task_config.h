// The "task" section of a config, as plain data: config.h holds it in Config, and the tasks read it.
#ifndef TASK_CONFIG_H
#define TASK_CONFIG_H

#define TASK_STR 256
#define TASK_CHOICE 32

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
    char tokenizer[TASK_CHOICE];   // byte | word | gpt2 | bpe
    int min_count;           // word: rarer training words become <unk>
    int max_vocab;           // word: keep the most frequent (0 = all)
    char bpe_dir[TASK_STR];  // gpt2: the folder of encoder.json and vocab.bpe
    int vocab_size;          // bpe: ids in all, the 256 bytes included
    char cache_dir[TASK_STR];// gpt2, bpe: tokenised texts and trained tokenizers ("" = none)
    char train_file[TASK_STR], valid_file[TASK_STR], test_file[TASK_STR];  // under data_dir
    char text_file[TASK_STR];      // one file split by fractions instead of data_dir
    double valid_fraction, test_fraction;
    char sampling[TASK_CHOICE];    // random | sequential (training windows)
} TaskConfig;

// Fills every field with its schema default (the same values config.c would give).
void task_config_defaults(TaskConfig *cfg);

#endif
