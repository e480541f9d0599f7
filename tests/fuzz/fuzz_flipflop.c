// The flip-flop data reader (task.data_dir). The input: byte 0 picks task.length (4 to 18), byte 1
// task.eval_length (0, or 4 to 18), byte 2 whether the rest is train.txt alone or is cut in half
// into train.txt and valid.txt. A loaded set must train and evaluate (fuzz_exercise), and written
// back out with task.write_dir and loaded again it must give the same batches.
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz.h"

static Task *load(const TaskConfig *c, char *err, int errlen) { return task_create(c, 32, 7, err, errlen); }

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size < 3) return 0;
    TaskConfig c;
    task_config_defaults(&c);
    c.length = 4 + 2 * (data[0] % 8);
    c.eval_length = data[1] % 9 == 0 ? 0 : 4 + 2 * (data[1] % 8);
    c.eval_sequences = 5;
    const char *body = (const char *)data + 3;
    size_t n = size - 3, cut = data[2] & 1 ? n / 2 : n;
    fuzz_write("train.txt", body, cut);
    if (cut < n)
        fuzz_write("valid.txt", body + cut, n - cut);
    else
        fuzz_remove("valid.txt");
    snprintf(c.data_dir, sizeof c.data_dir, "%s", fuzz_dir());
    char err[512] = "";
    Task *t = load(&c, err, sizeof err);
    if (!t) {
        fuzz_require(err[0] && !strchr(err, '\n'), "a refusal is one line");
        return 0;
    }
    fuzz_exercise(t);
    task_free(t);

    // write_dir: the loaded data goes out in the format data_dir reads, and back in unchanged.
    char out[160];
    snprintf(out, sizeof out, "%s/out", fuzz_dir());
    snprintf(c.write_dir, sizeof c.write_dir, "%s", out);
    t = load(&c, err, sizeof err);
    fuzz_require(t != NULL, err);
    TaskConfig d = c;
    d.write_dir[0] = 0;
    snprintf(d.data_dir, sizeof d.data_dir, "%s", out);
    Task *u = load(&d, err, sizeof err);
    fuzz_require(u != NULL, err);
    Batch a, b;
    fuzz_require(batch_init(&a, 4, 32, err, sizeof err) == 0 && batch_init(&b, 4, 32, err, sizeof err) == 0, err);
    for (int k = 0; k < 3; k++) {
        task_next_train(t, &a, 4);
        task_next_train(u, &b, 4);
        fuzz_require(a.B == b.B && a.T == b.T && !memcmp(a.tokens, b.tokens, sizeof(int) * (size_t)a.B * a.T) &&
                         !memcmp(a.loss_mask, b.loss_mask, (size_t)a.B * a.T),
                     "written and loaded again, the training batches are the same");
    }
    for (const char *const *s = task_split_names(t); *s; s++) {
        task_eval_batch(t, *s, 0, &a, 4);
        task_eval_batch(u, *s, 0, &b, 4);
        fuzz_require(a.B == b.B && a.T == b.T && !memcmp(a.tokens, b.tokens, sizeof(int) * (size_t)a.B * a.T),
                     "written and loaded again, the evaluation batches are the same");
    }
    batch_free(&a);
    batch_free(&b);
    task_free(t);
    task_free(u);
    return 0;
}
