// The counting data reader: the input is train.jsonl, and valid.jsonl and test.jsonl are copies of
// it (every line a sample {"context", "question", "answer"} of strings). A loaded set must train and
// evaluate (fuzz_exercise); a refusal must be one line.
#include <stdio.h>
#include <string.h>

#include "fuzz.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    fuzz_write("train.jsonl", data, size);
    fuzz_write("valid.jsonl", data, size);
    fuzz_write("test.jsonl", data, size);
    TaskConfig c;
    task_config_defaults(&c);
    snprintf(c.name, sizeof c.name, "counting");
    snprintf(c.data_dir, sizeof c.data_dir, "%s", fuzz_dir());
    char err[512] = "";
    Task *t = task_create(&c, 48, 3, err, sizeof err);
    if (!t) {
        fuzz_require(err[0] && !strchr(err, '\n'), "a refusal is one line");
        return 0;
    }
    fuzz_exercise(t);
    task_free(t);
    return 0;
}
