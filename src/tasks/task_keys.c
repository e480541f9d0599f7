// The "task" config section's schema (task_config_keys), its defaults, and the refusal of keys a
// setting leaves unused.
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config.h"
#include "error.h"
#include "tasks/task_impl.h"

// Schema. Defaults are JSON text; task_config_defaults parses them, so this table is the only
// place a default is written. [UNKNOWN] marks a choice the paper does not specify.

#define TK(field) offsetof(Config, task.field)
#define BIG 2147483647.0

static const ConfigKey task_keys[] = {
    {"task", "name", KEY_CHOICE, TK(name), 0, 0, "flipflop|counting|selcopy|lm", "\"flipflop\"", 0, NULL,
     "the task: flip-flop language modelling, counting, selective copy, or language modelling on text"},
    {"task", "loss_on", KEY_CHOICE, TK(loss_on), 0, 0, "auto|all|answer", "\"auto\"", 0, NULL,
     "tokens the loss counts: all next tokens, or only the answer tokens (flip-flop: the bits after r; "
     "counting: the value; selcopy: the copied tokens); auto = answer for counting (official --train-on "
     "answer) and selcopy, all for flipflop and lm"},
    {"task", "data_seed", KEY_INT, TK(data_seed), -1, BIG, NULL, "-1", 0, NULL,
     "seed of the data (counting data sets, evaluation splits); -1 = the run seed. Training order "
     "always follows the run seed"},
    {"task", "data_dir", KEY_STRING, TK(data_dir), 0, 0, NULL, "\"\"", 0, "flipflop|counting|lm",
     "load data from this folder instead of generating it (see data/README.md): flipflop train.txt "
     "(+ optional valid/test/sparse/dense.txt), counting train/valid/test.jsonl (official format), lm "
     "train_file/valid_file/test_file"},
    {"task", "write_dir", KEY_STRING, TK(write_dir), 0, 0, NULL, "\"\"", 1, "flipflop|counting",
     "write the generated data to this folder at start-up, in the format data_dir loads"},
    {"task", "eval_sequences", KEY_INT, TK(eval_sequences), 1, BIG, NULL, "1000", 1, "flipflop|selcopy",
     "sequences in each generated evaluation split [UNKNOWN: the flip-flop release has 16k val, 160k "
     "sparse, 4k dense]"},
    {"task", "eval_length", KEY_INT, TK(eval_length), 0, TASK_MAX_CONTEXT, NULL, "0", 1, "flipflop|lm",
     "flipflop: tokens per evaluation sequence (0 = task.length); lm: evaluation window in tokens (0 = "
     "model.block_size; longer windows test length generalisation)"},
    {"task", "train_sequences", KEY_INT, TK(train_sequences), 0, BIG, NULL, "0", 0, "flipflop|selcopy",
     "0 = train on an endless stream of fresh sequences; N = on a fixed set of N generated sequences, "
     "reshuffled every epoch"},
    // flip-flop
    {"task", "length", KEY_INT, TK(length), 4, BIG, NULL, "512", 0, "flipflop",
     "tokens per flip-flop sequence (even: instruction-bit pairs); T = length - 1 [Liu et al.: 512]"},
    {"task", "p_ignore", KEY_REAL, TK(p_ignore), 0, 0.999999, NULL, "0.8", 0, "flipflop",
     "training distribution FFL(p_ignore): ignore with p_ignore, write and read with (1-p_ignore)/2 each; "
     "also the valid and test splits"},
    {"task", "p_sparse", KEY_REAL, TK(p_sparse), 0, 0.999999, NULL, "0.98", 1, "flipflop",
     "the OOD \"sparse\" split FFL(p_sparse) (long write-to-read gaps) [UNKNOWN whether the CoPE paper's OOD "
     "is exactly 0.98]"},
    {"task", "p_dense", KEY_REAL, TK(p_dense), 0, 0.999999, NULL, "0.1", 1, "flipflop",
     "the OOD \"dense\" split FFL(p_dense) (short gaps; not in the CoPE paper's table)"},
    // counting
    {"task", "nvars", KEY_INT, TK(nvars), 1, 26, NULL, "3", 0, "counting",
     "variables a, b, ... (official --nvars; the paper: 1, 3, 5)"},
    {"task", "max_steps", KEY_INT, TK(max_steps), 3, 1000000, NULL, "512", 0, "counting",
     "context statements per sample: uniform in [3, max_steps] (official --max-steps)"},
    {"task", "n_train", KEY_INT, TK(n_train), 1, BIG, NULL, "10000", 0, "counting",
     "training samples (official --ntrain)"},
    {"task", "n_valid", KEY_INT, TK(n_valid), 1, BIG, NULL, "1000", 0, "counting",
     "validation samples (official --ntest)"},
    {"task", "n_test", KEY_INT, TK(n_test), 1, BIG, NULL, "1000", 0, "counting", "test samples (official --ntest)"},
    // selective copy
    {"task", "n_tokens", KEY_INT, TK(n_tokens), 1, 100000, NULL, "16", 0, "selcopy",
     "data tokens to copy [UNKNOWN: Mamba's 16]"},
    {"task", "alphabet", KEY_INT, TK(alphabet), 1, 250, NULL, "14", 0, "selcopy",
     "distinct data tokens; vocabulary = alphabet + 2 (blank 0, marker alphabet+1), so 14 gives Mamba's "
     "vocabulary of 16 [UNKNOWN]"},
    {"task", "n_blanks", KEY_INT, TK(n_blanks), 0, 10000000, NULL, "256", 0, "selcopy",
     "blanks per training, valid and test sequence (the paper: 256)"},
    {"task", "dense_blanks", KEY_INT, TK(dense_blanks), 0, 10000000, NULL, "128", 1, "selcopy",
     "blanks per sequence of the OOD \"dense\" split (the paper: 128)"},
    {"task", "sparse_blanks", KEY_INT, TK(sparse_blanks), 0, 10000000, NULL, "512", 1, "selcopy",
     "blanks per sequence of the OOD \"sparse\" split (the paper: 512)"},
    {"task", "copy_format", KEY_CHOICE, TK(copy_format), 0, 0, "lm|mamba", "\"lm\"", 0, "selcopy",
     "lm: content, one marker, then the copied tokens as next-token targets (teacher forcing, like the "
     "official counting collator); mamba: content then n_tokens markers, the k-th marker's target is the "
     "k-th token (state-spaces torch_copying_data) [UNKNOWN which the paper used]"},
    // language modelling
    {"task", "tokenizer", KEY_CHOICE, TK(tokenizer), 0, 0, "byte|word", "\"byte\"", 0, "lm",
     "byte: the 256 byte values; word: whitespace-separated words of the training text, <unk> and <eos> "
     "(end of line) [UNKNOWN: the paper presumably used GPT-2 BPE]"},
    {"task", "min_count", KEY_INT, TK(min_count), 1, BIG, NULL, "1", 0, "lm",
     "word: words seen fewer times in the training text become <unk>"},
    {"task", "max_vocab", KEY_INT, TK(max_vocab), 0, BIG, NULL, "0", 0, "lm",
     "word: keep only the most frequent words (0 = all)"},
    {"task", "train_file", KEY_STRING, TK(train_file), 0, 0, NULL, "\"train.txt\"", 0, "lm",
     "training text, under data_dir"},
    {"task", "valid_file", KEY_STRING, TK(valid_file), 0, 0, NULL, "\"valid.txt\"", 1, "lm",
     "validation text, under data_dir"},
    {"task", "test_file", KEY_STRING, TK(test_file), 0, 0, NULL, "\"test.txt\"", 1, "lm", "test text, under data_dir"},
    {"task", "text_file", KEY_STRING, TK(text_file), 0, 0, NULL, "\"\"", 0, "lm",
     "one text file cut into train, valid and test (in that order) by valid_fraction and "
     "test_fraction, instead of data_dir (a share of 0 leaves that split out)"},
    {"task", "valid_fraction", KEY_REAL, TK(valid_fraction), 0, 0.5, NULL, "0.05", 0, "lm",
     "text_file: share of its bytes for valid (cut at the next line end)"},
    {"task", "test_fraction", KEY_REAL, TK(test_fraction), 0, 0.5, NULL, "0.05", 0, "lm",
     "text_file: share of its bytes for test, the end of the file (cut at the next line end)"},
    {"task", "sampling", KEY_CHOICE, TK(sampling), 0, 0, "random|sequential", "\"random\"", 0, "lm",
     "training windows of block_size+1 tokens: random = uniform random offsets; sequential = consecutive "
     "windows (stride block_size), wrapping at the end"},
};

const ConfigKey *task_config_keys(int *n) {
    *n = (int)(sizeof task_keys / sizeof task_keys[0]);
    return task_keys;
}

void task_config_defaults(TaskConfig *tc) {
    Config c;
    memset(&c, 0, sizeof c);
    int n;
    const ConfigKey *k = task_config_keys(&n);
    for (int i = 0; i < n; i++) {
        char *p = (char *)&c + k[i].offset;
        const char *d = k[i].def;
        switch (k[i].type) {
        case KEY_INT:
        case KEY_BOOL:
            *(int *)p = strcmp(d, "true") == 0 ? 1 : strcmp(d, "false") == 0 ? 0 : (int)strtol(d, NULL, 10);
            break;
        case KEY_REAL: *(double *)p = strtod(d, NULL); break;
        case KEY_STRING:
        case KEY_CHOICE: {
            size_t len = strlen(d) - 2;  // without the quotes
            memcpy(p, d + 1, len);
            p[len] = 0;
            break;
        }
        }
    }
    *tc = c.task;
}

int task_refuse_unused(const TaskConfig *c, const char *keys, const char *why, char *err, int errlen) {
    TaskConfig d;
    task_config_defaults(&d);
    int n;
    const ConfigKey *keys_all = task_config_keys(&n);
    for (const char *p = keys; *p;) {
        size_t len = strcspn(p, "|");
        const ConfigKey *k = keys_all;
        while (k < keys_all + n && (strlen(k->name) != len || strncmp(k->name, p, len))) k++;
        if (k == keys_all + n) return errf(err, errlen, "task: no key \"%.*s\" (task_refuse_unused)", (int)len, p);
        size_t o = k->offset - offsetof(Config, task);
        const char *v = (const char *)c + o, *dv = (const char *)&d + o;
        char val[TASK_STR + 8];
        int same;
        switch (k->type) {
        case KEY_REAL:
            same = *(const double *)v == *(const double *)dv;
            snprintf(val, sizeof val, "%g", *(const double *)v);
            break;
        case KEY_STRING:
        case KEY_CHOICE:
            same = !strcmp(v, dv);
            snprintf(val, sizeof val, "\"%s\"", v);
            break;
        default:
            same = *(const int *)v == *(const int *)dv;
            snprintf(val, sizeof val, "%d", *(const int *)v);
        }
        if (!same) return errf(err, errlen, "task.%s: %s %s; leave it out", k->name, val, why);
        p += len + (p[len] == '|');
    }
    return 0;
}
