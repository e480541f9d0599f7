// The "task" config section's schema (task_config_keys), its defaults, and the refusal of keys a
// setting leaves unused.
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config.h"
#include "error.h"
#include "tasks/task_impl.h"

// The schema of the "task" section: the keys every task reads (common_keys), the keys several tasks
// read (shared_keys: a task names those it reads in TaskOps.shared_keys), then each task's own keys
// (TaskOps.keys), in the registry's order. A key applies to the tasks that read it, so config.c
// refuses it under another. Defaults are JSON text; task_config_defaults parses them, so these tables
// are the only place a default is written. [UNKNOWN] marks a choice the paper does not specify.

enum { MAX_TASK_KEYS = 96, TEXT = 1024 };

static ConfigKey common_keys[] = {
    {"task", "name", KEY_CHOICE, TASK_KEY(name), 0, 0, NULL /* the registry */, "\"flipflop\"", 0, NULL, NULL /* the tasks' titles */},
    {"task", "loss_on", KEY_CHOICE, TASK_KEY(loss_on), 0, 0, "auto|all|answer", "\"auto\"", 0, NULL,
     NULL /* from the tasks' answers */},
    {"task", "data_seed", KEY_INT, TASK_KEY(data_seed), -1, TASK_INT_MAX, NULL, "-1", 0, NULL,
     "seed of the data (counting data sets, evaluation splits); -1 = the run seed. Training order "
     "always follows the run seed"},
};

static const ConfigKey shared_keys[] = {
    {"task", "data_dir", KEY_STRING, TASK_KEY(data_dir), 0, 0, NULL, "\"\"", 0, NULL,
     "load data from this folder instead of generating it (see data/README.md): flipflop train.txt "
     "(+ optional valid/test/sparse/dense.txt), counting train/valid/test.jsonl (official format), lm "
     "train_file/valid_file/test_file"},
    {"task", "write_dir", KEY_STRING, TASK_KEY(write_dir), 0, 0, NULL, "\"\"", 1, NULL,
     "write the generated data to this folder at start-up, in the format data_dir loads"},
    {"task", "eval_sequences", KEY_INT, TASK_KEY(eval_sequences), 1, TASK_INT_MAX, NULL, "1000", 1, NULL,
     "sequences in each generated evaluation split [UNKNOWN: the flip-flop release has 16k val, 160k "
     "sparse, 4k dense]"},
    {"task", "eval_length", KEY_INT, TASK_KEY(eval_length), 0, TASK_MAX_CONTEXT, NULL, "0", 1, NULL,
     "flipflop: tokens per evaluation sequence (0 = task.length); lm: evaluation window in tokens (0 = "
     "model.block_size; longer windows test length generalisation)"},
    {"task", "train_sequences", KEY_INT, TASK_KEY(train_sequences), 0, TASK_INT_MAX, NULL, "0", 0, NULL,
     "0 = train on an endless stream of fresh sequences; N = on a fixed set of N generated sequences, "
     "reshuffled every epoch"},
};

#define COUNT(a) (int)(sizeof a / sizeof a[0])
enum { N_SHARED = COUNT(shared_keys) };

static ConfigKey schema[MAX_TASK_KEYS];
static int schema_n = -1;
// task.name's choices and doc, task.loss_on's doc, and each shared key's `applies`.
static char name_choices[TEXT], name_doc[TEXT], loss_doc[TEXT], shared_applies[N_SHARED][TEXT];

// Appends s to buf (of TEXT bytes), after sep unless buf is empty.
static void append(char *buf, const char *sep, const char *s) {
    size_t n = strlen(buf);
    snprintf(buf + n, TEXT - n, "%s%s", n ? sep : "", s);
}

// Appends to buf the names of the registered tasks for which pick(ops) holds, as "a, b and c".
static void list_tasks(char *buf, int (*pick)(const TaskOps *)) {
    char list[TEXT] = "";
    int n = 0, k = 0;
    for (int i = 0; task_registry[i]; i++) n += pick(task_registry[i]);
    for (int i = 0; task_registry[i]; i++)
        if (pick(task_registry[i])) append(list, ++k == n ? " and " : ", ", task_registry[i]->name);
    append(buf, "", list);
}
static int answer_by_default(const TaskOps *o) { return o->answer_loss_auto; }
static int all_by_default(const TaskOps *o) { return !o->answer_loss_auto; }

// task.name and task.loss_on from the registry: the choices, each task's title and answer tokens.
static void describe_tasks(void) {
    char answers[TEXT] = "";
    int n = 0;
    for (int i = 0; task_registry[i]; i++) n++;
    snprintf(name_doc, TEXT, "the task: ");
    for (int i = 0; task_registry[i]; i++) {
        const TaskOps *o = task_registry[i];
        append(name_choices, "|", o->name);
        append(name_doc, i == 0 ? "" : i == n - 1 ? ", or " : ", ", o->title);
        if (o->answer) {
            append(answers, "; ", o->name);
            append(answers, ": ", o->answer);
        }
    }
    snprintf(loss_doc, TEXT, "tokens the loss counts: all next tokens, or only the answer tokens (%s); auto = answer for ",
             answers);
    list_tasks(loss_doc, answer_by_default);
    append(loss_doc, "", ", all for ");
    list_tasks(loss_doc, all_by_default);
    common_keys[0].choices = name_choices;
    common_keys[0].doc = name_doc;
    common_keys[1].doc = loss_doc;
}

// Does the '|'-separated list hold name?
static int listed(const char *list, const char *name) {
    size_t len = strlen(name);
    for (const char *p = list; p && *p; p += strcspn(p, "|"), p += *p == '|')
        if (strcspn(p, "|") == len && !strncmp(p, name, len)) return 1;
    return 0;
}

static void add_key(const ConfigKey *k, const char *applies) {
    if (schema_n >= MAX_TASK_KEYS) {  // a programming error: raise MAX_TASK_KEYS
        fprintf(stderr, "task keys: more than %d\n", MAX_TASK_KEYS);
        abort();
    }
    schema[schema_n] = *k;
    schema[schema_n++].applies = applies;
}

static void build_schema(void) {
    describe_tasks();
    schema_n = 0;
    for (int i = 0; i < COUNT(common_keys); i++) add_key(&common_keys[i], NULL);
    for (int i = 0; i < N_SHARED; i++) {
        for (int t = 0; task_registry[t]; t++)
            if (listed(task_registry[t]->shared_keys, shared_keys[i].name))
                append(shared_applies[i], "|", task_registry[t]->name);
        add_key(&shared_keys[i], shared_applies[i]);
    }
    for (int t = 0; task_registry[t]; t++)
        for (int i = 0; i < task_registry[t]->n_keys; i++) add_key(&task_registry[t]->keys[i], task_registry[t]->name);
}

const ConfigKey *task_config_keys(int *n) {
    if (schema_n < 0) build_schema();
    *n = schema_n;
    return schema;
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
