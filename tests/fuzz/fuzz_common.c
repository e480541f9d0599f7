// Shared by the fuzz targets: see fuzz.h.
#define _XOPEN_SOURCE 700  // nftw
#include "fuzz.h"

#include <dirent.h>
#include <errno.h>
#include <ftw.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static char dir[64];

static int remove_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw) {
    (void)st, (void)flag, (void)ftw;
    return remove(path);
}

static void remove_tree(const char *path) { nftw(path, remove_entry, 16, FTW_DEPTH | FTW_PHYS); }
static void remove_dir(void) { remove_tree(dir); }

// The folder is named after the process: a crash ends it without atexit, so each start removes the
// folders of processes that are gone.
const char *fuzz_dir(void) {
    if (dir[0]) return dir;
    struct stat st;
    const char *base = stat("/dev/shm", &st) == 0 ? "/dev/shm" : "/tmp";
    DIR *d = opendir(base);
    for (struct dirent *e; d && (e = readdir(d));) {
        long pid;
        char stale[64];
        if (sscanf(e->d_name, "copetrain_fuzz_%ld", &pid) == 1 && kill((pid_t)pid, 0) != 0 && errno == ESRCH) {
            snprintf(stale, sizeof stale, "%s/%s", base, e->d_name);
            remove_tree(stale);
        }
    }
    if (d) closedir(d);
    snprintf(dir, sizeof dir, "%s/copetrain_fuzz_%ld", base, (long)getpid());
    fuzz_require(mkdir(dir, 0700) == 0, dir);
    atexit(remove_dir);
    return dir;
}

const char *fuzz_write(const char *name, const void *data, size_t n) {
    static char path[8][128];
    static const char *names[8];
    int slot = 0;
    while (slot < 7 && names[slot] && strcmp(names[slot], name)) slot++;
    names[slot] = name;
    snprintf(path[slot], sizeof path[slot], "%s/%s", fuzz_dir(), name);
    FILE *f = fopen(path[slot], "wb");
    fuzz_require(f && fwrite(data, 1, n, f) == n && fclose(f) == 0, path[slot]);
    return path[slot];
}

void fuzz_remove(const char *name) {
    char path[128];
    snprintf(path, sizeof path, "%s/%s", fuzz_dir(), name);
    remove(path);
}

void fuzz_require(int cond, const char *what) {
    if (cond) return;
    fprintf(stderr, "fuzz: violated: %s\n", what);
    abort();
}

static void check_batch(const Batch *b, int vocab) {
    fuzz_require(b->B >= 0 && b->B <= b->cap_B && b->T >= 0 && b->T <= b->cap_T, "batch shape within the allocation");
    for (size_t i = 0; i < (size_t)b->B * (size_t)b->T; i++) {
        fuzz_require(b->tokens[i] >= 0 && b->tokens[i] < vocab, "token in the vocabulary");
        fuzz_require(b->targets[i] >= 0 && b->targets[i] < vocab, "target in the vocabulary");
        fuzz_require(b->loss_mask[i] <= 1 && b->metric_mask[i] <= 1 && b->key_pad[i] <= 1, "masks are 0 or 1");
        fuzz_require(!b->key_pad[i] || (!b->loss_mask[i] && !b->metric_mask[i]), "no loss or metric on padding");
    }
}

static int batches_equal(const Batch *a, const Batch *b) {
    size_t n = (size_t)a->B * (size_t)a->T;
    return a->B == b->B && a->T == b->T && !memcmp(a->tokens, b->tokens, n * sizeof(int)) &&
           !memcmp(a->targets, b->targets, n * sizeof(int)) && !memcmp(a->loss_mask, b->loss_mask, n) &&
           !memcmp(a->metric_mask, b->metric_mask, n) && !memcmp(a->key_pad, b->key_pad, n);
}

void fuzz_exercise(Task *t) {
    enum { B = 3, EVAL_ROWS = 16 };
    int vocab = task_vocab_size(t), T = task_max_length(t);
    fuzz_require(vocab >= 2 && T >= 1, "a vocabulary of 2 and a context of 1 at least");
    for (int id = -1; id <= vocab; id++) fuzz_require(task_token_str(t, id) != NULL, "every token has a name");
    char err[256];
    Batch a, b;
    fuzz_require(batch_init(&a, B, T, err, sizeof err) == 0 && batch_init(&b, B, T, err, sizeof err) == 0, err);
    task_next_train(t, &a, B);
    check_batch(&a, vocab);
    size_t size = task_state_size(t);
    void *state = malloc(size);
    fuzz_require(state != NULL, "memory");
    task_state_save(t, state);
    task_next_train(t, &a, B);
    check_batch(&a, vocab);
    fuzz_require(task_state_load(t, state, size) == 0, "a saved cursor loads");
    task_next_train(t, &b, B);
    fuzz_require(batches_equal(&a, &b), "the reloaded cursor gives the same batch");
    free(state);
    task_train_epoch(t);
    batch_free(&a);
    batch_free(&b);

    for (const char *const *s = task_split_names(t); *s; s++) {
        long n = task_split_size(t, *s);
        int L = task_split_max_length(t, *s);
        fuzz_require(n >= 1 && L >= 1, "an evaluation split has a sequence of a position at least");
        fuzz_require(batch_init(&a, 4, L, err, sizeof err) == 0, err);
        for (long first = 0; first < n && first < EVAL_ROWS; first += 4) {
            fuzz_require(task_eval_batch(t, *s, first, &a, 4) == 0, "a named split evaluates");
            fuzz_require(a.B == (n - first < 4 ? n - first : 4), "an evaluation batch has the rows asked for");
            check_batch(&a, vocab);
        }
        double bpt = task_bytes_per_token(t, *s);
        fuzz_require(!task_is_language_model(t) || bpt > 0, "bytes per token");
        batch_free(&a);
    }
}
