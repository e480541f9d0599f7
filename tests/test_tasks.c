// Tasks: generators' statistics against their definitions, batch layout and masks, deterministic
// evaluation splits, cursor save/load, file round trips and refusal of bad files.
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <signal.h>
#include <sys/wait.h>
#include <sys/stat.h>
#include <unistd.h>

#include "check.h"
#include "tasks/task.h"

static char tmpdir[128];

static TaskConfig cfg_for(const char *name) {
    TaskConfig c;
    task_config_defaults(&c);
    snprintf(c.name, sizeof c.name, "%s", name);
    return c;
}

static Task *make(const TaskConfig *c, int block_size, uint64_t seed) {
    char err[512] = "";
    Task *t = task_create(c, block_size, seed, err, sizeof err);
    CHECK(t != NULL, "task_create(%s) failed: %s", c->name, err);
    return t;
}

// Expects task_create to fail with a message containing every one of the given fragments.
static void expect_refused(const TaskConfig *c, int block_size, const char *frag1, const char *frag2) {
    char err[512] = "";
    Task *t = task_create(c, block_size, 1, err, sizeof err);
    CHECK(t == NULL, "task_create accepted a bad setup (wanted an error with \"%s\")", frag1);
    task_free(t);
    CHECK(strstr(err, frag1) != NULL, "error \"%s\" lacks \"%s\"", err, frag1);
    if (frag2) CHECK(strstr(err, frag2) != NULL, "error \"%s\" lacks \"%s\"", err, frag2);
    printf("     refused: %s\n", err);
}

static int batches_equal(const Batch *a, const Batch *b) {
    if (a->B != b->B || a->T != b->T) return 0;
    size_t n = (size_t)a->B * a->T;
    return memcmp(a->tokens, b->tokens, n * sizeof(int)) == 0 && memcmp(a->targets, b->targets, n * sizeof(int)) == 0 &&
           memcmp(a->loss_mask, b->loss_mask, n) == 0 && memcmp(a->metric_mask, b->metric_mask, n) == 0 &&
           memcmp(a->key_pad, b->key_pad, n) == 0;
}

// Copies row r of a batch into a standalone one-row batch (for comparing rows across batch sizes).
static int rows_equal(const Batch *a, int ra, const Batch *b, int rb) {
    if (a->T != b->T) return 0;
    size_t T = (size_t)a->T, oa = (size_t)ra * T, ob = (size_t)rb * T;
    return memcmp(a->tokens + oa, b->tokens + ob, T * sizeof(int)) == 0 &&
           memcmp(a->targets + oa, b->targets + ob, T * sizeof(int)) == 0 &&
           memcmp(a->loss_mask + oa, b->loss_mask + ob, T) == 0 && memcmp(a->metric_mask + oa, b->metric_mask + ob, T) == 0 &&
           memcmp(a->key_pad + oa, b->key_pad + ob, T) == 0;
}

static void write_text(const char *path, const char *text) {
    FILE *f = fopen(path, "w");
    if (!f) {
        perror(path);
        exit(1);
    }
    fputs(text, f);
    fclose(f);
}

static void path_in(char *out, size_t n, const char *sub) { snprintf(out, n, "%s/%s", tmpdir, sub); }

// Writes n bytes (NUL bytes included) to path.
static void write_bytes(const char *path, const char *bytes, size_t n) {
    FILE *f = fopen(path, "wb");
    if (!f || fwrite(bytes, 1, n, f) != n) {
        perror(path);
        exit(1);
    }
    fclose(f);
}

// A fresh folder <tmpdir>/<sub> into out.
static void fresh_dir(char *out, size_t n, const char *sub) {
    path_in(out, n, sub);
    if (mkdir(out, 0777) != 0) {
        perror(out);
        exit(1);
    }
}

// A FIFO that nobody writes to: opening it for reading the usual way waits forever, so the tests
// that hand one to a reader run under an alarm that fails the suite instead of hanging it.
static void on_alarm(int sig) {
    (void)sig;
    static const char msg[] = "FAIL: a reader blocked on a FIFO (alarm after 20 s)\n";
    if (write(2, msg, sizeof msg - 1) < 0) _exit(2);
    _exit(1);
}

// Binomial check: count k of n with probability p, within z standard deviations.
static void check_binomial(const char *what, long k, long n, double p, double z) {
    double mean = p * n, sd = sqrt(n * p * (1 - p));
    printf("     %-40s %ld / %ld = %.4f (expected %.4f, %.1f sd)\n", what, k, n, (double)k / n, p,
           sd > 0 ? (k - mean) / sd : 0.0);
    CHECK(fabs(k - mean) <= z * sd + 1e-9, "%s: %ld of %ld, expected %.1f +- %.1f", what, k, n, mean, z * sd);
}

// ---------------------------------------------------------------------------------------------
// Flip-flop

enum { FF_W = 0, FF_R = 1, FF_I = 2, FF_0 = 3, FF_1 = 4 };

// Checks the structure of every row of a flip-flop batch and counts the middle instructions.
static void ff_check_rows(const Batch *b, int answer_loss, long counts[3], long *bad) {
    for (int r = 0; r < b->B; r++) {
        const int *tok = b->tokens + (size_t)r * b->T, *tgt = b->targets + (size_t)r * b->T;
        int L = b->T + 1, reg = -1;
        for (int i = 0; i < L; i++) {
            int x = i < b->T ? tok[i] : tgt[L - 2];
            if (i > 0 && i < b->T && tgt[i - 1] != x) (*bad)++;  // targets are the next tokens
            if (i % 2 == 0) {
                if (x < FF_W || x > FF_I) (*bad)++;
                if (i == 0 && x != FF_W) (*bad)++;
                if (i == L - 2 && x != FF_R) (*bad)++;
                if (i > 0 && i < L - 2) counts[x]++;
            } else {
                if (x != FF_0 && x != FF_1) (*bad)++;
                int ins = tok[i - 1];
                if (ins == FF_W) reg = x;
                if (ins == FF_R && x != reg) (*bad)++;
            }
        }
        for (int i = 0; i < b->T; i++) {
            size_t o = (size_t)r * b->T + i;
            int answer = tok[i] == FF_R;
            if (b->metric_mask[o] != answer) (*bad)++;
            if (b->loss_mask[o] != (answer_loss ? answer : 1)) (*bad)++;
            if (b->key_pad[o]) (*bad)++;
        }
    }
}

static void test_flipflop_generator(void) {
    TaskConfig c = cfg_for("flipflop");
    Task *t = make(&c, 512, 7);
    if (!t) return;
    CHECK(task_vocab_size(t) == 5, "vocab %d", task_vocab_size(t));
    CHECK(task_max_length(t) == 511, "max length %d", task_max_length(t));
    CHECK(strcmp(task_token_str(t, 0), "w") == 0 && strcmp(task_token_str(t, 4), "1") == 0, "token names");
    Batch b;
    batch_alloc(&b, 16, 511);
    long counts[3] = {0, 0, 0}, bad = 0;
    for (int step = 0; step < 50; step++) {
        task_next_train(t, &b, 16);
        CHECK(b.B == 16 && b.T == 511, "batch shape %d x %d", b.B, b.T);
        ff_check_rows(&b, 0, counts, &bad);
    }
    CHECK(bad == 0, "%ld structural violations in training batches", bad);
    long n = counts[0] + counts[1] + counts[2];
    CHECK(n == 50L * 16 * 254, "middle instructions %ld", n);
    check_binomial("FFL(0.8) train: ignore", counts[FF_I], n, 0.8, 5);
    check_binomial("FFL(0.8) train: write", counts[FF_W], n, 0.1, 5);
    check_binomial("FFL(0.8) train: read", counts[FF_R], n, 0.1, 5);

    const char *splits[] = {"valid", "test", "sparse", "dense"};
    double p_i[] = {0.8, 0.8, 0.98, 0.1};
    const char *const *names = task_split_names(t);
    for (int s = 0; s < 4; s++) {
        CHECK(names[s] && strcmp(names[s], splits[s]) == 0, "split %d is %s", s, names[s] ? names[s] : "(null)");
        CHECK(task_split_size(t, splits[s]) == 1000, "%s size %ld", splits[s], task_split_size(t, splits[s]));
        CHECK(task_split_max_length(t, splits[s]) == 511, "%s max length", splits[s]);
        long cs[3] = {0, 0, 0};
        bad = 0;
        for (long first = 0; first < 1000; first += 16) {
            int rc = task_eval_batch(t, splits[s], first, &b, 16);
            CHECK(rc == 0 && b.B == (first + 16 <= 1000 ? 16 : 1000 - first), "eval batch at %ld filled %d", first, b.B);
            ff_check_rows(&b, 0, cs, &bad);
        }
        CHECK(bad == 0, "%s: %ld structural violations", splits[s], bad);
        long m = cs[0] + cs[1] + cs[2];
        char what[64];
        snprintf(what, sizeof what, "%s FFL(%.2f): ignore", splits[s], p_i[s]);
        check_binomial(what, cs[FF_I], m, p_i[s], 5);
        snprintf(what, sizeof what, "%s FFL(%.2f): write", splits[s], p_i[s]);
        check_binomial(what, cs[FF_W], m, (1 - p_i[s]) / 2, 5);
    }
    CHECK(names[4] == NULL, "4 flip-flop splits");
    CHECK(task_split_size(t, "nope") == -1 && task_eval_batch(t, "nope", 0, &b, 4) == -1, "unknown split");
    batch_free(&b);
    task_free(t);
}

static void test_flipflop_masks_and_eval_determinism(void) {
    TaskConfig c = cfg_for("flipflop");
    snprintf(c.loss_on, sizeof c.loss_on, "answer");
    c.length = 64;
    c.eval_length = 128;
    c.eval_sequences = 40;
    Task *t = make(&c, 63, 3);
    if (!t) return;
    CHECK(task_split_max_length(t, "sparse") == 127, "eval length 128 gives T 127");
    Batch a, b;
    batch_alloc(&a, 16, 127);
    batch_alloc(&b, 16, 127);
    long counts[3] = {0, 0, 0}, bad = 0;
    task_next_train(t, &a, 8);
    CHECK(a.T == 63, "train T %d", a.T);
    ff_check_rows(&a, 1, counts, &bad);
    CHECK(bad == 0, "answer-only loss mask: %ld violations", bad);
    // The same sequence at any batch size and any call.
    task_eval_batch(t, "test", 10, &a, 7);
    int rc = task_eval_batch(t, "test", 13, &b, 16);
    CHECK(rc == 0 && b.B == 16, "filled %d", b.B);
    int same = 1;
    for (int r = 3; r < 7; r++) same &= rows_equal(&a, r, &b, r - 3);
    CHECK(same, "eval rows differ between batch sizes");
    task_eval_batch(t, "test", 35, &b, 16);
    CHECK(b.B == 5, "the last batch of 40 from 35 has %d rows", b.B);
    task_eval_batch(t, "valid", 10, &b, 7);
    CHECK(!rows_equal(&a, 0, &b, 0), "valid and test share sequences");
    Task *t2 = make(&c, 63, 3);
    task_eval_batch(t2, "test", 10, &b, 7);
    CHECK(batches_equal(&a, &b), "eval differs between two tasks with one seed");
    // data_seed fixes the data across run seeds; training order still follows the run seed.
    TaskConfig d = c;
    d.data_seed = 3;
    Task *t3 = make(&d, 63, 99);
    task_eval_batch(t3, "test", 10, &b, 7);
    CHECK(batches_equal(&a, &b), "data_seed 3 should give run seed 3's evaluation data");
    task_next_train(t2, &a, 8);
    task_next_train(t3, &b, 8);
    CHECK(!batches_equal(&a, &b), "training streams of run seeds 3 and 99 are equal");
    batch_free(&a);
    batch_free(&b);
    task_free(t);
    task_free(t2);
    task_free(t3);
}

// Runs k batches, saves the cursor, runs m more; a fresh task loaded with the cursor must give the
// same m batches.
static void check_resume(const TaskConfig *c, int block_size, int B, int T, int k, int m) {
    Task *t = make(c, block_size, 11);
    if (!t) return;
    Batch b;
    batch_alloc(&b, B, T);
    for (int i = 0; i < k; i++) task_next_train(t, &b, B);
    size_t size = task_state_size(t);
    void *state = malloc(size);
    task_state_save(t, state);
    Batch *want = calloc((size_t)m, sizeof(Batch));
    for (int i = 0; i < m; i++) {
        batch_alloc(&want[i], B, T);
        task_next_train(t, &want[i], B);
    }
    Task *u = make(c, block_size, 11);
    CHECK(task_state_load(u, state, size) == 0, "%s: state load refused", c->name);
    CHECK(task_state_load(u, state, size - 1) != 0, "%s: a truncated state was accepted", c->name);
    int same = 1, first_diff = -1;
    for (int i = 0; i < m; i++) {
        task_next_train(u, &b, B);
        if (!batches_equal(&b, &want[i]) && first_diff < 0) first_diff = i;
        same &= batches_equal(&b, &want[i]);
    }
    CHECK(same, "%s: resumed stream differs from batch %d on", c->name, first_diff);
    printf("     %s: resumed after %d batches, %d batches identical (state %zu bytes)\n", c->name, k, m, size);
    // And a third task with the same seed, never saved, follows the same stream from the start.
    Task *v = make(c, block_size, 11);
    for (int i = 0; i < k; i++) task_next_train(v, &b, B);
    task_next_train(v, &b, B);
    CHECK(batches_equal(&b, &want[0]), "%s: same seed gives another stream", c->name);
    for (int i = 0; i < m; i++) batch_free(&want[i]);
    free(want);
    free(state);
    batch_free(&b);
    task_free(t);
    task_free(u);
    task_free(v);
}

static void test_flipflop_resume(void) {
    TaskConfig c = cfg_for("flipflop");
    check_resume(&c, 512, 16, 511, 3, 4);
    c.train_sequences = 50;  // a fixed set: the cursor crosses epochs
    c.length = 32;
    check_resume(&c, 31, 16, 31, 5, 6);
}

static void test_flipflop_files(void) {
    char dir[200], path[400];
    path_in(dir, sizeof dir, "ff");
    TaskConfig c = cfg_for("flipflop");
    c.length = 40;
    c.eval_length = 60;
    c.train_sequences = 30;
    c.eval_sequences = 12;
    snprintf(c.write_dir, sizeof c.write_dir, "%s", dir);
    Task *t = make(&c, 64, 5);
    if (!t) return;
    TaskConfig d = c;
    d.write_dir[0] = 0;
    d.train_sequences = 0;
    d.eval_sequences = 999;  // the files decide the split sizes
    snprintf(d.data_dir, sizeof d.data_dir, "%s", dir);
    Task *u = make(&d, 64, 5);
    if (!u) {
        task_free(t);
        return;
    }
    Batch a, b;
    batch_alloc(&a, 12, 59);
    batch_alloc(&b, 12, 59);
    const char *splits[] = {"valid", "test", "sparse", "dense"};
    for (int s = 0; s < 4; s++) {
        CHECK(task_split_size(u, splits[s]) == 12, "%s loaded %ld sequences", splits[s], task_split_size(u, splits[s]));
        task_eval_batch(t, splits[s], 0, &a, 12);
        task_eval_batch(u, splits[s], 0, &b, 12);
        CHECK(batches_equal(&a, &b), "%s: written then loaded differs", splits[s]);
    }
    for (int i = 0; i < 5; i++) {  // 5 x 12 = two epochs of 30
        task_next_train(t, &a, 12);
        task_next_train(u, &b, 12);
        CHECK(batches_equal(&a, &b), "training batch %d differs after the round trip", i);
    }
    CHECK(fabs(task_train_epoch(u) - 2.0) < 1e-12, "epoch %g after 60 of 30", task_train_epoch(u));
    task_free(u);

    // Bad files.
    char bad[200];
    path_in(bad, sizeof bad, "ffbad");
    snprintf(path, sizeof path, "mkdir -p %s", bad);
    CHECK(system(path) == 0, "mkdir");
    d = cfg_for("flipflop");
    d.length = 8;
    snprintf(d.data_dir, sizeof d.data_dir, "%s", bad);
    expect_refused(&d, 64, "ffbad/train.txt", "cannot open");
    snprintf(path, sizeof path, "%s/train.txt", bad);
    write_text(path, "");
    expect_refused(&d, 64, "ffbad/train.txt", "empty");
    write_text(path, "w1i0r1r1\nw0i1x1r0\n");
    expect_refused(&d, 64, "train.txt:2:5:", "'x'");
    write_text(path, "w1i0r1r1\nw0i1i1r0\nw1r1\n");
    expect_refused(&d, 64, "train.txt:3:", "4 characters, expected 8");
    write_text(path, "w1i0r0r1\n");
    expect_refused(&d, 64, "train.txt:1:6:", "last written bit is 1");
    write_text(path, "w1i0r1r1\n\nw1i0r1r1\n");
    expect_refused(&d, 64, "train.txt:2:", "0 characters");
    write_text(path, "w1i0r1r1\nw0i1i1r0\r\n");  // CRLF is fine
    Task *ok = make(&d, 64, 1);
    task_free(ok);
    snprintf(path, sizeof path, "%s/sparse.txt", bad);
    write_text(path, "w1i0r1r1\n1w0i1i1r\n");
    expect_refused(&d, 64, "sparse.txt:2:1:", "'1' where an instruction");
    remove(path);
    // Other bad settings.
    d = cfg_for("flipflop");
    d.length = 513;
    expect_refused(&d, 1024, "task.length", "even");
    d.length = 512;
    expect_refused(&d, 500, "task.length", "block_size");
    snprintf(d.name, sizeof d.name, "flopflip");
    expect_refused(&d, 512, "task.name", "flopflip");
    snprintf(d.name, sizeof d.name, "flipflop");
    snprintf(d.loss_on, sizeof d.loss_on, "some");
    expect_refused(&d, 512, "task.loss_on", "some");
    batch_free(&a);
    batch_free(&b);
    task_free(t);
}


// A flip-flop sequence is scored on the bits after its reads; the canonical form ends with one (the
// generator's last instruction is always r). A file of sequences without reads trained on nothing
// and logged loss 0 with loss_on=answer: every line must end with a read.
static void test_flipflop_needs_reads(void) {
    char dir[200], path[300];
    fresh_dir(dir, sizeof dir, "ffnoread");
    TaskConfig d = cfg_for("flipflop");
    d.length = 8;
    snprintf(d.data_dir, sizeof d.data_dir, "%s", dir);
    snprintf(path, sizeof path, "%s/train.txt", dir);
    write_text(path, "w1i0w0i1\n");
    expect_refused(&d, 64, "ffnoread/train.txt:1:7:", "the last instruction must be r");
    write_text(path, "w1i0r1r1\nw1r1i0i1\n");
    expect_refused(&d, 64, "train.txt:2:7:", "'i'");
    snprintf(d.loss_on, sizeof d.loss_on, "all");  // whatever the loss, the metric needs reads
    expect_refused(&d, 64, "train.txt:2:7:", "the last instruction must be r");
    snprintf(d.loss_on, sizeof d.loss_on, "answer");
    write_text(path, "w1i0r1r1\nw1w0i0r0\n");
    snprintf(path, sizeof path, "%s/dense.txt", dir);
    write_text(path, "w1i0r1r1\nw1i0i0i0\n");
    expect_refused(&d, 64, "dense.txt:2:7:", "the last instruction must be r");
    write_text(path, "w1i0r1r1\nw1i0i0r1\n");
    Task *t = make(&d, 64, 1);
    CHECK(t && task_split_size(t, "dense") == 2, "a dense file of 2 good sequences");
    task_free(t);
}

// The folders a data reader is pointed at may hold anything: an evaluation file that is a folder
// or a FIFO must be refused (it used to count as missing, and the split was generated instead),
// and a FIFO must never block a reader or a writer.
static void test_flipflop_files_not_regular(void) {
    char dir[200], path[300];
    fresh_dir(dir, sizeof dir, "ffkinds");
    TaskConfig d = cfg_for("flipflop");
    d.length = 8;
    snprintf(d.data_dir, sizeof d.data_dir, "%s", dir);
    snprintf(path, sizeof path, "%s/train.txt", dir);
    write_text(path, "w1i0r1r1\n");
    snprintf(path, sizeof path, "%s/valid.txt", dir);
    CHECK(mkdir(path, 0777) == 0, "mkdir %s", path);
    expect_refused(&d, 64, "ffkinds/valid.txt", "is a folder, expected a regular file");
    rmdir(path);
    snprintf(path, sizeof path, "%s/sparse.txt", dir);
    CHECK(mkfifo(path, 0666) == 0, "mkfifo %s", path);
    alarm(20);
    expect_refused(&d, 64, "ffkinds/sparse.txt", "is a FIFO, expected a regular file");
    // write_dir: a FIFO where a generated file goes
    TaskConfig w = cfg_for("flipflop");
    w.length = 8;
    w.eval_sequences = 2;
    snprintf(w.write_dir, sizeof w.write_dir, "%s", dir);
    remove(path);
    snprintf(path, sizeof path, "%s/test.txt", dir);
    CHECK(mkfifo(path, 0666) == 0, "mkfifo %s", path);
    expect_refused(&w, 64, "ffkinds/test.txt", "is a FIFO, expected a regular file");
    alarm(0);
    remove(path);
}

// ---------------------------------------------------------------------------------------------
// Counting

static int tok_id(const Task *t, const char *w) {
    for (int i = 0; i < task_vocab_size(t); i++)
        if (strcmp(task_token_str(t, i), w) == 0) return i;
    return -1;
}

static void test_counting_vocabulary(void) {
    int nvars[3] = {1, 3, 5}, want[3] = {17, 19, 21};
    for (int k = 0; k < 3; k++) {
        TaskConfig c = cfg_for("counting");
        c.nvars = nvars[k];
        Task *t = make(&c, 512, 1);
        if (!t) return;
        CHECK(task_vocab_size(t) == want[k] + 2, "%d vars: vocabulary %d, expected %d words + <pad>, <sta>", nvars[k],
              task_vocab_size(t), want[k]);
        printf("     %d variables: %d words + 2 specials\n", nvars[k], task_vocab_size(t) - 2);
        CHECK(strcmp(task_token_str(t, 0), "<pad>") == 0 && strcmp(task_token_str(t, 1), "<sta>") == 0, "specials");
        const char *words[] = {"pass;", "=", "0", ";", "++;", "print", "1", "10", "a"};
        for (int w = 0; w < 9; w++) CHECK(tok_id(t, words[w]) >= 2, "%s missing", words[w]);
        CHECK(tok_id(t, "f") < 0 && (nvars[k] < 5 || tok_id(t, "e") >= 2), "variable letters");
        const char *const *names = task_split_names(t);
        CHECK(names[0] && strcmp(names[0], "valid") == 0 && names[1] && strcmp(names[1], "test") == 0 && !names[2],
              "counting splits");
        CHECK(task_split_size(t, "valid") == 1000 && task_split_size(t, "test") == 1000, "official sizes");
        CHECK(task_max_length(t) == 511, "max T %d (sequences keep their last 512 tokens)", task_max_length(t));
        task_free(t);
    }
}

// Replays a row's statements (untruncated) and checks the generator's rules and the answer.
static int replay_counting_row(const Task *t, const Batch *b, int r, int *answer_value, int *len) {
    const int *tok = b->tokens + (size_t)r * b->T, *tgt = b->targets + (size_t)r * b->T;
    int n = 0;
    while (n < b->T && !b->key_pad[(size_t)r * b->T + n]) n++;
    *len = n + 1;
    int val[26];
    for (int v = 0; v < 26; v++) val[v] = -1;
    int i = 0, bad = 0;
    while (i < n) {
        const char *w = task_token_str(t, tok[i]);
        if (strcmp(w, "pass;") == 0) {
            i++;
        } else if (strcmp(w, "print") == 0) {
            int v = task_token_str(t, tok[i + 1])[0] - 'a';
            if (i + 2 != n || val[v] < 0) bad++;
            *answer_value = atoi(task_token_str(t, tgt[n - 1]));
            if (*answer_value != val[v]) bad++;
            i = n;
        } else {
            int v = w[0] - 'a';
            const char *op = task_token_str(t, tok[i + 1]);
            if (strcmp(op, "=") == 0) {
                val[v] = 0;
                if (strcmp(task_token_str(t, tok[i + 2]), "0") || strcmp(task_token_str(t, tok[i + 3]), ";")) bad++;
                i += 4;
            } else if (strcmp(op, "++;") == 0) {
                if (val[v] < 0 || val[v] >= 10) bad++;  // never before a set, never past MAX_VAL
                val[v]++;
                i += 2;
            } else {
                bad++;
                i++;
            }
        }
    }
    return bad;
}

static void test_counting_statistics(void) {
    TaskConfig c = cfg_for("counting");
    c.n_valid = 10000;  // statistics over 10k samples, as the reference simulation
    c.n_train = 100;
    c.n_test = 100;
    Task *full = make(&c, 4096, 1);
    Task *cut = make(&c, 512, 1);
    if (!full || !cut) return;
    Batch a, b;
    batch_alloc(&a, 100, 4096);
    batch_alloc(&b, 100, 512);
    long truncated = 0, n = 0, bad = 0, answers[11] = {0}, sum_len = 0, mismatch = 0, masks = 0;
    int max_len = 0;
    for (long first = 0; first < 10000; first += 100) {
        task_eval_batch(full, "valid", first, &a, 100);
        task_eval_batch(cut, "valid", first, &b, 100);
        CHECK(b.T <= 511, "truncated batch T %d", b.T);
        for (int r = 0; r < a.B; r++) {
            int ans = -1, len = 0;
            bad += replay_counting_row(full, &a, r, &ans, &len);
            if (ans >= 0 && ans <= 10) answers[ans]++;
            n++;
            sum_len += len;
            if (len > max_len) max_len = len;
            if (len > 512) truncated++;
            // The truncated row is the last 512 tokens of the full one.
            int keep = len < 512 ? len : 512, off = len - keep;
            for (int i = 0; i < keep - 1; i++) {
                size_t oa = (size_t)r * a.T + off + i, ob = (size_t)r * b.T + i;
                mismatch += a.tokens[oa] != b.tokens[ob] || a.targets[oa] != b.targets[ob] ||
                            a.metric_mask[oa] != b.metric_mask[ob];
            }
            for (int i = keep - 1; i < b.T; i++) mismatch += !b.key_pad[(size_t)r * b.T + i] || b.tokens[(size_t)r * b.T + i] != 0;
            // answer-only loss and metric: exactly the last real position
            for (int i = 0; i < b.T; i++) {
                size_t o = (size_t)r * b.T + i;
                int want = i == keep - 2;
                masks += b.loss_mask[o] != want || b.metric_mask[o] != want;
            }
        }
    }
    CHECK(bad == 0, "%ld violations of the generator's rules or wrong answers", bad);
    CHECK(mismatch == 0, "%ld positions where truncation is not the last 512 tokens, or padding is wrong", mismatch);
    CHECK(masks == 0, "%ld wrong loss/metric mask positions (answer-only)", masks);
    double share = (double)truncated / n, mean = (double)sum_len / n;
    printf("     10k samples: mean length %.1f, max %d, truncated at 512: %.2f%%, answer 10: %.2f%%, answer 0: %.2f%%\n", mean,
           max_len, 100 * share, 100.0 * answers[10] / n, 100.0 * answers[0] / n);
    // Reference simulation (docs/experiments.md §4.4): mean ≈ 321, ≈14% truncated, "10" ≈ 20-21%, "0" ≈ 14%;
    // bounds are ~5 standard errors of a 10k sample around those.
    CHECK(fabs(mean - 320) < 6, "mean length %.1f, expected about 320", mean);
    CHECK(share > 0.12 && share < 0.16, "truncated share %.4f, expected about 0.14", share);
    CHECK(answers[10] > 0.19 * n && answers[10] < 0.235 * n, "answer 10: %ld of %ld, expected about 21%%", answers[10], n);
    CHECK(answers[0] > 0.125 * n && answers[0] < 0.165 * n, "answer 0: %ld of %ld, expected about 14.5%%", answers[0], n);
    for (int v = 1; v < 9; v++) CHECK(answers[v] >= answers[v + 1] * 0.8, "answers should decrease from 1 to 9");
    CHECK(max_len > 560 && max_len < 700, "max length %d, expected about 630", max_len);
    batch_free(&a);
    batch_free(&b);
    task_free(full);
    task_free(cut);
}

static void test_counting_loss_all_and_resume(void) {
    TaskConfig c = cfg_for("counting");
    snprintf(c.loss_on, sizeof c.loss_on, "all");
    c.n_train = 40;
    c.max_steps = 40;
    Task *t = make(&c, 512, 2);
    if (!t) return;
    Batch b;
    batch_alloc(&b, 16, 512);
    task_next_train(t, &b, 16);
    long bad = 0, answers = 0;
    for (int r = 0; r < b.B; r++)
        for (int i = 0; i < b.T; i++) {
            size_t o = (size_t)r * b.T + i;
            bad += b.loss_mask[o] != !b.key_pad[o];
            answers += b.metric_mask[o];
        }
    CHECK(bad == 0, "loss_on=all: %ld positions where the loss mask is not the non-pad positions", bad);
    CHECK(answers == 16, "one answer per row, got %ld in 16 rows", answers);
    CHECK(task_max_length(t) >= task_split_max_length(t, "valid") && task_max_length(t) >= task_split_max_length(t, "test"),
          "task_max_length %d below an evaluation split's (%d, %d)", task_max_length(t), task_split_max_length(t, "valid"),
          task_split_max_length(t, "test"));
    // Epochs: 40 samples, batches of 16: the third batch spans epochs 0 and 1.
    task_next_train(t, &b, 16);
    CHECK(fabs(task_train_epoch(t) - 0.8) < 1e-12, "epoch %g after 32 of 40", task_train_epoch(t));
    batch_free(&b);
    task_free(t);
    check_resume(&c, 512, 16, 512, 4, 6);
}

static void test_counting_files(void) {
    char dir[200], path[300];
    path_in(dir, sizeof dir, "count");
    TaskConfig c = cfg_for("counting");
    c.n_train = 60;
    c.n_valid = 20;
    c.n_test = 30;
    c.nvars = 5;
    c.max_steps = 200;
    snprintf(c.write_dir, sizeof c.write_dir, "%s", dir);
    Task *t = make(&c, 256, 4);
    TaskConfig d = cfg_for("counting");
    snprintf(d.data_dir, sizeof d.data_dir, "%s", dir);
    Task *u = make(&d, 256, 4);
    if (!t || !u) return;
    CHECK(task_vocab_size(t) == task_vocab_size(u), "vocab %d vs %d", task_vocab_size(t), task_vocab_size(u));
    int same_vocab = 1;
    for (int i = 0; i < task_vocab_size(t); i++) same_vocab &= strcmp(task_token_str(t, i), task_token_str(u, i)) == 0;
    CHECK(same_vocab, "vocabulary order differs after the round trip");
    CHECK(task_split_size(u, "valid") == 20 && task_split_size(u, "test") == 30, "loaded split sizes");
    Batch a, b;
    batch_alloc(&a, 30, 256);
    batch_alloc(&b, 30, 256);
    task_eval_batch(t, "test", 0, &a, 30);
    task_eval_batch(u, "test", 0, &b, 30);
    CHECK(batches_equal(&a, &b), "test split differs after the round trip");
    for (int i = 0; i < 5; i++) {
        task_next_train(t, &a, 30);
        task_next_train(u, &b, 30);
        CHECK(batches_equal(&a, &b), "training batch %d differs after the round trip", i);
    }
    task_free(t);
    task_free(u);

    // The official format as Python's json.dumps writes it; words by first appearance.
    path_in(dir, sizeof dir, "count_official");
    snprintf(path, sizeof path, "mkdir -p %s", dir);
    CHECK(system(path) == 0, "mkdir");
    snprintf(path, sizeof path, "%s/train.jsonl", dir);
    write_text(path, "{\"context\": \"pass; b = 0 ; b ++; pass;\", \"question\": \"print b\", \"answer\": \"1\"}\n");
    snprintf(path, sizeof path, "%s/valid.jsonl", dir);
    write_text(path, "{\"context\": \"a = 0 ;\", \"question\": \"print a\", \"answer\": \"0\"}\n");
    snprintf(path, sizeof path, "%s/test.jsonl", dir);
    write_text(path, "{\"context\": \"A = 0 ; a ++;\", \"question\": \"Print a\", \"answer\": \"1\"}\n");
    snprintf(d.data_dir, sizeof d.data_dir, "%s", dir);
    u = make(&d, 512, 1);
    if (!u) return;
    const char *order[] = {"<pad>", "<sta>", "pass;", "b", "=", "0", ";", "++;", "print", "1", "a"};
    CHECK(task_vocab_size(u) == 11, "vocabulary %d", task_vocab_size(u));
    for (int i = 0; i < 11 && i < task_vocab_size(u); i++)
        CHECK(strcmp(task_token_str(u, i), order[i]) == 0, "id %d is %s, expected %s", i, task_token_str(u, i), order[i]);
    task_eval_batch(u, "test", 0, &b, 1);
    int want_tok[] = {10, 4, 5, 6, 10, 7, 8, 10}, want_tgt[] = {4, 5, 6, 10, 7, 8, 10, 9};
    CHECK(b.T == 8, "T %d", b.T);
    for (int i = 0; i < 8 && i < b.T; i++)
        CHECK(b.tokens[i] == want_tok[i] && b.targets[i] == want_tgt[i], "position %d: %d -> %d", i, b.tokens[i], b.targets[i]);
    CHECK(b.loss_mask[7] == 1 && b.loss_mask[6] == 0, "answer position");
    task_free(u);

    // Bad files.
    snprintf(path, sizeof path, "%s/valid.jsonl", dir);
    write_text(path, "{\"context\": \"a = 0 ;\", \"question\": \"print a\", \"answer\": \"0\"}\n{\"context\": \"a = 0 ;\", "
                     "\"question\": \"print a\" \"answer\": \"0\"}\n");
    expect_refused(&d, 512, "valid.jsonl:2:", "malformed JSON");
    write_text(path, "{\"context\": \"a = 0 ;\", \"question\": \"print a\"}\n");
    expect_refused(&d, 512, "valid.jsonl:1:", "\"answer\"");
    write_text(path, "{\"context\": \"a = 0 ;\", \"question\": \"print a\", \"answer\": 3}\n");
    expect_refused(&d, 512, "valid.jsonl:1:", "\"answer\"");
    write_text(path, "[1, 2]\n");
    expect_refused(&d, 512, "valid.jsonl:1:", "JSON object");
    write_text(path, "{\"context\": \"a = 0 ;\", \"question\": \"print a\", \"answer\": \"0\"}\n\n");
    expect_refused(&d, 512, "valid.jsonl:2:", "empty line");
    write_text(path, "");
    expect_refused(&d, 512, "valid.jsonl", "empty file");
    remove(path);
    expect_refused(&d, 512, "valid.jsonl", "cannot open");
    batch_free(&a);
    batch_free(&b);
}

// JSON that cJSON reads without complaint but not as written: a NUL byte ends the line early, a
// \u0000 escape cuts a string, a duplicate key keeps the first value. All refused, naming the line.
static void test_counting_json_traps(void) {
    char dir[200], path[300];
    fresh_dir(dir, sizeof dir, "count_traps");
    const char *good = "{\"context\": \"a = 0 ; a ++;\", \"question\": \"print a\", \"answer\": \"1\"}\n";
    snprintf(path, sizeof path, "%s/train.jsonl", dir);
    write_text(path, good);
    snprintf(path, sizeof path, "%s/test.jsonl", dir);
    write_text(path, good);
    snprintf(path, sizeof path, "%s/valid.jsonl", dir);
    TaskConfig d = cfg_for("counting");
    snprintf(d.data_dir, sizeof d.data_dir, "%s", dir);
    write_text(path, good);
    Task *t = make(&d, 64, 1);
    task_free(t);

    static const char nul_line[] = "{\"context\": \"a = 0 ;\", \"question\": \"print a\", \"answer\": \"0\"}\0 junk\n";
    char two[400];
    size_t glen = strlen(good);
    memcpy(two, good, glen);
    memcpy(two + glen, nul_line, sizeof nul_line - 1);
    write_bytes(path, two, glen + sizeof nul_line - 1);
    expect_refused(&d, 64, "valid.jsonl:2:61:", "NUL byte");
    write_text(path, "{\"context\": \"a = 0 ;\", \"question\": \"print a\", \"answer\": \"0\", \"answer\": \"5\"}\n");
    expect_refused(&d, 64, "valid.jsonl:1:", "\"answer\" appears twice");
    write_text(path, "{\"context\": \"a = 0 ;\", \"context\": \"b = 0 ;\", \"question\": \"print a\", \"answer\": \"0\"}\n");
    expect_refused(&d, 64, "valid.jsonl:1:", "\"context\" appears twice");
    write_text(path, "{\"context\": \"a = 0 ;\", \"question\": \"print a\", \"answer\": \"0\\u00005\"}\n");
    expect_refused(&d, 64, "valid.jsonl:1:59:", "answer: the string contains \\u0000");
    write_text(path, "{\"context\": \"a = 0 ;\", \"question\": \"print a\", \"answer\": \"0\", \"id\": 7}\n");
    expect_refused(&d, 64, "valid.jsonl:1:", "unknown key \"id\"");
    // a key is quoted with its control characters escaped, so the message stays one line
    write_text(path, "{\"context\": \"a = 0 ;\", \"question\": \"print a\", \"an\\nswer\": \"0\"}\n");
    expect_refused(&d, 64, "valid.jsonl:1:", "unknown key \"an\\x0aswer\"");
}

// ---------------------------------------------------------------------------------------------
// Selective copy

// Checks every row: nb blanks and M data tokens in the content, then the answer region; the
// answers (targets at the metric positions) are the data tokens in order.
static long sc_check_batch(const Batch *b, int nb, int M, int alphabet, int mamba, int answer_loss, long *sym_counts,
                           long *first_half) {
    long bad = 0;
    int marker = alphabet + 1, n = nb + M;
    if (b->T != nb + 2 * M) return 1;
    for (int r = 0; r < b->B; r++) {
        const int *tok = b->tokens + (size_t)r * b->T, *tgt = b->targets + (size_t)r * b->T;
        int data[4096], k = 0, blanks = 0;
        for (int i = 0; i < n; i++) {
            if (tok[i] == 0)
                blanks++;
            else if (tok[i] >= 1 && tok[i] <= alphabet && k < 4096) {
                data[k++] = tok[i];
                sym_counts[tok[i]]++;
                if (i < n / 2) (*first_half)++;
            } else
                bad++;
        }
        if (blanks != nb || k != M) bad++;
        for (int i = 0; i < b->T; i++) {
            size_t o = (size_t)r * b->T + i;
            int answer = i >= n;
            if (b->metric_mask[o] != answer || b->loss_mask[o] != (answer_loss ? answer : 1) || b->key_pad[o]) bad++;
            if (answer && tgt[i] != data[i - n]) bad++;
            if (!answer && i + 1 < b->T && tgt[i] != tok[i + 1]) bad++;  // next-token targets elsewhere
            if (i == n) bad += tok[i] != marker;
            if (i > n) bad += mamba ? tok[i] != marker : tok[i] != data[i - n - 1];
        }
    }
    return bad;
}

static void test_selcopy(void) {
    for (int mamba = 0; mamba < 2; mamba++) {
        TaskConfig c = cfg_for("selcopy");
        snprintf(c.copy_format, sizeof c.copy_format, "%s", mamba ? "mamba" : "lm");
        c.eval_sequences = 200;
        Task *t = make(&c, 288, 9);
        if (!t) return;
        printf("     copy_format %s\n", c.copy_format);
        CHECK(task_vocab_size(t) == 16, "vocabulary %d (Mamba's 16)", task_vocab_size(t));
        CHECK(task_max_length(t) == 288, "T %d = 256 + 2 x 16", task_max_length(t));
        CHECK(strcmp(task_token_str(t, 0), ".") == 0 && strcmp(task_token_str(t, 15), "|") == 0, "token names");
        const char *splits[] = {"valid", "test", "dense", "sparse"};
        int nb[] = {256, 256, 128, 512};
        Batch b;
        batch_alloc(&b, 32, 544);
        long syms[16] = {0}, half = 0, total = 0;
        for (int s = 0; s < 4; s++) {
            CHECK(task_split_max_length(t, splits[s]) == nb[s] + 32, "%s T", splits[s]);
            CHECK(task_split_size(t, splits[s]) == 200, "%s size", splits[s]);
            long bad = 0;
            for (long first = 0; first < 200; first += 32) {
                task_eval_batch(t, splits[s], first, &b, 32);
                bad += sc_check_batch(&b, nb[s], 16, 14, mamba, 1, syms, &half);
                total += (long)b.B * 16;
            }
            CHECK(bad == 0, "%s: %ld violations (%d blanks and 16 tokens per sequence, answers in order)", splits[s], bad,
                  nb[s]);
            printf("     %-6s: %d blanks + 16 tokens per sequence, T = %d\n", splits[s], nb[s], nb[s] + 32);
        }
        for (int k = 0; k < 30; k++) {
            task_next_train(t, &b, 32);
            long bad = sc_check_batch(&b, 256, 16, 14, mamba, 1, syms, &half);
            CHECK(bad == 0, "training batch %d: %ld violations", k, bad);
            total += 32 * 16;
        }
        for (int v = 1; v <= 14; v++) {
            char what[32];
            snprintf(what, sizeof what, "data token %d", v);
            if (v == 1 || v == 14) check_binomial(what, syms[v], total, 1.0 / 14, 5);
            else CHECK(fabs(syms[v] - total / 14.0) < 5 * sqrt(total / 14.0), "token %d: %ld of %ld", v, syms[v], total);
        }
        check_binomial("data tokens in the content's first half", half, total, 0.5, 5);
        batch_free(&b);
        task_free(t);
    }
    TaskConfig c = cfg_for("selcopy");
    snprintf(c.loss_on, sizeof c.loss_on, "all");
    c.n_blanks = 40;
    c.n_tokens = 4;
    Task *t = make(&c, 48, 9);
    if (t) {
        Batch b;
        batch_alloc(&b, 8, 48);
        long syms[16] = {0}, half = 0;
        task_next_train(t, &b, 8);
        CHECK(sc_check_batch(&b, 40, 4, 14, 0, 0, syms, &half) == 0, "loss_on=all masks");
        batch_free(&b);
        task_free(t);
    }
    check_resume(&c, 48, 8, 48, 3, 5);
    c.train_sequences = 20;
    check_resume(&c, 48, 8, 48, 3, 5);
    c = cfg_for("selcopy");
    expect_refused(&c, 287, "block_size", "288");
}

// ---------------------------------------------------------------------------------------------
// Language modelling

// Deterministic text: lines of pseudo-random words from a small Zipf-ish word list.
static char *make_text(long bytes, unsigned long long seed) {
    static const char *words[] = {"the", "of", "and", "copy", "position", "count", "zebra", "a", "context", "token"};
    char *t = malloc((size_t)bytes + 64);
    long n = 0;
    while (n < bytes) {
        int w = (int)((check_rand(&seed) + 1) * (check_rand(&seed) + 1) * 2.5);  // skewed towards 0
        if (w > 9) w = 9;
        n += sprintf(t + n, "%s", words[w]);
        t[n++] = check_rand(&seed) > 0.7 ? '\n' : ' ';
    }
    t[n] = 0;
    return t;
}

static void test_lm_bytes(void) {
    char dir[200], path[400];
    path_in(dir, sizeof dir, "lm");
    snprintf(path, sizeof path, "mkdir -p %s", dir);
    CHECK(system(path) == 0, "mkdir");
    char *tr = make_text(20000, 1), *va = make_text(3000, 2), *te = make_text(2000, 3);
    snprintf(path, sizeof path, "%s/train.txt", dir);
    write_text(path, tr);
    snprintf(path, sizeof path, "%s/valid.txt", dir);
    write_text(path, va);
    snprintf(path, sizeof path, "%s/test.txt", dir);
    write_text(path, te);
    TaskConfig c = cfg_for("lm");
    snprintf(c.data_dir, sizeof c.data_dir, "%s", dir);
    Task *t = make(&c, 64, 5);
    if (!t) return;
    CHECK(task_is_language_model(t) == 1 && task_vocab_size(t) == 256 && task_max_length(t) == 64, "lm basics");
    CHECK(strcmp(task_token_str(t, 'a'), "a") == 0 && strcmp(task_token_str(t, '\n'), "\\x0a") == 0, "byte names");
    CHECK(task_bytes_per_token(t, "valid") == 1.0, "bytes per token");
    Batch b;
    batch_alloc(&b, 16, 200);
    // Random windows: each row is a substring of the training text; offsets cover the text.
    long trlen = (long)strlen(tr), lo = trlen, hi = 0, bad = 0;
    for (int k = 0; k < 40; k++) {
        task_next_train(t, &b, 16);
        CHECK(b.T == 64, "T %d", b.T);
        for (int r = 0; r < 16; r++) {
            char row[66];
            for (int i = 0; i < 64; i++) row[i] = (char)b.tokens[r * 64 + i];
            row[64] = (char)b.targets[r * 64 + 63];
            long off = -1;
            for (long o = 0; o + 65 <= trlen && off < 0; o++)
                if (memcmp(tr + o, row, 65) == 0) off = o;
            if (off < 0) bad++;
            if (off >= 0 && off < lo) lo = off;
            if (off > hi) hi = off;
            for (int i = 0; i < 64; i++) bad += !b.loss_mask[r * 64 + i] || !b.metric_mask[r * 64 + i] || b.key_pad[r * 64 + i];
            for (int i = 0; i + 1 < 64; i++) bad += b.targets[r * 64 + i] != b.tokens[r * 64 + i + 1];
        }
    }
    CHECK(bad == 0, "%ld bad training positions (rows must be windows of the text)", bad);
    CHECK(lo < 500 && hi > trlen - 65 - 500, "random offsets span [%ld, %ld] of %ld", lo, hi, trlen - 65);
    // Evaluation: non-overlapping windows predicting every token but the first exactly once.
    long valen = (long)strlen(va), size = task_split_size(t, "valid");
    CHECK(size == (valen - 1 + 63) / 64, "valid windows %ld", size);
    long at = 1, pads = 0;
    bad = 0;
    for (long first = 0; first < size; first += 5) {
        task_eval_batch(t, "valid", first, &b, 5);
        for (int r = 0; r < b.B; r++) {
            bad += b.tokens[r * b.T] != (unsigned char)va[(first + r) * 64];
            for (int i = 0; i < b.T; i++) {
                size_t o = (size_t)r * b.T + i;
                if (b.key_pad[o]) {
                    pads++;
                    bad += b.loss_mask[o];
                    continue;
                }
                bad += at >= valen || b.targets[o] != (unsigned char)va[at] || !b.loss_mask[o];
                at++;
            }
        }
    }
    CHECK(bad == 0 && at == valen, "eval windows: %ld mismatches, %ld of %ld tokens predicted", bad, at - 1, valen - 1);
    CHECK(pads == size * 64 - (valen - 1), "%ld padding positions", pads);
    printf("     valid: %ld bytes in %ld windows of 64, the last padded by %ld\n", valen, size, pads);
    task_free(t);

    // Resume: random and sequential cursors; sequential windows have stride block_size.
    check_resume(&c, 64, 16, 64, 3, 4);
    snprintf(c.sampling, sizeof c.sampling, "sequential");
    check_resume(&c, 64, 16, 64, 25, 4);  // crosses the wrap at 20000 / 64 windows
    t = make(&c, 64, 5);
    task_next_train(t, &b, 16);
    bad = 0;
    for (int r = 0; r < 16; r++)
        for (int i = 0; i < 64; i++) bad += b.tokens[r * 64 + i] != (unsigned char)tr[r * 64 + i];
    CHECK(bad == 0, "sequential windows are not consecutive");
    task_free(t);

    // Longer evaluation windows than the training context.
    snprintf(c.sampling, sizeof c.sampling, "random");
    c.eval_length = 150;
    t = make(&c, 64, 5);
    CHECK(task_split_max_length(t, "test") == 150 && task_split_size(t, "test") == ((long)strlen(te) - 1 + 149) / 150,
          "eval_length 150");
    task_eval_batch(t, "test", 0, &b, 2);
    CHECK(b.T == 150 && b.tokens[150] == (unsigned char)te[150], "second window starts at byte 150");
    task_free(t);

    // One file cut by fractions at line ends.
    TaskConfig d = cfg_for("lm");
    snprintf(d.text_file, sizeof d.text_file, "%s/train.txt", dir);
    d.valid_fraction = 0.1;
    d.test_fraction = 0.2;
    t = make(&d, 64, 5);
    long nv = task_split_size(t, "valid"), nt = task_split_size(t, "test");
    task_eval_batch(t, "valid", 0, &b, 1);
    const char *cut = strchr(tr + (long)(0.7 * trlen), '\n');
    long vstart = cut ? cut - tr + 1 : -1, mism = 0;
    for (int i = 0; i < 64 && vstart >= 0; i++) mism += b.tokens[i] != (unsigned char)tr[vstart + i];
    CHECK(vstart > 0 && mism == 0, "valid does not start after the first line end past 70%% (%ld)", vstart);
    CHECK(nv > 0 && nt > 0 && labs(nt * 64 - (long)(0.2 * trlen)) < 300, "split windows %ld, %ld", nv, nt);
    task_free(t);
    d.valid_fraction = 0;
    t = make(&d, 64, 5);
    CHECK(strcmp(task_split_names(t)[0], "test") == 0 && task_split_names(t)[1] == NULL, "a share of 0 leaves valid out");
    task_free(t);

    // Refusals.
    d = cfg_for("lm");
    expect_refused(&d, 64, "task.data_dir or task.text_file", NULL);
    snprintf(d.data_dir, sizeof d.data_dir, "%s", dir);
    expect_refused(&d, 30000, "train.txt", "fewer than model.block_size + 1");
    snprintf(d.loss_on, sizeof d.loss_on, "answer");
    expect_refused(&d, 64, "task.loss_on", "lm");
    snprintf(d.loss_on, sizeof d.loss_on, "auto");
    snprintf(d.valid_file, sizeof d.valid_file, "nope.txt");
    expect_refused(&d, 64, "lm/nope.txt", "cannot open");
    snprintf(path, sizeof path, "%s/empty.txt", dir);
    write_text(path, "");
    snprintf(d.valid_file, sizeof d.valid_file, "empty.txt");
    expect_refused(&d, 64, "lm/empty.txt", "empty");
    batch_free(&b);
    free(tr);
    free(va);
    free(te);
}

static void test_lm_words(void) {
    char dir[200], path[300];
    path_in(dir, sizeof dir, "lmw");
    snprintf(path, sizeof path, "mkdir -p %s", dir);
    CHECK(system(path) == 0, "mkdir");
    snprintf(path, sizeof path, "%s/train.txt", dir);
    write_text(path, "b a a c\n\nb a d <unk> a b\nc b a");  // a 5, b 4, c 2, d 1; no final newline
    snprintf(path, sizeof path, "%s/valid.txt", dir);
    write_text(path, "a zebra b\nd c\n");
    snprintf(path, sizeof path, "%s/test.txt", dir);
    write_text(path, "c c c c\n");
    TaskConfig c = cfg_for("lm");
    snprintf(c.data_dir, sizeof c.data_dir, "%s", dir);
    snprintf(c.tokenizer, sizeof c.tokenizer, "word");
    c.min_count = 2;
    Task *t = make(&c, 4, 1);
    if (!t) return;
    const char *want[] = {"<unk>", "<eos>", "a", "b", "c"};
    CHECK(task_vocab_size(t) == 5, "vocabulary %d (d seen once, min_count 2)", task_vocab_size(t));
    for (int i = 0; i < 5 && i < task_vocab_size(t); i++)
        CHECK(strcmp(task_token_str(t, i), want[i]) == 0, "id %d is %s, expected %s", i, task_token_str(t, i), want[i]);
    Batch b;
    batch_alloc(&b, 4, 8);
    // valid: a zebra b <eos> d c <eos> = 2 0 3 1 0 4 1 (7 tokens, windows of 4 predicted tokens)
    int seq[] = {2, 0, 3, 1, 0, 4, 1};
    CHECK(task_split_size(t, "valid") == 2, "valid windows %ld", task_split_size(t, "valid"));
    task_eval_batch(t, "valid", 0, &b, 2);
    CHECK(b.B == 2 && b.T == 4, "shape %d x %d", b.B, b.T);
    for (int i = 0; i < 4; i++) CHECK(b.tokens[i] == seq[i] && b.targets[i] == seq[i + 1], "window 0 position %d", i);
    CHECK(b.tokens[4] == seq[4] && b.targets[4] == seq[5] && b.targets[5] == seq[6] && b.key_pad[6] && b.key_pad[7] &&
              !b.loss_mask[6],
          "window 1 and its padding");
    CHECK(fabs(task_bytes_per_token(t, "valid") - 14.0 / 7) < 1e-12, "bytes per token %g", task_bytes_per_token(t, "valid"));
    task_free(t);
    c.min_count = 1;
    c.max_vocab = 4;
    t = make(&c, 4, 1);
    CHECK(t && task_vocab_size(t) == 4 && strcmp(task_token_str(t, 3), "b") == 0, "max_vocab 4 keeps <unk> <eos> a b");
    task_free(t);
    batch_free(&b);
}

// An evaluation split that exists must be usable: a file of 1 token (nothing to predict) used to be
// dropped from the splits without a word, and so did a share of text_file that the cut at line ends
// left (nearly) empty.
static void test_lm_tiny_splits(void) {
    char dir[200], path[300];
    fresh_dir(dir, sizeof dir, "lmtiny");
    char *tr = make_text(3000, 1);
    snprintf(path, sizeof path, "%s/train.txt", dir);
    write_text(path, tr);
    snprintf(path, sizeof path, "%s/test.txt", dir);
    write_text(path, "some test text\n");
    snprintf(path, sizeof path, "%s/valid.txt", dir);
    write_text(path, "x");
    TaskConfig c = cfg_for("lm");
    snprintf(c.data_dir, sizeof c.data_dir, "%s", dir);
    expect_refused(&c, 64, "lmtiny/valid.txt: 1 token", "at least 2");
    write_text(path, "xy");
    Task *t = make(&c, 64, 1);
    CHECK(t && task_split_size(t, "valid") == 1 && task_split_max_length(t, "valid") == 1, "2 bytes: one window of 1");
    task_free(t);
    snprintf(c.tokenizer, sizeof c.tokenizer, "word");
    write_text(path, "\n");  // one <eos>
    expect_refused(&c, 64, "lmtiny/valid.txt: 1 token", "at least 2");

    // text_file: the train part takes everything up to the first line end past 90% of the bytes
    TaskConfig d = cfg_for("lm");
    snprintf(d.text_file, sizeof d.text_file, "%s/one_line.txt", dir);
    char line[202];
    memset(line, 'a', 200);
    line[200] = '\n';
    line[201] = 0;
    write_text(d.text_file, line);
    expect_refused(&d, 64, "one_line.txt (valid part): 0 tokens", "task.valid_fraction");
    d.valid_fraction = 0;
    expect_refused(&d, 64, "one_line.txt (test part): 0 tokens", "task.test_fraction");
    d.test_fraction = 0;
    t = make(&d, 64, 1);
    CHECK(t && task_split_names(t)[0] == NULL, "shares of 0 leave both splits out");
    task_free(t);
    free(tr);
}

// The word tokenizer reads text: a NUL byte in it would end words early (vocabulary entries are C
// strings), so it is refused naming where it is. Byte-level models take any byte.
static void test_lm_words_nul(void) {
    char dir[200], path[300];
    fresh_dir(dir, sizeof dir, "lmnul");
    char *tr = make_text(3000, 1);
    tr[1234] = 0;
    snprintf(path, sizeof path, "%s/train.txt", dir);
    write_bytes(path, tr, 3000);
    snprintf(path, sizeof path, "%s/valid.txt", dir);
    write_text(path, "some valid text\n");
    snprintf(path, sizeof path, "%s/test.txt", dir);
    write_text(path, "some test text\n");
    TaskConfig c = cfg_for("lm");
    snprintf(c.data_dir, sizeof c.data_dir, "%s", dir);
    Task *t = make(&c, 64, 1);
    task_free(t);
    snprintf(c.tokenizer, sizeof c.tokenizer, "word");
    expect_refused(&c, 64, "lmnul/train.txt: byte 1235", "NUL");
    free(tr);
}

// Not regular files: /dev/zero never ends, a FIFO blocks, a folder is no text. Each is refused at
// once, naming the path.
static void test_lm_files_not_regular(void) {
    TaskConfig c = cfg_for("lm");
    snprintf(c.text_file, sizeof c.text_file, "/dev/zero");
    expect_refused(&c, 64, "/dev/zero: is a character device", "expected a regular file");
    snprintf(c.text_file, sizeof c.text_file, "%s", tmpdir);
    expect_refused(&c, 64, "is a folder", tmpdir);
    path_in(c.text_file, sizeof c.text_file, "lm_fifo");
    CHECK(mkfifo(c.text_file, 0666) == 0, "mkfifo %s", c.text_file);
    alarm(20);
    expect_refused(&c, 64, "lm_fifo: is a FIFO", "expected a regular file");
    alarm(0);
    remove(c.text_file);
}

// task.eval_length beyond the longest context used to reach batch_alloc (out of memory for
// 4 x 2147483645) or overflow an int in lm.c; task_create now holds every task key to the
// schema's range, the same check a config file gets.
static void test_eval_length_limit(void) {
    char dir[200], path[300];
    fresh_dir(dir, sizeof dir, "lmlimit");
    const char *names[] = {"train.txt", "valid.txt", "test.txt"};
    for (int i = 0; i < 3; i++) {
        snprintf(path, sizeof path, "%s/%s", dir, names[i]);
        write_text(path, "a few words of text, repeated; a few words of text, repeated.\n");
    }
    TaskConfig c = cfg_for("lm");
    snprintf(c.data_dir, sizeof c.data_dir, "%s", dir);
    c.eval_length = 2147483647;
    expect_refused(&c, 16, "task.eval_length: 2147483647 is out of range [0, 1048576]", NULL);
    c.eval_length = 1048576;
    Task *t = make(&c, 16, 1);
    CHECK(t && task_split_max_length(t, "valid") == 61, "a window longer than the text: %d", t ? task_split_max_length(t, "valid") : -1);
    task_free(t);
    TaskConfig f = cfg_for("flipflop");
    f.eval_length = 2147483646;
    expect_refused(&f, 512, "task.eval_length: 2147483646 is out of range [0, 1048576]", NULL);
    f = cfg_for("selcopy");
    f.n_blanks = 2147483640;  // n_blanks + 2 n_tokens used to overflow
    expect_refused(&f, 512, "task.n_blanks: 2147483640 is out of range [0, 10000000]", NULL);
    f = cfg_for("counting");
    f.nvars = 27;
    expect_refused(&f, 512, "task.nvars: 27 is out of range [1, 26]", NULL);
    f = cfg_for("flipflop");
    f.p_ignore = NAN;
    expect_refused(&f, 512, "task.p_ignore: nan is out of range [0, 0.999999]", NULL);
    snprintf(f.loss_on, sizeof f.loss_on, "both");
    f.p_ignore = 0.5;
    expect_refused(&f, 512, "task.loss_on: \"both\" is not one of auto|all|answer", NULL);
}

// batch_init reports what it could not allocate; batch_alloc (for the programs) prints the same
// and exits 1.
static void test_batch_alloc_refusals(void) {
    Batch b;
    char err[256] = "";
    CHECK(batch_init(&b, 4, 2147483645, err, sizeof err) == -1 && strstr(err, "batch of 4 x 2147483645") &&
              strstr(err, "1048576"),
          "T beyond the longest context: %s", err);
    printf("     %s\n", err);
    CHECK(batch_init(&b, 0, 8, err, sizeof err) == -1 && strstr(err, "batch of 0 x 8"), "no rows: %s", err);
    CHECK(batch_init(&b, 2147483647, 1048576, err, sizeof err) == -1 && strstr(err, "batch of 2147483647 x 1048576") &&
              strstr(err, "out of memory"),
          "too large to hold: %s", err);
    printf("     %s\n", err);
    CHECK(batch_init(&b, 3, 7, err, sizeof err) == 0 && b.cap_B == 3 && b.cap_T == 7 && b.tokens && b.key_pad,
          "a small batch: %s", err);
    batch_free(&b);
    fflush(stdout);
    int fds[2];
    CHECK(pipe(fds) == 0, "pipe");
    pid_t pid = fork();
    if (pid == 0) {
        dup2(fds[1], 2);
        batch_alloc(&b, 4, 2147483645);
        _exit(0);
    }
    close(fds[1]);
    char msg[512] = "";
    ssize_t got = read(fds[0], msg, sizeof msg - 1);
    msg[got > 0 ? got : 0] = 0;
    close(fds[0]);
    int status = 0;
    waitpid(pid, &status, 0);
    CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 1 && strstr(msg, "batch of 4 x 2147483645"),
          "batch_alloc: status %d, message \"%s\"", status, msg);
}

// A key that has no effect in the chosen setting must keep its default: a value given for it used
// to be ignored without a word (train_sequences beside data_dir, a text_file beside a data_dir...).
static void test_unused_keys(void) {
    char dir[200], path[TASK_STR];
    fresh_dir(dir, sizeof dir, "unused");
    snprintf(path, sizeof path, "%s/train.txt", dir);
    write_text(path, "w1i0r1r1\n");
    TaskConfig f = cfg_for("flipflop");
    f.length = 8;
    f.train_sequences = 5;
    snprintf(f.data_dir, sizeof f.data_dir, "%s", dir);
    expect_refused(&f, 64, "task.train_sequences: 5 has no effect with task.data_dir", "leave it out");

    TaskConfig c = cfg_for("counting");
    snprintf(c.data_dir, sizeof c.data_dir, "%s", dir);
    c.n_train = 500;
    expect_refused(&c, 64, "task.n_train: 500 has no effect with task.data_dir", NULL);
    c.n_train = 10000;
    snprintf(c.write_dir, sizeof c.write_dir, "%s/out", dir);
    expect_refused(&c, 64, "task.write_dir: \"", "has no effect with task.data_dir");

    TaskConfig l = cfg_for("lm");
    snprintf(l.text_file, sizeof l.text_file, "%s", path);
    snprintf(l.data_dir, sizeof l.data_dir, "%s", dir);
    expect_refused(&l, 4, "task.data_dir: \"", "has no effect with task.text_file");
    l.data_dir[0] = 0;
    snprintf(l.valid_file, sizeof l.valid_file, "v.txt");
    expect_refused(&l, 4, "task.valid_file: \"v.txt\" has no effect with task.text_file", NULL);
    l = cfg_for("lm");
    snprintf(l.data_dir, sizeof l.data_dir, "%s", dir);
    l.test_fraction = 0.1;
    expect_refused(&l, 4, "task.test_fraction: 0.1 applies to task.text_file only", NULL);
    l.test_fraction = 0.05;
    l.min_count = 3;
    expect_refused(&l, 4, "task.min_count: 3 applies to the word tokenizer only", NULL);
}

int main(void) {
    snprintf(tmpdir, sizeof tmpdir, "/tmp/test_tasks_XXXXXX");
    if (!mkdtemp(tmpdir)) {
        perror("mkdtemp");
        return 1;
    }
    signal(SIGALRM, on_alarm);
    RUN(test_flipflop_generator);
    RUN(test_flipflop_masks_and_eval_determinism);
    RUN(test_flipflop_resume);
    RUN(test_flipflop_files);
    RUN(test_flipflop_needs_reads);
    RUN(test_flipflop_files_not_regular);
    RUN(test_counting_vocabulary);
    RUN(test_counting_statistics);
    RUN(test_counting_loss_all_and_resume);
    RUN(test_counting_files);
    RUN(test_counting_json_traps);
    RUN(test_selcopy);
    RUN(test_lm_bytes);
    RUN(test_lm_words);
    RUN(test_lm_tiny_splits);
    RUN(test_lm_words_nul);
    RUN(test_lm_files_not_regular);
    RUN(test_eval_length_limit);
    RUN(test_batch_alloc_refusals);
    RUN(test_unused_keys);
    char cmd[300];
    snprintf(cmd, sizeof cmd, "rm -rf %s", tmpdir);
    if (system(cmd) != 0) fprintf(stderr, "could not remove %s\n", tmpdir);
    return check_summary("tasks");
}
