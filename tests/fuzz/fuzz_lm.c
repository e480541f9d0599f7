// The language-model text readers and tokenizers. The input: byte 0 picks the tokenizer (byte or
// word), the sampling (random or sequential), the source (one text_file cut by fractions, or
// data_dir with the text as train, valid and test) and text_file's fractions; byte 1
// task.eval_length (0 or 1 to 15); byte 2 model.block_size (1 to 8) and the word tokenizer's
// min_count and max_vocab. The rest is the text. A created task must train and evaluate (fuzz_exercise); a refusal is one line.
#include <stdio.h>
#include <string.h>

#include "fuzz.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size < 3) return 0;
    TaskConfig c;
    task_config_defaults(&c);
    snprintf(c.name, sizeof c.name, "lm");
    snprintf(c.tokenizer, sizeof c.tokenizer, "%s", data[0] & 1 ? "word" : "byte");
    snprintf(c.sampling, sizeof c.sampling, "%s", data[0] & 2 ? "sequential" : "random");
    c.eval_length = data[1] % 16;
    int block = 1 + data[2] % 8;
    if (data[0] & 1) {
        c.min_count = 1 + (data[2] >> 3) % 3;
        c.max_vocab = (data[2] >> 5) % 2 ? 0 : 2 + (data[2] >> 6);
    }
    const char *text = (const char *)data + 3;
    size_t n = size - 3;
    if (data[0] & 4) {
        static const double shares[4] = {0, 0.05, 0.25, 0.5};
        c.valid_fraction = shares[(data[0] >> 3) & 3];
        c.test_fraction = shares[(data[0] >> 5) & 3];
        snprintf(c.text_file, sizeof c.text_file, "%s", fuzz_write("text.txt", text, n));
    } else {
        fuzz_write("train.txt", text, n);
        fuzz_write("valid.txt", text, n);
        fuzz_write("test.txt", text, n);
        snprintf(c.data_dir, sizeof c.data_dir, "%s", fuzz_dir());
    }
    char err[512] = "";
    Task *t = task_create(&c, block, 5, err, sizeof err);
    if (!t) {
        fuzz_require(err[0] && !strchr(err, '\n'), "a refusal is one line");
        return 0;
    }
    fuzz_exercise(t);
    task_free(t);
    return 0;
}
