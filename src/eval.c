// ./eval runs/<name> [options]: evaluates a trained run's checkpoint on any split of its task at one
// or more context lengths, or draws attention / CoPE heat maps for one sequence.
//
// Reads the checkpoint (its saved config and the parameters) and never writes to it; the only file
// it changes is runs/<name>/eval.jsonl (one line appended per split and length) or, with --heatmap,
// the PNGs in the folder given. The model's activations are sized for each evaluation length
// (model_prepare), so a model trained at T runs at any T' its position encoding allows;
// model_check_length refuses the others (learned absolute PE beyond block_size, uncapped relative PE
// beyond its table) and the other lengths still run.
#include <errno.h>
#include <limits.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "budget.h"
#include "args.h"
#include "config.h"
#include "evaluate.h"
#include "model.h"
#include "png.h"
#include "run.h"
#include "runlog.h"
#include "system.h"
#include "tasks/task.h"

#define MAX_LIST 64
// Query rows per attention block in evaluation (inference mode: the cache holds rows × T').
#define EVAL_ROWS 256

// Default memory budget for one evaluation batch's activations; --batch overrides it.
#define EVAL_BUDGET_BYTES (4.0 * 1073741824.0)

static void usage(void) {
    fprintf(stderr,
            "usage: ./eval runs/<name> [--checkpoint FILE] [--split S[,S...]] [--lengths N[,N...]]\n"
            "              [--sequences N] [--batch B] [--memory-limit M] [--set section.key=value]...\n"
            "       ./eval runs/<name> --heatmap OUT_DIR [--layer L] [--head H] [--sequence I] [--split S]\n"
            "              [--lengths N]\n"
            "  --checkpoint FILE  a checkpoint of the run (a path, or a file name in the run folder);\n"
            "                     default: the one `latest` names\n"
            "  --split S,...      splits to evaluate (default: every split of the task)\n"
            "  --lengths N,...    evaluation lengths: task.eval_length for each (flip-flop: tokens per\n"
            "                     sequence, the model sees N-1; lm: the window T' in tokens). Default:\n"
            "                     the run's own. Lengths the position encoding cannot run are refused,\n"
            "                     the others still run\n"
            "  --sequences N      evaluate the first N sequences (lm: windows) of each split (default: all)\n"
            "  --batch B          sequences per forward pass (default: the training micro-batch, reduced\n"
            "                     to keep activations under 4 GiB at long lengths)\n"
            "  --memory-limit M   refuse a length needing more than M bytes (e.g. 8G; default: the memory\n"
            "                     the machine has available)\n"
            "  --set k=v          override a task, run or train key as ./train does (e.g.\n"
            "                     task.p_sparse=0.9, run.threads=1); model and pe keys are refused\n"
            "  --heatmap DIR      instead of evaluating, write PNG heat maps of layer L, head H for\n"
            "                     sequence I of the (first) split at the (first) length: attention\n"
            "                     weights, and for CoPE layers the gates and the positions p_ij\n"
            "Language models: at length T' the split's tokens are cut into consecutive non-overlapping\n"
            "windows of T' tokens, each evaluated from an empty context, and every token of every\n"
            "window is scored; loss, ppl = exp(loss) and bits/tok are per token (of the run's\n"
            "tokenizer), bits/byte the same total over the text's bytes (comparable across tokenizers).\n"
            "Results are appended to runs/<name>/eval.jsonl.\n"
            "The checkpoint must belong to the run (its config that of runs/<name>/config.json).\n"
            "Exit status: 0, 3 when some lengths were refused (position encoding or memory), 2 for bad\n"
            "arguments, 1 for errors.\n");
}

// Splits a comma-separated list in place into at most MAX_LIST items.
static int split_list(char *s, char **items) {
    int n = 0;
    for (char *tok = strtok(s, ","); tok && n < MAX_LIST; tok = strtok(NULL, ",")) items[n++] = tok;
    return n;
}

static void json_string(FILE *f, const char *s) {
    fputc('"', f);
    for (; *s; s++) {
        unsigned char c = (unsigned char)*s;
        if (c == '"' || c == '\\')
            fprintf(f, "\\%c", c);
        else if (c < 0x20)
            fprintf(f, "\\u%04x", c);
        else
            fputc(c, f);
    }
    fputc('"', f);
}

// Refuses overrides that change the model the checkpoint holds: the "model" and "pe" sections of
// the two resolved configs must agree (model.dropout aside: evaluation runs without dropout).
// 0 when `now` holds the model of `saved`: the model and pe sections agree but for dropout and the
// keys ./eval may override (KEY_EVAL_SAFE).
static int same_model(const Config *saved, const Config *now, char *err, int errlen) {
    char *ja = config_to_json(saved), *jb = config_to_json(now);
    cJSON *a = cJSON_Parse(ja), *b = cJSON_Parse(jb);
    free(ja);
    free(jb);
    int rc = 0;
    const char *secs[2] = {"model", "pe"};
    for (int s = 0; s < 2 && rc == 0; s++) {
        cJSON *sa = cJSON_GetObjectItem(a, secs[s]), *sb = cJSON_GetObjectItem(b, secs[s]);
        cJSON_DeleteItemFromObject(sa, "dropout");
        cJSON_DeleteItemFromObject(sb, "dropout");
        for (cJSON *k = sa ? sa->child : NULL; k && rc == 0; k = k->next) {
            cJSON *o = cJSON_GetObjectItem(sb, k->string);
            const ConfigKey *key = config_find_key(secs[s], k->string);
            if (key && (key->flags & KEY_EVAL_SAFE)) continue;
            if (!o || !cJSON_Compare(k, o, 1)) {
                snprintf(err, errlen, "--set %s.%s changes the model the checkpoint holds; only task, train and run keys (and "
                         "pe.rel_beyond) can be overridden", secs[s], k->string);
                rc = -1;
            }
        }
        for (cJSON *k = sb ? sb->child : NULL; k && rc == 0; k = k->next)
            if (!cJSON_GetObjectItem(sa, k->string)) {
                snprintf(err, errlen, "--set %s.%s changes the model the checkpoint holds; only task, train and run keys (and "
                         "pe.rel_beyond) can be overridden", secs[s], k->string);
                rc = -1;
            }
    }
    cJSON_Delete(a);
    cJSON_Delete(b);
    return rc;
}

// The vocabulary must be the one the model was trained with (e.g. a counting data set with
// another seed numbers its words differently).
static int same_vocab(Task *a, Task *b, char *err, int errlen) {
    int V = task_vocab_size(a);
    if (task_vocab_size(b) != V) {
        snprintf(err, errlen, "the overridden task has a vocabulary of %d tokens, the model was trained with %d",
                 task_vocab_size(b), V);
        return -1;
    }
    for (int i = 0; i < V; i++)
        if (strcmp(task_token_str(a, i), task_token_str(b, i)) != 0) {
            snprintf(err, errlen, "the overridden task numbers its vocabulary differently (token %d is \"%s\", was \"%s\")", i,
                     task_token_str(b, i), task_token_str(a, i));
            return -1;
        }
    return 0;
}

// The evaluation length a config resolves to: task.eval_length, or the task's default for it.
static long resolved_length(const Config *c, int context) {
    int length = task_eval_length(&c->task, c->model.block_size);
    return length > 0 ? length : context;  // 0: the task has no evaluation length of its own
}

static int eval_batch_size(Model *m, const Config *c, int T, long requested) {
    if (requested > 0) return (int)requested;
    int micro = c->train.batch_size / (c->train.grad_accum > 0 ? c->train.grad_accum : 1);
    double fit_d = EVAL_BUDGET_BYTES / model_activation_bytes(m, 1, T);
    int fit = fit_d < micro ? (int)fit_d : micro;
    int B = micro < fit ? micro : fit;
    return B > 0 ? B : 1;
}

// The config for one evaluation length: the checkpoint's config, the --set overrides, then
// task.eval_length (length > 0). Generated data is never written from here (task.write_dir off).
static int length_config(Config *c, const char *json, const char *src, const char **sets, int n_sets, long length,
                         char *err, int errlen) {
    const char **ov = malloc(sizeof *ov * (size_t)(n_sets + 1));
    char lenbuf[64];
    if (!ov) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    for (int i = 0; i < n_sets; i++) ov[i] = sets[i];
    int n = n_sets;
    if (length > 0) {
        snprintf(lenbuf, sizeof lenbuf, "task.eval_length=%ld", length);
        ov[n++] = lenbuf;
    }
    int rc = config_load_text(c, json, src, ov, n, err, errlen);
    free(ov);
    if (rc != 0) return -1;
    c->task.write_dir[0] = '\0';
    return 0;
}

// ---------------------------------------------------------------------------------------------
// Heat maps

static int write_map(const char *dir, const char *name, int layer, int head, const float *map, int n, double lo,
                     double hi) {
    char path[1200], err[1400];
    snprintf(path, sizeof path, "%s/L%d_H%d_%s.png", dir, layer, head, name);
    int scale = n < 512 ? 512 / n : 1;
    if (png_heatmap(path, map, n, n, lo, hi, scale, err, sizeof err) != 0) {
        fprintf(stderr, "eval: %s\n", err);
        return -1;
    }
    printf("  %-40s %d x %d cells, %d px each; colour range [%g, %g]\n", path, n, n, scale, lo, hi);
    return 0;
}

static int cmp_float(const void *a, const void *b) {
    float x = *(const float *)a, y = *(const float *)b;
    return (x > y) - (x < y);
}

// The q-quantile of the non-NaN values of x.
static double percentile(const float *x, long n, double q) {
    float *v = malloc(sizeof(float) * (size_t)(n > 0 ? n : 1));
    long k = 0;
    for (long i = 0; i < n; i++)
        if (!isnan(x[i])) v[k++] = x[i];
    qsort(v, (size_t)k, sizeof(float), cmp_float);
    double r = k ? v[(long)(q * (k - 1))] : 0;
    free(v);
    return r;
}

// The tokens of the drawn sequence, one line per position, beside the pictures; for a CoPE layer also
// each key's mean gate over the queries that see it (which tokens the head counts).
static int write_tokens(const char *path, const char *dir, Task *task, const Batch *b, int n, const char *split,
                        long seq, int layer, int head, const double *key_gate) {
    if (make_dirs(dir) != 0) {
        fprintf(stderr, "eval: cannot create %s: %s\n", dir, strerror(errno));
        return -1;
    }
    FILE *f = fopen(path, "w");
    if (!f) {
        fprintf(stderr, "eval: cannot write %s: %s\n", path, strerror(errno));
        return -1;
    }
    fprintf(f, "# split %s, sequence %ld, layer %d, head %d; row i = query position i, column j = key j\n", split, seq,
            layer, head);
    fprintf(f, "# position\tinput token\tnext-token target%s\n",
            key_gate ? "\tmean gate of the key over the queries i >= it" : "");
    for (int t = 0; t < n; t++) {
        fprintf(f, "%d\t%s\t%s", t, task_token_str(task, b->tokens[t]), task_token_str(task, b->targets[t]));
        if (key_gate) fprintf(f, "\t%.3f", key_gate[t]);
        fputc('\n', f);
    }
    if (fclose(f) != 0) {
        fprintf(stderr, "eval: write error on %s\n", path);
        return -1;
    }
    return 0;
}

static int heatmaps(Model *m, Task *task, const char *split, long seq, int layer, int head, const char *dir) {
    char err[1024];
    if (layer < 0 || layer >= m->L || head < 0 || head >= m->H) {
        fprintf(stderr, "eval: --layer %d --head %d: the model has layers 0..%d and heads 0..%d\n", layer, head, m->L - 1,
                m->H - 1);
        return 2;
    }
    long size = task_split_size(task, split);
    if (seq < 0 || seq >= size) {
        fprintf(stderr, "eval: --sequence %ld: split %s has sequences 0..%ld\n", seq, split, size - 1);
        return 2;
    }
    int T = task_split_max_length(task, split);
    if (model_check_length(m, T, err, sizeof err) != 0) {
        fprintf(stderr, "eval: split %s at context %d refused: %s\n", split, T, err);
        return 3;
    }
    Batch b;
    batch_alloc(&b, 1, T);
    if (task_eval_batch(task, split, seq, &b, 1) != 0 || b.B != 1 || model_prepare(m, 1, b.T, err, sizeof err) != 0) {
        fprintf(stderr, "eval: cannot run sequence %ld of split %s: %s\n", seq, split, err);
        batch_free(&b);
        return 1;
    }
    model_forward(m, &b, 0);
    T = b.T;
    int n = 0;  // the sequence's real length: right padding is cropped
    for (int t = 0; t < T; t++)
        if (!b.key_pad[t]) n = t + 1;
    const AttnCache *c = &m->acts[layer].cache;
    long off = (long)head * T * T;  // batch row 0: (b=0, h) at h·T·T
    double *key_gate = NULL;
    if (c->gates) {
        key_gate = calloc((size_t)n, sizeof(double));
        for (int j = 0; j < n; j++) {
            if (b.key_pad[j]) {  // a padding key has no gate (M = 0) but on its own row
                key_gate[j] = NAN;
                continue;
            }
            for (int i = j; i < n; i++) key_gate[j] += c->gates[off + (long)i * T + j];
            key_gate[j] /= n - j;
        }
    }
    char path[1200];
    snprintf(path, sizeof path, "%s/L%d_H%d_tokens.txt", dir, layer, head);
    int written = write_tokens(path, dir, task, &b, n, split, seq, layer, head, key_gate);
    free(key_gate);
    if (written != 0) {
        batch_free(&b);
        return 1;
    }

    float *map = malloc(sizeof(float) * (size_t)n * n);
    int rc = 0;
    printf("heat maps of layer %d, head %d, sequence %ld of split %s (%d positions):\n", layer, head, seq, split, n);
    // attention weights α_ij (keys after the query do not exist: NaN, drawn grey). The first rows
    // have few keys and weights near 1, so the colours span [0, the 99th percentile], clipped.
    for (int i = 0; i < n; i++)
        for (int j = 0; j < n; j++) map[i * n + j] = j <= i ? (float)c->probs[off + (long)i * T + j] : NAN;
    double hi = percentile(map, (long)n * n, 0.99);
    rc |= write_map(dir, "attention", layer, head, map, n, 0, hi > 0 ? hi : 1);
    if (c->gates && c->pos) {
        // the cache holds σ unmasked and p before clamping, for j <= i only; padding keys (M = 0)
        // do not count in p and have no gate
        for (int i = 0; i < n; i++)
            for (int j = 0; j < n; j++)
                map[i * n + j] = j <= i && (j == i || !b.key_pad[j]) ? (float)c->gates[off + (long)i * T + j] : NAN;
        rc |= write_map(dir, "gates", layer, head, map, n, 0, 1);
        hi = 0;
        for (int i = 0; i < n; i++)
            for (int j = 0; j < n; j++) {
                float v = j <= i ? (float)c->pos[off + (long)i * T + j] : NAN;
                map[i * n + j] = v;
                if (v > hi) hi = v;
            }
        rc |= write_map(dir, "positions", layer, head, map, n, 0, hi > 0 ? hi : 1);
        printf("  positions p_ij before clamping at npos-1 = %d; largest %g\n", m->cfg.pe.npos - 1, hi);
    } else {
        printf("  layer %d has no CoPE: no gates or positions to draw\n", layer);
    }
    printf("  %s: the tokens\n", path);
    free(map);
    batch_free(&b);
    return rc ? 1 : 0;
}

// ---------------------------------------------------------------------------------------------

typedef struct {
    const char *run_dir, *checkpoint, *heat_dir;
    const char **sets;  // argc entries at most
    int n_sets;
    char *split_arg, *length_arg;
    long sequences, batch, layer, head, seq_index;
    double memory_limit;  // bytes; 0: the machine's available memory
} EvalArgs;

// The checkpoint, the model it holds, and a config and a task per evaluation length.
typedef struct {
    RunCheckpoint ck;
    Config cfg;   // the checkpoint's config with the --set overrides
    Task *base;   // the task as trained (for its vocabulary)
    Model model;
    int threads;
    int n_lengths;
    long lengths[MAX_LIST];  // 0: the run's own
    Config *lcfg;
    Task **tasks;
    char *splits[MAX_LIST];
    int n_splits;
} Evaluation;

static int fail(int code, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static int fail(int code, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    fputs("eval: ", stderr);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
    return code;
}

// Returns -1 to go on, else the exit status (--help, a bad argument).
static int parse_args(int argc, char **argv, EvalArgs *a) {
    memset(a, 0, sizeof *a);
    a->sets = malloc(sizeof *a->sets * (size_t)(argc > 0 ? argc : 1));
    if (!a->sets) return fail(1, "out of memory");
    for (int i = 1; i < argc; i++) {
        const char *arg = argv[i];
        int has_value = i + 1 < argc;
        long *num = !strcmp(arg, "--sequences")  ? &a->sequences
                    : !strcmp(arg, "--batch")    ? &a->batch
                    : !strcmp(arg, "--layer")    ? &a->layer
                    : !strcmp(arg, "--head")     ? &a->head
                    : !strcmp(arg, "--sequence") ? &a->seq_index
                                                 : NULL;
        long max = num == &a->sequences || num == &a->seq_index ? LONG_MAX : INT_MAX;
        if (!strcmp(arg, "--help") || !strcmp(arg, "-h")) {
            usage();
            return 0;
        } else if (num && has_value) {
            if (parse_count(argv[++i], max, num) != 0)
                return fail(2, "%s \"%s\": expected an integer from 0 to %ld", arg, argv[i], max);
        } else if (!strcmp(arg, "--memory-limit") && has_value) {
            if (parse_size(argv[++i], &a->memory_limit) != 0 || a->memory_limit <= 0)
                return fail(2, "--memory-limit \"%s\": expected a size such as 8G, 512M or 1000000 (bytes)", argv[i]);
        } else if (!strcmp(arg, "--checkpoint") && has_value) {
            a->checkpoint = argv[++i];
        } else if (!strcmp(arg, "--split") && has_value) {
            a->split_arg = argv[++i];
        } else if (!strcmp(arg, "--lengths") && has_value) {
            a->length_arg = argv[++i];
        } else if (!strcmp(arg, "--heatmap") && has_value) {
            a->heat_dir = argv[++i];
        } else if (!strcmp(arg, "--set") && has_value) {
            a->sets[a->n_sets++] = argv[++i];
        } else if (!strncmp(arg, "--set=", 6)) {
            a->sets[a->n_sets++] = arg + 6;
        } else if (arg[0] == '-' || a->run_dir) {
            fprintf(stderr, "eval: unexpected argument \"%s\"%s\n", arg,
                    arg[0] == '-' && !has_value ? " (missing its value?)" : "");
            usage();
            return 2;
        } else {
            a->run_dir = arg;
        }
    }
    if (!a->run_dir) {
        usage();
        return 2;
    }
    return -1;
}

// The checkpoint must be one of this run's: eval.jsonl is the run's record.
static int check_belongs(const Evaluation *e, const char *run_dir) {
    char path[1200], err[1024];
    Config run_cfg;
    snprintf(path, sizeof path, "%s/config.json", run_dir);
    if (config_load(&run_cfg, path, NULL, 0, err, sizeof err) != 0)
        return fail(2, "%s is not a run folder: %s", run_dir, err);
    if (config_check_resume(&run_cfg, &e->ck.cfg, NULL, err, sizeof err) != 0)
        return fail(2, "%s was not written by the run %s (%s; its config.json differs): evaluate it in its own run folder",
                    e->ck.path, run_dir, err);
    return 0;
}

// Reads the checkpoint (once), applies the overrides, builds the trained task and the model.
static int open_checkpoint(Evaluation *e, const EvalArgs *a) {
    char err[2048];
    if (run_read_checkpoint(a->run_dir, a->checkpoint, &e->ck, err, sizeof err) != 0) {
        if (e->ck.path[0]) run_suggest_intact(a->run_dir, e->ck.path, "--checkpoint", err, sizeof err);
        return fail(2, "%s", err);
    }
    if (check_belongs(e, a->run_dir) != 0) return 2;
    const Config *saved = &e->ck.cfg;
    // Checked before the overrides load: under another task, the saved task keys would be refused first.
    for (int i = 0; i < a->n_sets; i++)
        if (!strncmp(a->sets[i], "task.name=", 10) && strcmp(a->sets[i] + 10, saved->task.name) != 0)
            return fail(2, "--set %s: the model was trained on task %s, and is evaluated on it", a->sets[i],
                        saved->task.name);
    if (a->length_arg && task_eval_length(&saved->task, saved->model.block_size) == 0)
        return fail(2, "--lengths: task %s has no evaluation length (task.eval_length does not apply to it); "
                    "its splits are evaluated at their own lengths", saved->task.name);
    if (length_config(&e->cfg, e->ck.config_json, e->ck.path, a->sets, a->n_sets, 0, err, sizeof err) != 0 ||
        same_model(saved, &e->cfg, err, sizeof err) != 0)
        return fail(2, "%s", err);
    e->threads = set_threads(e->cfg.run.threads);
    Config trained = *saved;
    trained.task.write_dir[0] = '\0';
    int n_keys;
    const ConfigKey *keys = config_schema(&n_keys);
    for (int i = 0; i < n_keys; i++)  // what may differ from training at longer contexts (pe.rel_beyond)
        if (keys[i].flags & KEY_EVAL_SAFE) config_copy_key(&trained, &e->cfg, &keys[i]);
    e->base = task_create(&trained.task, trained.model.block_size, (uint64_t)trained.run.seed, err, sizeof err);
    if (!e->base) return fail(2, "%s", err);
    if (model_init(&e->model, &trained, task_vocab_size(e->base), err, sizeof err) != 0 ||
        model_alloc(&e->model, 0, err, sizeof err) != 0 || run_use_params(&e->ck, &e->model, err, sizeof err) != 0)
        return fail(2, "%s", err);
    e->model.keep_positions = a->heat_dir != NULL;  // the heat-maps draw the CoPE positions
    // Evaluation needs no backward: attention in blocks of rows through one cache keeps memory linear
    // in T' (the heat-maps read every layer's cache, so they keep the training layout).
    if (!a->heat_dir) model_set_inference(&e->model, EVAL_ROWS);
    return 0;
}

// Every length's config and task, and the splits, so argument errors stop before any work.
static int prepare_lengths(Evaluation *e, const EvalArgs *a) {
    char err[1024];
    if (a->length_arg) {
        char *items[MAX_LIST];
        int n = split_list(a->length_arg, items);
        for (int i = 0; i < n; i++)
            if (parse_count(items[i], TASK_MAX_CONTEXT, &e->lengths[e->n_lengths++]) != 0 || e->lengths[e->n_lengths - 1] < 1)
                return fail(2, "--lengths: \"%s\" is not an integer from 1 to %d (the longest context copetrain runs)",
                            items[i], TASK_MAX_CONTEXT);
    }
    if (e->n_lengths == 0) e->lengths[e->n_lengths++] = 0;  // the run's own
    e->lcfg = calloc((size_t)e->n_lengths, sizeof *e->lcfg);
    e->tasks = calloc((size_t)e->n_lengths, sizeof *e->tasks);
    if (!e->lcfg || !e->tasks) return fail(1, "out of memory");
    for (int li = 0; li < e->n_lengths; li++) {
        Config *c = &e->lcfg[li];
        if (length_config(c, e->ck.config_json, e->ck.path, a->sets, a->n_sets, e->lengths[li], err, sizeof err) != 0 ||
            !(e->tasks[li] = task_create(&c->task, c->model.block_size, (uint64_t)c->run.seed, err, sizeof err)) ||
            same_vocab(e->base, e->tasks[li], err, sizeof err) != 0)
            return fail(2, "%s", err);
    }
    const char *const *names = task_split_names(e->tasks[0]);
    if (!names[0])
        return fail(2, "the run's task %s has no evaluation split (an lm run needs valid or test text)", e->cfg.task.name);
    char avail[512] = "";
    for (int k = 0; names[k]; k++) snprintf(avail + strlen(avail), sizeof avail - strlen(avail), "%s%s", k ? ", " : "", names[k]);
    e->n_splits = a->split_arg ? split_list(a->split_arg, e->splits) : 0;
    for (int s = 0; s < e->n_splits; s++)
        if (task_split_size(e->tasks[0], e->splits[s]) < 0)
            return fail(2, "--split %s: task %s has the splits %s", e->splits[s], e->cfg.task.name, avail);
    if (e->n_splits == 0)
        for (int k = 0; names[k] && e->n_splits < MAX_LIST; k++) e->splits[e->n_splits++] = (char *)names[k];
    return 0;
}

// One eval.jsonl line (every number through json_number, so a non-finite loss stays JSON).
static void write_line(FILE *out, const Evaluation *e, const EvalArgs *a, Task *task, const char *split, long length,
                       int T, long n_seq, const EvalStats *es) {
    const char *ckpt_name = strrchr(e->ck.path, '/') ? strrchr(e->ck.path, '/') + 1 : e->ck.path;
    double loss = eval_loss(es);
    fprintf(out, "{\"step\": %lld, \"checkpoint\": ", (long long)e->ck.state.step);
    json_string(out, ckpt_name);
    fprintf(out, ", \"split\": ");
    json_string(out, split);
    fprintf(out, ", \"length\": %ld, \"context\": %d, \"sequences\": %ld, \"tokens\": %ld", length, T, n_seq, es->n_loss);
    json_number(out, "loss", loss, "%.9g");
    if (es->n_metric > 0) {
        json_number(out, "error", 100 * eval_error(es), "%.6g");
        json_number(out, "seq_error", 100 * eval_seq_error(es), "%.6g");
    }
    if (task_is_language_model(task)) {
        json_number(out, "ppl", loss_ppl(loss), "%.9g");
        json_number(out, "bits_per_token", loss_bits(loss), "%.9g");
        double bpt = task_bytes_per_token(task, split);
        if (bpt > 0) json_number(out, "bits_per_byte", loss_bits(loss) / bpt, "%.9g");
    }
    if (a->n_sets > 0) {
        fprintf(out, ", \"set\": [");
        for (int k = 0; k < a->n_sets; k++) {
            if (k) fprintf(out, ", ");
            json_string(out, a->sets[k]);
        }
        fprintf(out, "]");
    }
    fprintf(out, "}\n");
    fflush(out);
}

// Evaluates one split at one length. Returns 0, 1 on an error, 3 when the length is refused (the
// position encoding cannot run it, or it needs more memory than there is).
static int evaluate_one(Evaluation *e, const EvalArgs *a, int li, const char *split, FILE *out) {
    char err[1024];
    Task *task = e->tasks[li];
    int lm = task_is_language_model(task);
    int T = task_split_max_length(task, split);
    long length = resolved_length(&e->lcfg[li], T);
    if (model_check_length(&e->model, T, err, sizeof err) != 0) {
        printf("%-8s %7ld %7d  refused: %s\n", split, length, T, err);
        return 3;
    }
    int B = eval_batch_size(&e->model, &e->lcfg[li], T, a->batch);
    Budget budget = {0};
    budget_model(&budget, &e->model, 0, B, T, 1);
    if (budget_check(&budget, a->memory_limit > 0 ? a->memory_limit : available_memory_bytes(), err, sizeof err) != 0) {
        printf("%-8s %7ld %7d  refused: %s\n", split, length, T, err);
        return 3;
    }
    Batch buf;
    batch_alloc(&buf, B, T);
    EvalStats es;
    int rc = evaluate_split(&e->model, task, split, a->sequences, &buf, &es, err, sizeof err);
    batch_free(&buf);
    if (rc != 0) return fail(1, "%s", err);
    long n_seq = task_split_size(task, split);
    if (a->sequences > 0 && a->sequences < n_seq) n_seq = a->sequences;
    double loss = eval_loss(&es);
    if (lm)
        printf("%-8s %7ld %7d %8ld %10.4f %10.3f %10.4f %10.4f\n", split, length, T, n_seq, loss, loss_ppl(loss),
               loss_bits(loss), loss_bits(loss) / task_bytes_per_token(task, split));
    else
        printf("%-8s %7ld %7d %8ld %10.4f %10.2f %10.2f\n", split, length, T, n_seq, loss, 100 * eval_error(&es),
               100 * eval_seq_error(&es));
    write_line(out, e, a, task, split, length, T, n_seq, &es);
    return 0;
}

static int evaluate_lengths(Evaluation *e, const EvalArgs *a) {
    char path[1200];
    snprintf(path, sizeof path, "%s/eval.jsonl", a->run_dir);
    FILE *out = fopen(path, "a");
    if (!out) return fail(1, "cannot append to %s: %s", path, strerror(errno));
    int lm = task_is_language_model(e->base);
    const char *ckpt_name = strrchr(e->ck.path, '/') ? strrchr(e->ck.path, '/') + 1 : e->ck.path;
    printf("eval %s: %s (step %lld), task %s, pe %s, %d threads%s\n", a->run_dir, ckpt_name,
           (long long)e->ck.state.step, e->cfg.task.name, e->cfg.pe.type, e->threads,
           lm ? "; windows of T' tokens, non-overlapping" : "");
    printf("%-8s %7s %7s %8s %10s %10s %10s%s\n", "split", "length", "context", "seqs", "loss", lm ? "ppl" : "error%",
           lm ? "bits/tok" : "seq_err%", lm ? "  bits/byte" : "");
    int refused = 0, rc = 0;
    for (int li = 0; li < e->n_lengths && rc != 1; li++)
        for (int s = 0; s < e->n_splits && rc != 1; s++) {
            rc = evaluate_one(e, a, li, e->splits[s], out);
            refused += rc == 3;
        }
    int closed = fclose(out) == 0;
    if (rc == 1) return 1;
    if (!closed) return fail(1, "write error on %s", path);
    printf("appended to %s\n", path);
    return refused ? 3 : 0;
}

static void evaluation_free(Evaluation *e) {
    for (int li = 0; e->tasks && li < e->n_lengths; li++) task_free(e->tasks[li]);
    free(e->tasks);
    free(e->lcfg);
    task_free(e->base);
    model_free(&e->model);
    run_checkpoint_free(&e->ck);
}

int main(int argc, char **argv) {
    EvalArgs args;
    int code = parse_args(argc, argv, &args);
    if (code >= 0) {
        free(args.sets);
        return code;
    }
    Evaluation e = {0};
    code = open_checkpoint(&e, &args);
    if (code == 0) code = prepare_lengths(&e, &args);
    if (code == 0 && args.heat_dir)
        code = heatmaps(&e.model, e.tasks[0], e.splits[0], args.seq_index, (int)args.layer, (int)args.head,
                        args.heat_dir);
    else if (code == 0)
        code = evaluate_lengths(&e, &args);
    evaluation_free(&e);
    free(args.sets);
    return code;
}
