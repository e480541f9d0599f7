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
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "config.h"
#include "evaluate.h"
#include "model.h"
#include "png.h"
#include "run.h"
#include "system.h"
#include "tasks/task.h"

#define MAX_LIST 64
#define MAX_SET 256
// Default memory budget for one evaluation batch's activations; --batch overrides it.
#define EVAL_BUDGET_BYTES (4.0 * 1073741824.0)

static void usage(void) {
    fprintf(stderr,
            "usage: ./eval runs/<name> [--checkpoint FILE] [--split S[,S...]] [--lengths N[,N...]]\n"
            "              [--sequences N] [--batch B] [--set section.key=value]...\n"
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
            "  --set k=v          override a task, run or train key as ./train does (e.g.\n"
            "                     task.p_sparse=0.9, run.threads=1); model and pe keys are refused\n"
            "  --heatmap DIR      instead of evaluating, write PNG heat maps of layer L, head H for\n"
            "                     sequence I of the (first) split at the (first) length: attention\n"
            "                     weights, and for CoPE layers the gates and the positions p_ij\n"
            "Language models: at length T' the split's tokens are cut into consecutive non-overlapping\n"
            "windows of T' tokens, each evaluated from an empty context, and every token of every\n"
            "window is scored; ppl = exp(mean loss). Results are appended to runs/<name>/eval.jsonl.\n"
            "Exit status: 0, 3 when some lengths were refused, 2 for bad arguments, 1 for errors.\n");
}

static int parse_int(const char *s, long *out) {
    char *end;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (errno || end == s || *end) return -1;
    *out = v;
    return 0;
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
            if (!o || !cJSON_Compare(k, o, 1)) {
                snprintf(err, errlen, "--set %s.%s changes the model the checkpoint holds; only task, train and run keys can "
                         "be overridden", secs[s], k->string);
                rc = -1;
            }
        }
        for (cJSON *k = sb ? sb->child : NULL; k && rc == 0; k = k->next)
            if (!cJSON_GetObjectItem(sa, k->string)) {
                snprintf(err, errlen, "--set %s.%s changes the model the checkpoint holds; only task, train and run keys "
                         "can be overridden", secs[s], k->string);
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
    if (c->task.eval_length > 0) return c->task.eval_length;
    if (!strcmp(c->task.name, "flipflop")) return c->task.length;
    if (!strcmp(c->task.name, "lm")) return c->model.block_size;
    return context;  // counting, selcopy: no evaluation length of their own
}

// Rough bytes of activations per sequence at context T (model.c's carve: the attention caches grow
// with T², the rest with T).
// Activation memory of one sequence of T (the model's own count, for one sequence).
static double bytes_per_sequence(Model *m, int T) { return (double)sizeof(real) * model_activation_size(m, 1, T); }

static int eval_batch_size(Model *m, const Config *c, int T, long requested) {
    if (requested > 0) return (int)requested;
    int micro = c->train.batch_size / (c->train.grad_accum > 0 ? c->train.grad_accum : 1);
    int fit = (int)(EVAL_BUDGET_BYTES / bytes_per_sequence(m, T));
    int B = micro < fit ? micro : fit;
    return B > 0 ? B : 1;
}

// The config for one evaluation length: the checkpoint's config, the --set overrides, then
// task.eval_length (length > 0). Generated data is never written from here (task.write_dir off).
static int length_config(Config *c, const char *json, const char *src, const char **sets, int n_sets, long length,
                         char *err, int errlen) {
    const char *ov[MAX_SET + 1];
    char lenbuf[64];
    for (int i = 0; i < n_sets; i++) ov[i] = sets[i];
    int n = n_sets;
    if (length > 0) {
        snprintf(lenbuf, sizeof lenbuf, "task.eval_length=%ld", length);
        ov[n++] = lenbuf;
    }
    if (config_load_text(c, json, src, ov, n, err, errlen) != 0) return -1;
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
    if (make_dirs(dir) != 0) {
        fprintf(stderr, "eval: cannot create %s: %s\n", dir, strerror(errno));
        batch_free(&b);
        return 1;
    }
    char path[1200];
    snprintf(path, sizeof path, "%s/L%d_H%d_tokens.txt", dir, layer, head);
    FILE *f = fopen(path, "w");
    if (!f) {
        fprintf(stderr, "eval: cannot write %s: %s\n", path, strerror(errno));
        batch_free(&b);
        return 1;
    }
    fprintf(f, "# split %s, sequence %ld, layer %d, head %d; row i = query position i, column j = key j\n", split, seq,
            layer, head);
    fprintf(f, "# position\tinput token\tnext-token target\n");
    for (int t = 0; t < n; t++)
        fprintf(f, "%d\t%s\t%s\n", t, task_token_str(task, b.tokens[t]), task_token_str(task, b.targets[t]));
    fclose(f);

    const AttnCache *c = &m->acts[layer].cache;
    long off = (long)head * T * T;  // batch row 0: (b=0, h) at h·T·T
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
        printf("  positions p_ij before clamping at npos-1 = %d; largest %g\n", m->cope_npos - 1, hi);
    } else {
        printf("  layer %d has no CoPE: no gates or positions to draw\n", layer);
    }
    printf("  %s: the tokens\n", path);
    free(map);
    batch_free(&b);
    return rc ? 1 : 0;
}

// ---------------------------------------------------------------------------------------------

int main(int argc, char **argv) {
    const char *run_dir = NULL, *ckpt_arg = NULL, *heat_dir = NULL;
    const char *sets[MAX_SET];
    int n_sets = 0;
    char *split_arg = NULL, *length_arg = NULL;
    long sequences = 0, batch = 0, layer = 0, head = 0, seq_index = 0;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        int has_value = i + 1 < argc;
        long *num = !strcmp(a, "--sequences") ? &sequences
                    : !strcmp(a, "--batch")   ? &batch
                    : !strcmp(a, "--layer")   ? &layer
                    : !strcmp(a, "--head")    ? &head
                    : !strcmp(a, "--sequence") ? &seq_index
                                              : NULL;
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
            usage();
            return 0;
        } else if (num && has_value) {
            if (parse_int(argv[++i], num) != 0 || *num < 0) {
                fprintf(stderr, "eval: %s \"%s\": expected a non-negative integer\n", a, argv[i]);
                return 2;
            }
        } else if (!strcmp(a, "--checkpoint") && has_value) {
            ckpt_arg = argv[++i];
        } else if (!strcmp(a, "--split") && has_value) {
            split_arg = argv[++i];
        } else if (!strcmp(a, "--lengths") && has_value) {
            length_arg = argv[++i];
        } else if (!strcmp(a, "--heatmap") && has_value) {
            heat_dir = argv[++i];
        } else if (!strcmp(a, "--set") && has_value && n_sets < MAX_SET) {
            sets[n_sets++] = argv[++i];
        } else if (!strncmp(a, "--set=", 6) && n_sets < MAX_SET) {
            sets[n_sets++] = a + 6;
        } else if (a[0] == '-' || run_dir) {
            fprintf(stderr, "eval: unexpected argument \"%s\"%s\n", a, a[0] == '-' && !has_value ? " (missing its value?)" : "");
            usage();
            return 2;
        } else {
            run_dir = a;
        }
    }
    if (!run_dir) {
        usage();
        return 2;
    }
    char *splits[MAX_LIST];
    int n_splits = split_arg ? split_list(split_arg, splits) : 0;
    long lengths[MAX_LIST];
    int n_lengths = 0;
    if (length_arg) {
        char *items[MAX_LIST];
        int n = split_list(length_arg, items);
        for (int i = 0; i < n; i++)
            if (parse_int(items[i], &lengths[n_lengths++]) != 0 || lengths[n_lengths - 1] < 1) {
                fprintf(stderr, "eval: --lengths: \"%s\" is not a positive integer\n", items[i]);
                return 2;
            }
    }
    if (n_lengths == 0) lengths[n_lengths++] = 0;  // the run's own

    // The checkpoint: its config and step; the parameters are read after the model is built.
    char err[1024], ckpt_path[1200];
    TrainState state;
    Config saved, cfg;
    char *json = NULL;
    if (run_checkpoint_path(run_dir, ckpt_arg, ckpt_path, sizeof ckpt_path, err, sizeof err) != 0 ||
        run_read_config(ckpt_path, &saved, &json, &state, err, sizeof err) != 0) {
        fprintf(stderr, "eval: %s\n", err);
        return 2;
    }
    long long step = (long long)state.step;
    const char *ckpt_name = strrchr(ckpt_path, '/') ? strrchr(ckpt_path, '/') + 1 : ckpt_path;

    if (length_arg && strcmp(saved.task.name, "flipflop") != 0 && strcmp(saved.task.name, "lm") != 0) {
        fprintf(stderr, "eval: --lengths: task %s has no evaluation length (task.eval_length applies to flipflop and lm); "
                "its splits are evaluated at their own lengths\n", saved.task.name);
        return 2;
    }
    if (length_config(&cfg, json, ckpt_path, sets, n_sets, 0, err, sizeof err) != 0) {
        fprintf(stderr, "eval: %s\n", err);
        return 2;
    }
    if (same_model(&saved, &cfg, err, sizeof err) != 0) {
        fprintf(stderr, "eval: %s\n", err);
        return 2;
    }
    int threads = set_threads(cfg.run.threads);

    // The task as trained (for the vocabulary), and the model with the checkpoint's parameters.
    saved.task.write_dir[0] = '\0';
    Task *base = task_create(&saved.task, saved.model.block_size, (uint64_t)saved.run.seed, err, sizeof err);
    if (!base) {
        fprintf(stderr, "eval: %s\n", err);
        return 2;
    }
    Model model;
    if (model_create(&model, &saved, task_vocab_size(base), err, sizeof err) != 0) {
        fprintf(stderr, "eval: %s\n", err);
        return 2;
    }
    model.keep_positions = heat_dir != NULL;  // the heat-maps draw the CoPE positions
    if (run_load_params(ckpt_path, &model, err, sizeof err) != 0) {
        fprintf(stderr, "eval: %s\n", err);
        return 2;
    }

    // Every length's config and task first, so argument errors stop before any work.
    Config *lcfg = calloc((size_t)n_lengths, sizeof *lcfg);
    Task **tasks = calloc((size_t)n_lengths, sizeof *tasks);
    for (int li = 0; li < n_lengths; li++) {
        if (length_config(&lcfg[li], json, ckpt_path, sets, n_sets, lengths[li], err, sizeof err) != 0 ||
            !(tasks[li] = task_create(&lcfg[li].task, lcfg[li].model.block_size, (uint64_t)lcfg[li].run.seed, err,
                                      sizeof err)) ||
            same_vocab(base, tasks[li], err, sizeof err) != 0) {
            fprintf(stderr, "eval: %s\n", err);
            return 2;
        }
    }
    const char *const *names = task_split_names(tasks[0]);
    for (int s = 0; s < n_splits; s++)
        if (task_split_size(tasks[0], splits[s]) < 0) {
            char avail[512] = "";
            for (int k = 0; names[k]; k++) snprintf(avail + strlen(avail), sizeof avail - strlen(avail), "%s%s", k ? ", " : "", names[k]);
            fprintf(stderr, "eval: --split %s: task %s has the splits %s\n", splits[s], cfg.task.name, avail);
            return 2;
        }
    if (n_splits == 0)
        for (int k = 0; names[k] && n_splits < MAX_LIST; k++) splits[n_splits++] = (char *)names[k];

    if (heat_dir) {
        int rc = heatmaps(&model, tasks[0], splits[0], seq_index, (int)layer, (int)head, heat_dir);
        model_free(&model);
        return rc;
    }

    char path[1200];
    snprintf(path, sizeof path, "%s/eval.jsonl", run_dir);
    FILE *out = fopen(path, "a");
    if (!out) {
        fprintf(stderr, "eval: cannot append to %s: %s\n", path, strerror(errno));
        return 1;
    }
    int lm = task_is_language_model(base);
    printf("eval %s: %s (step %lld), task %s, pe %s, %d threads%s\n", run_dir, ckpt_name, step, cfg.task.name,
           cfg.pe.type, threads, lm ? "; windows of T' tokens, non-overlapping" : "");
    printf("%-8s %7s %7s %8s %10s %10s %10s\n", "split", "length", "context", "seqs", "loss", lm ? "ppl" : "error%",
           lm ? "bits/tok" : "seq_err%");
    int refused = 0;
    for (int li = 0; li < n_lengths; li++) {
        Task *task = tasks[li];
        for (int s = 0; s < n_splits; s++) {
            int T = task_split_max_length(task, splits[s]);
            long length = resolved_length(&lcfg[li], T);
            if (model_check_length(&model, T, err, sizeof err) != 0) {
                printf("%-8s %7ld %7d  refused: %s\n", splits[s], length, T, err);
                refused++;
                continue;
            }
            int B = eval_batch_size(&model, &lcfg[li], T, batch);
            Batch buf;
            batch_alloc(&buf, B, T);
            EvalStats es;
            if (evaluate_split(&model, task, splits[s], sequences, &buf, &es, err, sizeof err) != 0) {
                fprintf(stderr, "eval: %s\n", err);
                return 1;
            }
            batch_free(&buf);
            long n_seq = task_split_size(task, splits[s]);
            if (sequences > 0 && sequences < n_seq) n_seq = sequences;
            double loss = es.loss_sum / (es.n_loss > 0 ? es.n_loss : 1);
            if (lm)
                printf("%-8s %7ld %7d %8ld %10.4f %10.3f %10.4f\n", splits[s], length, T, n_seq, loss, exp(loss),
                       loss / 0.69314718055994531);
            else
                printf("%-8s %7ld %7d %8ld %10.4f %10.2f %10.2f\n", splits[s], length, T, n_seq, loss,
                       100 * eval_error(&es), 100 * eval_seq_error(&es));
            fprintf(out, "{\"step\": %lld, \"checkpoint\": ", step);
            json_string(out, ckpt_name);
            fprintf(out, ", \"split\": ");
            json_string(out, splits[s]);
            fprintf(out, ", \"length\": %ld, \"context\": %d, \"sequences\": %ld, \"tokens\": %ld, \"loss\": %.9g", length, T,
                    n_seq, es.n_loss, loss);
            if (es.n_metric > 0)
                fprintf(out, ", \"error\": %.6g, \"seq_error\": %.6g", 100 * eval_error(&es), 100 * eval_seq_error(&es));
            if (lm) {
                fprintf(out, ", \"ppl\": %.9g, \"bits_per_token\": %.9g", exp(loss), loss / 0.69314718055994531);
                double bpt = task_bytes_per_token(task, splits[s]);
                if (bpt > 0) fprintf(out, ", \"bits_per_byte\": %.9g", loss / 0.69314718055994531 / bpt);
            }
            if (n_sets > 0) {
                fprintf(out, ", \"set\": [");
                for (int k = 0; k < n_sets; k++) {
                    if (k) fprintf(out, ", ");
                    json_string(out, sets[k]);
                }
                fprintf(out, "]");
            }
            fprintf(out, "}\n");
            fflush(out);
        }
    }
    if (fclose(out) != 0) {
        fprintf(stderr, "eval: write error on %s\n", path);
        return 1;
    }
    printf("appended to %s\n", path);
    for (int li = 0; li < n_lengths; li++) task_free(tasks[li]);
    free(tasks);
    free(lcfg);
    task_free(base);
    model_free(&model);
    free(json);
    return refused ? 3 : 0;
}
