// The config schema, loading, validation messages, overrides, the JSON round trip and the resume check.
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "check.h"
#include "config.h"

static char tmpdir[64];
static char err[512];

// A reader that blocks on a FIFO fails the suite instead of hanging it.
static void on_alarm(int sig) {
    (void)sig;
    static const char msg[] = "FAIL: the config reader blocked on a FIFO (alarm after 20 s)\n";
    if (write(2, msg, sizeof msg - 1) < 0) _exit(2);
    _exit(1);
}

// Writes text to <tmpdir>/<name> and returns the path (a static buffer per call site is enough: each
// test uses the path before writing the next file).
static const char *write_cfg(const char *name, const char *text) {
    static char path[128];
    snprintf(path, sizeof path, "%s/%s", tmpdir, name);
    FILE *f = fopen(path, "w");
    if (!f) {
        perror(path);
        exit(1);
    }
    fputs(text, f);
    fclose(f);
    return path;
}

// Loads text (as <tmpdir>/x.json) with the overrides; returns config_load's result.
static int load(Config *c, const char *text, const char *const *ov, int n_ov) {
    err[0] = 0;
    return config_load(c, write_cfg("x.json", text), ov, n_ov, err, sizeof err);
}

// Expects the load to fail with a message containing every one of the NULL-terminated needles.
static void expect_error(const char *text, const char *const *ov, int n_ov, const char *const *needles) {
    Config c;
    int rc = load(&c, text, ov, n_ov);
    CHECK(rc == -1, "expected a refusal for %s", text);
    for (int i = 0; needles[i]; i++)
        CHECK(strstr(err, needles[i]) != NULL, "message \"%s\" lacks \"%s\" (config %s)", err, needles[i], text);
    CHECK(strchr(err, '\n') == NULL, "message is not one line: %s", err);
    printf("     %s\n", err);
}
#define EXPECT_ERROR(text, ...) expect_error(text, NULL, 0, (const char *const[]){__VA_ARGS__, NULL})
#define EXPECT_SET_ERROR(text, ov, ...) \
    expect_error(text, (const char *const[]){ov}, 1, (const char *const[]){__VA_ARGS__, NULL})

static void test_schema_is_consistent(void) {
    CHECK(config_schema_check(err, sizeof err) == 0, "%s", err);
    int n;
    const ConfigKey *s = config_schema(&n);
    CHECK(n > 40, "only %d keys", n);
    int has_task_name = 0;
    for (int i = 0; i < n; i++) has_task_name |= !strcmp(s[i].section, "task") && !strcmp(s[i].name, "name");
    CHECK(has_task_name, "task.name missing from the schema");
}

// Setting each key explicitly to its own default (under a selector value it applies to) loads.
static void test_every_default_validates(void) {
    int n;
    const ConfigKey *s = config_schema(&n);
    for (int i = 0; i < n; i++) {
        char ov[2][320];
        const char *ovp[2];
        int k = 0;
        if (s[i].applies) {
            const char *sel = !strcmp(s[i].section, "pe") ? "type" : "name";
            size_t len = strcspn(s[i].applies, "|");
            snprintf(ov[k], sizeof ov[k], "%s.%s=%.*s", s[i].section, sel, (int)len, s[i].applies);
            ovp[k] = ov[k];
            k++;
        }
        snprintf(ov[k], sizeof ov[k], "%s.%s=%s", s[i].section, s[i].name, s[i].def);
        ovp[k] = ov[k];
        k++;
        Config c;
        CHECK(load(&c, "{}", ovp, k) == 0, "%s.%s = its default %s: %s", s[i].section, s[i].name, s[i].def, err);
    }
}

static void test_defaults_resolved(void) {
    Config c;
    CHECK(config_load(&c, write_cfg("flip_cope.json", "{}"), NULL, 0, err, sizeof err) == 0, "%s", err);
    CHECK(c.model.n_layers == 4 && c.model.d_model == 256 && c.model.n_heads == 4, "model shape");
    CHECK(c.model.d_ff == 1024, "d_ff resolved to %d, want 4*256", c.model.d_ff);
    CHECK(!strcmp(c.model.norm, "post") && !strcmp(c.model.activation, "relu"), "norm/activation");
    CHECK(c.model.tie_embeddings == 1 && c.model.dropout == 0.1 && c.model.block_size == 512, "tie/dropout/block");
    CHECK(!strcmp(c.pe.type, "abs") && !strcmp(c.pe.abs_kind, "learned"), "pe type");
    CHECK(c.pe.npos == 513, "npos resolved to %d, want block_size+1", c.pe.npos);
    CHECK(c.pe.rel_max_distance == 512, "rel_max_distance resolved to %d", c.pe.rel_max_distance);
    CHECK(c.pe.every_k_layers == 1 && c.pe.rope_base == 10000, "every_k/rope_base");
    CHECK(!strcmp(c.train.optimizer, "adamw") && c.train.lr == 3e-4 && c.train.beta2 == 0.999, "optimizer");
    CHECK(c.train.eps == 1e-8 && c.train.weight_decay == 0.1 && !strcmp(c.train.schedule, "cosine"), "adam");
    CHECK(c.train.grad_clip == 1.0 && c.train.batch_size == 16 && c.train.grad_accum == 1, "batch");
    CHECK(c.train.steps == 1000 && c.train.eval_interval == 100 && c.train.keep_checkpoints == 3, "intervals");
    CHECK(!strcmp(c.train.loss_norm, "token"), "loss_norm");
    CHECK(!strcmp(c.run.name, "flip_cope"), "run.name from the file stem: \"%s\"", c.run.name);
    CHECK(!strcmp(c.run.out_dir, "runs") && c.run.seed == 1 && c.run.threads == 0, "run");
    CHECK(!strcmp(c.task.name, "flipflop") || c.task.name[0], "task.name has a default");
}

// The task section's defaults are tasks/task.c's (this also links the real task_config_keys rather
// than config.c's weak stand-in).
static void test_task_defaults_agree(void) {
    Config c;
    CHECK(load(&c, "{}", NULL, 0) == 0, "%s", err);
    TaskConfig tc;
    memset(&tc, 0, sizeof tc);
    task_config_defaults(&tc);
    CHECK(memcmp(&tc, &c.task, sizeof tc) == 0, "task_config_defaults differs from the loaded task section");
    int n, nt;
    const ConfigKey *s = config_schema(&n);
    const ConfigKey *t = task_config_keys(&nt);
    CHECK(n > nt && !memcmp(s + n - nt, t, sizeof *t * (size_t)nt), "the schema ends with the task keys");
}

static void test_file_values(void) {
    Config c;
    int rc = load(&c,
                  "{\n"
                  "  \"model\": {\"n_layers\": 2, \"d_model\": 64, \"d_ff\": 100, \"norm\": \"pre\", \"block_size\": 128},\n"
                  "  \"pe\": {\"type\": \"cope+rel\", \"npos\": 64, \"every_k_layers\": 2, \"rel_max_distance\": 32},\n"
                  "  \"train\": {\"lr\": 1e-3, \"batch_size\": 8, \"grad_accum\": 4, \"steps\": 20},\n"
                  "  \"run\": {\"name\": \"mine\", \"seed\": 123456789012}\n"
                  "}\n",
                  NULL, 0);
    CHECK(rc == 0, "%s", err);
    CHECK(c.model.n_layers == 2 && c.model.d_model == 64 && c.model.d_ff == 100, "model");
    CHECK(!strcmp(c.model.norm, "pre") && c.model.block_size == 128, "norm/block");
    CHECK(!strcmp(c.pe.type, "cope+rel") && c.pe.npos == 64 && c.pe.every_k_layers == 2, "pe");
    CHECK(c.pe.rel_max_distance == 32, "rel_max_distance %d", c.pe.rel_max_distance);
    CHECK(c.train.lr == 1e-3 && c.train.grad_accum == 4 && c.train.steps == 20, "train");
    CHECK(!strcmp(c.run.name, "mine") && c.run.seed == 123456789012L, "run: %s %ld", c.run.name, c.run.seed);
}

static void test_unknown_keys_suggest(void) {
    EXPECT_ERROR("{\"train\": {\"lrr\": 1}}", "x.json", "unknown key \"train.lrr\"", "did you mean \"train.lr\"");
    EXPECT_ERROR("{\"modle\": {}}", "unknown section \"modle\"", "did you mean \"model\"");
    EXPECT_ERROR("{\"train\": {\"dropout\": 0.2}}", "train.dropout", "did you mean \"model.dropout\"");
    EXPECT_ERROR("{\"pe\": {\"n_pos\": 3}}", "pe.n_pos", "did you mean \"pe.npos\"");
    EXPECT_ERROR("{\"train\": {\"zzzzzzzzzzzzz\": 1}}", "unknown key \"train.zzzzzzzzzzzzz\"");
    Config c;
    load(&c, "{\"train\": {\"zzzzzzzzzzzzz\": 1}}", NULL, 0);
    CHECK(!strstr(err, "did you mean"), "no suggestion expected for nonsense: %s", err);
    EXPECT_ERROR("{\"train\": {\"lr\": 1e-3, \"lr\": 2e-3}}", "train.lr", "twice");
}

static void test_type_errors(void) {
    EXPECT_ERROR("{\"train\": {\"lr\": \"fast\"}}", "x.json: train.lr: expected a number, got \"fast\"");
    EXPECT_ERROR("{\"model\": {\"n_layers\": 3.5}}", "model.n_layers", "expected an integer", "3.5");
    EXPECT_ERROR("{\"model\": {\"tie_embeddings\": 1}}", "model.tie_embeddings", "true or false");
    EXPECT_ERROR("{\"run\": {\"name\": 7}}", "run.name", "expected a string");
    EXPECT_ERROR("{\"model\": {\"norm\": [\"pre\"]}}", "model.norm", "post|pre");
    EXPECT_ERROR("{\"model\": 4}", "model", "expected an object");
    EXPECT_ERROR("[1, 2]", "x.json", "expected a JSON object");
    Config c;
    CHECK(load(&c, "{\"model\": {\"n_layers\": 3.0}, \"train\": {\"steps\": 1e3}}", NULL, 0) == 0, "%s", err);
    CHECK(c.model.n_layers == 3 && c.train.steps == 1000, "integral numbers are integers");
}

static void test_range_and_choice_errors(void) {
    EXPECT_ERROR("{\"model\": {\"n_layers\": 0}}", "model.n_layers", "0 is out of range [1, 1024]");
    EXPECT_ERROR("{\"train\": {\"lr\": -1}}", "train.lr", "-1", "out of range");
    EXPECT_ERROR("{\"model\": {\"dropout\": 1.5}}", "model.dropout", "1.5", "out of range");
    EXPECT_ERROR("{\"run\": {\"seed\": -2}}", "run.seed", "-2");
    EXPECT_ERROR("{\"pe\": {\"type\": \"cpoe\"}}", "pe.type", "\"cpoe\"", "none|abs|rel", "did you mean \"cope\"");
    EXPECT_ERROR("{\"train\": {\"schedule\": \"exp\"}}", "train.schedule", "constant|linear|cosine");
    EXPECT_ERROR("{\"pe\": {\"type\": \"cope\", \"keep_gates\": \"yes\"}}", "pe.keep_gates", "\"yes\"",
                 "auto|always|never");
    char big[400] = "{\"run\": {\"name\": \"";
    memset(big + strlen(big), 'a', 300);
    strcpy(big + strlen(big), "\"}}");
    EXPECT_ERROR(big, "run.name", "too long");
}

static void test_applies(void) {
    EXPECT_ERROR("{\"pe\": {\"npos\": 64}}", "x.json: pe.npos applies to pe.type cope|cope+rel|cope+rope, not \"abs\"");
    EXPECT_ERROR("{\"pe\": {\"type\": \"cope\", \"rope_base\": 500}}", "pe.rope_base", "rope|cope+rope", "\"cope\"");
    EXPECT_ERROR("{\"pe\": {\"type\": \"rel\", \"abs_kind\": \"sinusoidal\"}}", "pe.abs_kind", "abs|abs+rel");
    // explicitly setting a value equal to the default counts too
    EXPECT_ERROR("{\"pe\": {\"type\": \"none\", \"rel_capped\": false}}", "pe.rel_capped", "\"none\"");
    // pe.rel_capped is the old name of pe.rel_beyond "cap": it still loads, and a contradiction is refused
    EXPECT_ERROR("{\"pe\": {\"type\": \"rel\", \"rel_capped\": true, \"rel_beyond\": \"zero\"}}", "pe.rel_capped",
                 "contradicts pe.rel_beyond \"zero\"");
    Config c;
    CHECK(load(&c, "{\"pe\": {\"type\": \"cope\", \"npos\": 64}}", NULL, 0) == 0, "%s", err);
    // the selector may come from an override: the check runs after all of them
    const char *ov[] = {"pe.type=cope"};
    CHECK(load(&c, "{\"pe\": {\"npos\": 64}}", ov, 1) == 0, "%s", err);
    CHECK(c.pe.npos == 64, "npos %d", c.pe.npos);
    EXPECT_SET_ERROR("{\"pe\": {\"type\": \"cope\", \"npos\": 64}}", "pe.type=rel", "--set pe.type \"rel\": ",
                     "x.json sets pe.npos, which applies to pe.type cope|cope+rel|cope+rope only");
    EXPECT_SET_ERROR("{}", "pe.npos=8", "--set pe.npos applies to pe.type", "not \"abs\"");
}

static void test_cross_key(void) {
    EXPECT_ERROR("{\"model\": {\"d_model\": 250}}", "model.d_model 250", "model.n_heads 4");
    EXPECT_ERROR("{\"model\": {\"d_model\": 12}, \"pe\": {\"type\": \"rope\"}}", "even head dimension", "3");
    EXPECT_ERROR("{\"model\": {\"d_model\": 12}, \"pe\": {\"type\": \"cope+rope\"}}", "even head dimension");
    Config c;
    CHECK(load(&c, "{\"model\": {\"d_model\": 12}, \"pe\": {\"type\": \"cope\"}}", NULL, 0) == 0, "%s", err);
    EXPECT_ERROR("{\"train\": {\"batch_size\": 16, \"grad_accum\": 3}}", "train.batch_size 16", "train.grad_accum 3");
    EXPECT_ERROR("{\"pe\": {\"type\": \"cope\", \"every_k_layers\": 2}}", "pe.every_k_layers 2", "cope+rel");
    CHECK(load(&c, "{\"pe\": {\"type\": \"cope+rel\", \"every_k_layers\": 2}}", NULL, 0) == 0, "%s", err);
    EXPECT_ERROR("{\"pe\": {\"type\": \"cope+rel\", \"every_k_layers\": 5}}", "pe.every_k_layers 5",
                 "model.n_layers 4");
    EXPECT_ERROR("{\"pe\": {\"type\": \"cope\", \"npos\": 1}}", "pe.npos", "at least 2");
    EXPECT_ERROR("{\"train\": {\"beta1\": 1}}", "train.beta1", "below 1");
    EXPECT_ERROR("{\"model\": {\"dropout\": 1}}", "model.dropout", "below 1");
    EXPECT_ERROR("{\"train\": {\"lr\": 1e-4, \"lr_min\": 1e-3}}", "train.lr_min 0.001", "train.lr 0.0001");
    EXPECT_ERROR("{\"run\": {\"name\": \"a/b\"}}", "run.name", "a/b");
}

static void test_file_errors(void) {
    EXPECT_ERROR("{\n  \"model\": {\"n_layers\": 4,}\n}\n", "x.json", "invalid JSON", "line 2", "\"n_layers\": 4,}");
    EXPECT_ERROR("", "x.json", "invalid JSON", "unexpected end");
    EXPECT_ERROR("{} trailing", "x.json", "invalid JSON", "line 1");
    Config c;
    char missing[128];
    snprintf(missing, sizeof missing, "%s/missing.json", tmpdir);
    CHECK(config_load(&c, missing, NULL, 0, err, sizeof err) == -1, "a missing file loads");
    CHECK(strstr(err, missing) && strstr(err, "cannot open"), "message: %s", err);
    printf("     %s\n", err);
}

static void test_overrides(void) {
    Config c;
    const char *ov[] = {"train.lr=0.01", "run.name=x", "pe.type=cope", "pe.npos=64", "model.tie_embeddings=false",
                        "run.out_dir=\"out dir\""};
    CHECK(load(&c, "{\"train\": {\"lr\": 1e-3}}", ov, 6) == 0, "%s", err);
    CHECK(c.train.lr == 0.01, "lr %g", c.train.lr);
    CHECK(!strcmp(c.run.name, "x") && !strcmp(c.pe.type, "cope") && c.pe.npos == 64, "string/choice/int overrides");
    CHECK(c.model.tie_embeddings == 0 && !strcmp(c.run.out_dir, "out dir"), "bool and quoted string overrides");
    const char *ov2[] = {"run.name=2024", "train.lr=3e-4"};
    CHECK(load(&c, "{}", ov2, 2) == 0 && !strcmp(c.run.name, "2024") && c.train.lr == 3e-4, "%s", err);
    EXPECT_SET_ERROR("{}", "train.lr=fast", "--set train.lr: expected a number, got \"fast\"");
    EXPECT_SET_ERROR("{}", "train.lrr=1", "--set", "unknown key \"train.lrr\"", "did you mean \"train.lr\"");
    EXPECT_SET_ERROR("{}", "trian.lr=1", "unknown section \"trian\"", "did you mean \"train\"");
    EXPECT_SET_ERROR("{}", "model.n_layers=3.5", "--set model.n_layers", "expected an integer");
    EXPECT_SET_ERROR("{}", "model.n_layers=0", "--set model.n_layers", "out of range");
    EXPECT_SET_ERROR("{}", "pe.type=cpoe", "--set pe.type", "did you mean \"cope\"");
    EXPECT_SET_ERROR("{}", "lr", "expected section.key=value");
    EXPECT_SET_ERROR("{}", "model.d_model=102", "model.d_model 102", "model.n_heads");
}

// Configs that differ in many keys, for the round trip.
static const char *const variants[] = {
    "{}",
    "{\"pe\": {\"type\": \"none\"}, \"train\": {\"lr\": 0.30000000000000004, \"eps\": 1.2345678901234567e-9}}",
    "{\"pe\": {\"type\": \"abs\", \"abs_kind\": \"sinusoidal\"}, \"run\": {\"seed\": 9007199254740991}}",
    "{\"pe\": {\"type\": \"rel\", \"rel_capped\": true, \"rel_max_distance\": 40}}",
    "{\"pe\": {\"type\": \"rope\", \"rope_base\": 500000.5}, \"model\": {\"activation\": \"gelu\"}}",
    "{\"pe\": {\"type\": \"cope\", \"npos\": 17, \"nodiv\": true, \"sep_keys\": true, \"shared_table\": true}}",
    "{\"pe\": {\"type\": \"cope+rel\", \"every_k_layers\": 4}, \"train\": {\"optimizer\": \"adam\"}}",
    "{\"pe\": {\"type\": \"cope+rope\", \"rope_gates\": \"unrotated\"}, \"model\": {\"dropout\": 0}}",
    "{\"pe\": {\"type\": \"cope\", \"keep_gates\": \"never\"}}",
    "{\"pe\": {\"type\": \"abs+rel\"}, \"run\": {\"name\": \"q\\\"uote\", \"out_dir\": \"/tmp/é\"}}",
};

static void test_json_round_trip(void) {
    for (size_t v = 0; v < sizeof variants / sizeof variants[0]; v++) {
        Config a, b;
        if (load(&a, variants[v], NULL, 0)) {
            CHECK(0, "variant %zu: %s", v, err);
            continue;
        }
        char *json = config_to_json(&a);
        CHECK(json != NULL, "config_to_json failed");
        if (!json) continue;
        memset(&b, 0xab, sizeof b);
        int rc = config_from_json(&b, json, "checkpoint", err, sizeof err);
        CHECK(rc == 0, "variant %zu does not load back: %s\n%s", v, err, json);
        CHECK(rc || memcmp(&a, &b, sizeof a) == 0, "variant %zu: the Config differs after the round trip", v);
        char *json2 = rc ? NULL : config_to_json(&b);
        CHECK(rc || (json2 && !strcmp(json, json2)), "variant %zu: the JSON differs the second time", v);
        if (v == 1) CHECK(strstr(json, "0.30000000000000004") != NULL, "doubles print exactly:\n%s", json);
        if (v == 0) CHECK(strstr(json, "\"npos\"") == NULL, "keys that do not apply are left out:\n%s", json);
        free(json);
        free(json2);
    }
    Config c;
    CHECK(config_from_json(&c, "{}", "ckpt.bin", err, sizeof err) == -1 && strstr(err, "run.name"),
          "config_from_json needs run.name: %s", err);
    CHECK(config_from_json(&c, "{\"run\": {\"name\": \"r\"}}", "ckpt.bin", err, sizeof err) == 0, "%s", err);
    CHECK(config_from_json(&c, "{\"run\": {\"nmae\": \"r\"}}", "ckpt.bin", err, sizeof err) == -1 &&
              strstr(err, "ckpt.bin") && strstr(err, "run.name"),
          "%s", err);
}

static void test_load_text(void) {
    Config c;
    const char *ov[] = {"train.steps=7"};
    CHECK(config_load_text(&c, "{\"run\": {\"name\": \"emb\"}}", "(embedded)", ov, 1, err, sizeof err) == 0, "%s",
          err);
    CHECK(!strcmp(c.run.name, "emb") && c.train.steps == 7 && c.model.d_ff == 1024, "embedded config values");
    const char *ov2[] = {"run.name=given"};
    CHECK(config_load_text(&c, "{}", "(embedded)", ov2, 1, err, sizeof err) == 0 && !strcmp(c.run.name, "given"),
          "run.name from an override: %s", err);
    CHECK(config_load_text(&c, "{}", "(embedded)", NULL, 0, err, sizeof err) == -1 && strstr(err, "(embedded)") &&
              strstr(err, "run.name"),
          "run.name must be set: %s", err);
    CHECK(config_load_text(&c, "{\"train\": {\"lr\": true}}", "(embedded)", NULL, 0, err, sizeof err) == -1 &&
              strstr(err, "(embedded): train.lr: expected a number, got true"),
          "%s", err);
}

static void test_resume_check(void) {
    Config saved, now;
    CHECK(load(&saved, "{\"train\": {\"steps\": 1000}}", NULL, 0) == 0, "%s", err);
    const char *safe[] = {"train.steps=2000", "train.log_interval=5", "run.threads=3"};
    CHECK(load(&now, "{}", safe, 3) == 0, "%s", err);
    char *buf = NULL;
    size_t len = 0;
    FILE *log = open_memstream(&buf, &len);
    CHECK(config_check_resume(&saved, &now, log, err, sizeof err) == 0, "safe changes refused: %s", err);
    fclose(log);
    CHECK(buf && strstr(buf, "resume: train.steps 1000 -> 2000\n"), "log: %s", buf ? buf : "");
    CHECK(buf && strstr(buf, "resume: run.threads 0 -> 3\n"), "log: %s", buf ? buf : "");
    free(buf);
    CHECK(config_check_resume(&saved, &saved, NULL, err, sizeof err) == 0, "identical configs refused");

    const char *unsafe[][1] = {{"model.d_model=128"}, {"pe.type=rel"}, {"train.optimizer=adam"}, {"run.seed=2"},
                               {"task.name=counting"}};
    const char *names[] = {"model.d_model", "pe.type", "train.optimizer", "run.seed", "task.name"};
    const char *values[][2] = {{"256", "128"}, {"\"abs\"", "\"rel\""}, {"\"adamw\"", "\"adam\""}, {"1", "2"},
                               {"\"", "\"counting\""}};
    for (int i = 0; i < 5; i++) {
        CHECK(load(&now, "{}", unsafe[i], 1) == 0, "%s", err);
        CHECK(config_check_resume(&saved, &now, NULL, err, sizeof err) == -1, "%s accepted", names[i]);
        CHECK(strstr(err, names[i]) && strstr(err, values[i][0]) && strstr(err, values[i][1]), "message: %s", err);
        printf("     %s\n", err);
    }
}

static void test_print_marks_changes(void) {
    Config c;
    const char *ov[] = {"pe.type=cope", "train.lr=0.001"};
    CHECK(load(&c, "{}", ov, 2) == 0, "%s", err);
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);
    config_print(&c, f);
    fclose(f);
    CHECK(buf && strstr(buf, "* pe.type "), "pe.type not marked:\n%s", buf);
    CHECK(buf && strstr(buf, "* train.lr ") && strstr(buf, "0.001\n"), "train.lr not marked:\n%s", buf);
    CHECK(buf && strstr(buf, "  model.d_ff "), "the derived d_ff is not a change:\n%s", buf);
    CHECK(buf && strstr(buf, "  pe.npos ") && strstr(buf, " 513\n"), "npos resolved and unmarked:\n%s", buf);
    CHECK(buf && !strstr(buf, "pe.abs_kind"), "keys that do not apply are not printed:\n%s", buf);
    free(buf);
}

static void test_markdown_lists_every_key(void) {
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);
    config_schema_markdown(f);
    fclose(f);
    int n;
    const ConfigKey *s = config_schema(&n);
    for (int i = 0; i < n; i++) {
        char cell[128];
        snprintf(cell, sizeof cell, "| `%s.%s` |", s[i].section, s[i].name);
        CHECK(buf && strstr(buf, cell), "%s missing from the markdown table", cell);
    }
    int lines = 0;
    for (char *p = buf; p && *p; p++) lines += *p == '\n';
    CHECK(lines == n + 2, "%d lines for %d keys", lines, n);
    free(buf);
}

// JSON that cJSON reads without complaint but not as written: a \u0000 escape cuts a string short
// (run.name "ab\u0000cd" became "ab"), and numbers beyond a double become infinity or 0 (1e400 was
// reported as "null is out of range"). Each is refused showing what was written, with the key.
static void test_json_traps(void) {
    EXPECT_ERROR("{\"run\": {\"name\": \"ab\\u0000cd\"}}", "x.json: line 1, column 21: run.name: the string contains \\u0000",
                 "after \"ab\"");
    EXPECT_SET_ERROR("{}", "run.name=\"ab\\u0000cd\"", "--set run.name: the string contains \\u0000");
    EXPECT_ERROR("{\"task\": {\"name\": \"lm\", \"text_file\": \"a\\u0000b\"}}", "task.text_file", "\\u0000");
    EXPECT_ERROR("{\"run\": {\"na\\u0000me\": \"x\"}}", "line 1, column 10: run: the key \"na...\" contains \\u0000");
    EXPECT_ERROR("{\"notes\": [\"fine\", \"not\\u0000 fine\"]}", "notes[1]", "\\u0000");
    EXPECT_ERROR("{\n  \"train\": {\"lr\": 1e400}\n}", "x.json: line 2, column 19: train.lr: 1e400 is not a finite number");
    EXPECT_ERROR("{\"train\": {\"lr\": -1E+400}}", "train.lr: -1E+400 is not a finite number");
    EXPECT_ERROR("{\"model\": {\"n_layers\": 2e308}}", "model.n_layers: 2e308 is not a finite number");
    EXPECT_ERROR("{\"train\": {\"eps\": 1e-400}}", "train.eps: 1e-400 is too small for a double");
    EXPECT_SET_ERROR("{}", "train.lr=1e400", "--set train.lr: 1e400 is not a finite number");
    Config c;
    // zero however written, and the smallest double, are numbers like any other
    CHECK(load(&c, "{\"train\": {\"lr\": 5e-324, \"lr_min\": 0e400, \"weight_decay\": 0.0e-999}}", NULL, 0) == 0, "%s",
          err);
    CHECK(c.train.lr > 0 && c.train.lr_min == 0 && c.train.weight_decay == 0, "5e-324, 0e400, 0.0e-999");
}

// String keys name folders and files and are printed one per line: control characters are refused.
// run.name is one folder under run.out_dir: "", ".", ".." and anything with '/' are refused; other
// names, dots included, are folder names like any other. run.out_dir is a path and may be anything.
static void test_string_values(void) {
    EXPECT_ERROR("{\"run\": {\"name\": \"a\\nb\"}}", "run.name", "control character 0x0a at byte 2");
    EXPECT_ERROR("{\"task\": {\"name\": \"lm\", \"data_dir\": \"data\\t\"}}", "task.data_dir", "control character 0x09");
    EXPECT_SET_ERROR("{}", "run.out_dir=\"runs\\u001b[31m\"", "--set run.out_dir", "control character 0x1b");
    EXPECT_ERROR("{\"run\": {\"name\": \"..\"}}", "run.name \"..\"", "folder name");
    EXPECT_ERROR("{\"run\": {\"name\": \".\"}}", "run.name \".\"", "folder name");
    EXPECT_ERROR("{\"run\": {\"name\": \"../up\"}}", "run.name \"../up\"", "without '/'");
    const char *fine[] = {"a..b", "..x", ".hidden", "lr=3e-4 (cope)", "é"};
    for (int i = 0; i < 5; i++) {
        char ov[64];
        snprintf(ov, sizeof ov, "run.name=%s", fine[i]);
        const char *ovp[] = {ov, "run.out_dir=../runs"};
        Config c;
        CHECK(load(&c, "{}", ovp, 2) == 0 && !strcmp(c.run.name, fine[i]), "run.name %s: %s", fine[i], err);
    }
}

// The config file itself: only a regular file is read (a FIFO would block, /dev/zero never ends),
// and at most 16 MiB of it.
static void test_config_file_kinds(void) {
    Config c;
    CHECK(config_load(&c, "/dev/zero", NULL, 0, err, sizeof err) == -1 &&
              strstr(err, "/dev/zero: is a character device, expected a regular file"),
          "/dev/zero: %s", err);
    printf("     %s\n", err);
    CHECK(config_load(&c, tmpdir, NULL, 0, err, sizeof err) == -1 && strstr(err, tmpdir) && strstr(err, "is a folder"),
          "a folder: %s", err);
    char path[128];
    snprintf(path, sizeof path, "%s/fifo.json", tmpdir);
    CHECK(mkfifo(path, 0666) == 0, "mkfifo");
    alarm(20);
    CHECK(config_load(&c, path, NULL, 0, err, sizeof err) == -1 && strstr(err, "fifo.json: is a FIFO"), "a FIFO: %s", err);
    alarm(0);
    unlink(path);
    snprintf(path, sizeof path, "%s/huge.json", tmpdir);
    FILE *f = fopen(path, "w");
    CHECK(f && ftruncate(fileno(f), 17 << 20) == 0, "a sparse 17 MiB file");
    if (f) fclose(f);
    CHECK(config_load(&c, path, NULL, 0, err, sizeof err) == -1 && strstr(err, "huge.json: 17825792 bytes") &&
              strstr(err, "16777216"),
          "17 MiB: %s", err);
    printf("     %s\n", err);
    unlink(path);
    snprintf(path, sizeof path, "%s/nul.json", tmpdir);
    f = fopen(path, "wb");
    fwrite("{\"run\":\n {\"name\": \"x\"}}\0junk", 1, 28, f);
    fclose(f);
    CHECK(config_load(&c, path, NULL, 0, err, sizeof err) == -1 && strstr(err, "nul.json: line 2, column 16: a NUL byte"),
          "a NUL byte: %s", err);
    printf("     %s\n", err);
    unlink(path);
}

// Task keys have the ranges batches can hold: an evaluation length beyond the longest context
// (model.block_size's maximum) is refused by name, not by an allocation failure later.
static void test_task_ranges(void) {
    EXPECT_ERROR("{\"task\": {\"name\": \"lm\", \"eval_length\": 2147483646}}",
                 "task.eval_length: 2147483646 is out of range [0, 1048576]");
    EXPECT_SET_ERROR("{}", "task.eval_length=2147483647", "--set task.eval_length: 2147483647 is out of range [0, 1048576]");
    Config c;
    const char *ov[] = {"task.eval_length=1048576"};
    CHECK(load(&c, "{}", ov, 1) == 0 && c.task.eval_length == 1048576, "the limit itself: %s", err);
}

// A key the file sets stops applying when an override changes its section's selector: the message
// names the override, since that is what the user typed (./eval --set task.name=lm on a flip-flop
// checkpoint used to hear only about task.write_dir).
static void test_selector_override(void) {
    EXPECT_SET_ERROR("{\"task\": {\"name\": \"flipflop\", \"write_dir\": \"\"}}", "task.name=lm", "--set task.name \"lm\": ",
                     "x.json sets task.write_dir, which applies to task.name flipflop|counting only");
    // a key set by an override under the old selector is named as before
    const char *ov[] = {"pe.npos=64", "pe.type=rope"};
    expect_error("{\"pe\": {\"type\": \"cope\"}}", ov, 2,
                 (const char *const[]){"--set pe.npos applies to pe.type cope|cope+rel|cope+rope, not \"rope\"", NULL});
}

// A message quotes what the user wrote with its control characters escaped, so that it stays one
// line (fuzz_config found keys and --set text with newlines printed as they were).
static void test_messages_one_line(void) {
    EXPECT_ERROR("{\"train\": {\"l\\nr\": 1}}", "unknown key \"train.l\\x0ar\"");
    EXPECT_ERROR("{\"tr\\u001bain\": {}}", "unknown section \"tr\\x1bain\"");
    EXPECT_ERROR("{\"train\":\t{\"lr\" 1}}", "invalid JSON at line 1, column 17: {\"train\":\\x09{\"lr\" 1}}");
    EXPECT_SET_ERROR("{}", "pe.t\n    x", "--set \"pe.t\\x0a    x\": expected section.key=value");
    EXPECT_SET_ERROR("{}", "pe.t\nx=1", "--set: unknown key \"pe.t\\x0ax\"");
    char path[128];
    snprintf(path, sizeof path, "%s/a\nb.json", tmpdir);
    FILE *f = fopen(path, "w");
    fputs("{}", f);
    fclose(f);
    Config c;
    CHECK(config_load(&c, path, NULL, 0, err, sizeof err) == -1 &&
              strstr(err, "run.name (the file name): control character 0x0a at byte 2"),
          "a file name with a newline as run.name: %s", err);
    unlink(path);
}

int main(void) {
    snprintf(tmpdir, sizeof tmpdir, "/tmp/test_config_XXXXXX");
    if (!mkdtemp(tmpdir)) {
        perror("mkdtemp");
        return 1;
    }
    signal(SIGALRM, on_alarm);
    RUN(test_schema_is_consistent);
    RUN(test_every_default_validates);
    RUN(test_defaults_resolved);
    RUN(test_task_defaults_agree);
    RUN(test_file_values);
    RUN(test_unknown_keys_suggest);
    RUN(test_type_errors);
    RUN(test_range_and_choice_errors);
    RUN(test_applies);
    RUN(test_cross_key);
    RUN(test_file_errors);
    RUN(test_overrides);
    RUN(test_json_round_trip);
    RUN(test_load_text);
    RUN(test_resume_check);
    RUN(test_print_marks_changes);
    RUN(test_markdown_lists_every_key);
    RUN(test_json_traps);
    RUN(test_string_values);
    RUN(test_config_file_kinds);
    RUN(test_task_ranges);
    RUN(test_selector_override);
    RUN(test_messages_one_line);
    char path[128];
    snprintf(path, sizeof path, "%s/x.json", tmpdir);
    unlink(path);
    snprintf(path, sizeof path, "%s/flip_cope.json", tmpdir);
    unlink(path);
    rmdir(tmpdir);
    return check_summary("config");
}
