// The checkpoint reader (checkpoint_read) and what is read from a checkpoint: the sections each of
// run.c's readers asks for (the config and train state for ./eval and --resume, the parameters and
// Adam moments at a fixed size, the task cursor at any size), then the config text through
// config_from_json and the cursor through task_state_load of every kind of task. A cursor that
// loads must give training batches (fuzz_exercise checks them).
//
// The input is byte 0, then the file. A mutation almost never keeps a section's CRC right, which
// would leave everything behind the CRC check unfuzzed: when byte 0 is odd, the CRC of every
// section whose header lies within the file is recomputed before the file is written.
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

#include "checkpoint.h"
#include "config.h"
#include "fuzz.h"
#include "run.h"

enum { PARAM_BYTES = 64, N_TASKS = 6 };

// One task of each cursor layout: flip-flop and selective copy with an endless stream and with a
// fixed set, counting, and a language model (random windows; its cursor also holds the position).
static Task **tasks(void) {
    static Task *t[N_TASKS];
    if (t[0]) return t;
    TaskConfig c[N_TASKS];
    for (int i = 0; i < N_TASKS; i++) task_config_defaults(&c[i]);
    c[0].length = 16;
    c[1].length = 16;
    c[1].train_sequences = 5;
    for (int i = 2; i < 4; i++) {
        snprintf(c[i].name, sizeof c[i].name, "selcopy");
        c[i].n_blanks = 4;
        c[i].n_tokens = 2;
    }
    c[3].train_sequences = 3;
    snprintf(c[4].name, sizeof c[4].name, "counting");
    c[4].n_train = 5;
    c[4].n_valid = c[4].n_test = 2;
    c[4].max_steps = 5;
    snprintf(c[5].name, sizeof c[5].name, "lm");
    static const char text[] = "some text to model,\nlong enough\nfor a few windows\nof it, cut\ninto train,\n"
                               "valid\nand test\nat line ends:\nthe valid and\ntest shares\nare 25% each\n";
    c[5].valid_fraction = c[5].test_fraction = 0.25;
    snprintf(c[5].text_file, sizeof c[5].text_file, "%s", fuzz_write("lm.txt", text, sizeof text - 1));
    char err[512];
    for (int i = 0; i < N_TASKS; i++) {
        t[i] = task_create(&c[i], 16, 1, err, sizeof err);
        fuzz_require(t[i] != NULL, err);
    }
    return t;
}

static uint64_t get_le(const uint8_t *p, int n) {
    uint64_t v = 0;
    for (int i = 0; i < n; i++) v |= (uint64_t)p[i] << (8 * i);
    return v;
}

// Walks the layout (magic, version, count, then length, name, size, CRC, payload per section) as far
// as it lies within the file, writing each payload's CRC.
static void fix_crcs(uint8_t *f, size_t n) {
    size_t pos = 16;
    while (pos + 4 <= n) {
        uint64_t len = get_le(f + pos, 4);
        if (len > n - pos - 4 || n - pos - 4 - len < 12) return;
        pos += 4 + len;
        uint64_t size = get_le(f + pos, 8);
        if (size > n - pos - 12) return;
        uint32_t crc = (uint32_t)crc32(0L, f + pos + 12, (uInt)size);
        for (int i = 0; i < 4; i++) f[pos + 8 + i] = (uint8_t)(crc >> (8 * i));
        pos += 12 + size;
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size < 1) return 0;
    Task **t = tasks();
    uint8_t *file = malloc(size);
    fuzz_require(file != NULL, "memory");
    memcpy(file, data + 1, size - 1);
    if (data[0] & 1) fix_crcs(file, size - 1);
    const char *path = fuzz_write("ckpt.bin", file, size - 1);
    free(file);
    char err[1024] = "";

    TrainState st;
    CkptSection head[2] = {{"config", NULL, 0}, {"train_state", &st, sizeof st}};
    if (checkpoint_read(path, head, 2, err, sizeof err) == 0) {
        Config cfg;
        if (config_from_json(&cfg, head[0].data, path, err, sizeof err) == 0) {
            char *json = config_to_json(&cfg);
            Config again;
            fuzz_require(json && config_from_json(&again, json, "round trip", err, sizeof err) == 0, err);
            fuzz_require(!memcmp(&cfg, &again, sizeof cfg), "the config survives the round trip");
            free(json);
        } else {
            fuzz_require(err[0] && !strchr(err, '\n'), "a refusal is one line");
        }
        free(head[0].data);
    } else {
        // Not "one line" (yet): checkpoint_read quotes section names as they are in the file, newlines
        // included (corpus/checkpoint/crash_name_newline).
        fuzz_require(strstr(err, path) && head[0].data == NULL, "a refusal names the file and frees");
    }

    static uint8_t params[3][PARAM_BYTES];
    CkptSection all[5] = {{"params", params[0], PARAM_BYTES},
                          {"adam_m", params[1], PARAM_BYTES},
                          {"adam_v", params[2], PARAM_BYTES},
                          {"train_state", &st, sizeof st},
                          {"task_state", NULL, 0}};
    if (checkpoint_read(path, all, 5, err, sizeof err) == 0) {
        for (int i = 0; i < N_TASKS; i++)
            if (task_state_load(t[i], all[4].data, all[4].size) == 0) fuzz_exercise(t[i]);
        free(all[4].data);
    } else {
        fuzz_require(strstr(err, path) && all[4].data == NULL, "a refusal names the file and frees");
    }
    return 0;
}
