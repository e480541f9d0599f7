// ./train CONFIG.json [--set section.key=value]... [--resume [--checkpoint FILE]]
//
// Trains a model on a task as the config says, in runs/<name>/: config.json (resolved),
// metrics.jsonl, log.txt and checkpoints. Without a config it trains the embedded default (a small
// flip-flop model with CoPE that finishes in about a minute).
//
// What survives what (README, "Runs that survive"): a checkpoint is written before the evaluation
// of its step and --resume reruns that evaluation, so a kill anywhere loses no line of
// metrics.jsonl; a run killed before its first checkpoint resumes from step 0; a non-finite loss or
// gradient stops the run before the optimizer applies it, so every checkpoint is finite; the
// memory a run needs is worked out, and refused when the machine lacks it, before allocating.
//
// Under `mpirun -np N` (a build with MPI=1) the N ranks train one model data-parallel (README,
// "Several processes: MPI"): each computes the gradient of its N-th of every batch, the gradients
// are summed in rank order (src/dist.h) and every rank applies the same step; rank 0 alone writes
// the run folder and prints.
#include <errno.h>
#include <limits.h>
#include <math.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cblas.h>

#include "args.h"
#include "atomic_file.h"
#include "budget.h"
#include "checkpoint.h"
#include "config.h"
#include "dist.h"
#include "evaluate.h"
#include "micro.h"
#include "model.h"
#include "optim.h"
#include "rng.h"
#include "run.h"
#include "system.h"
#include "runlog.h"
#include "tasks/task.h"

// The embedded default: configs/flipflop_tiny.json (a test keeps the two equal).
static const char *default_config =
    "{\n"
    "  \"run\": {\"name\": \"default\"},\n"
    "  \"model\": {\"n_layers\": 2, \"d_model\": 64, \"n_heads\": 4, \"norm\": \"pre\", \"activation\": \"gelu\",\n"
    "            \"dropout\": 0.0, \"block_size\": 128},\n"
    "  \"pe\": {\"type\": \"cope\"},\n"
    "  \"task\": {\"name\": \"flipflop\", \"length\": 128, \"p_ignore\": 0.8, \"loss_on\": \"answer\", \"eval_sequences\": 256},\n"
    "  \"train\": {\"lr\": 3e-3, \"batch_size\": 32, \"steps\": 1500, \"warmup_steps\": 100, \"schedule\": \"cosine\",\n"
    "            \"eval_interval\": 250, \"eval_sequences\": 256, \"log_interval\": 50, \"checkpoint_interval\": 250}\n"
    "}\n";


// Exit statuses besides 0 (done), 1 (an error while running) and 2 (bad arguments, config or data,
// or not enough memory); a signal gives 128 + its number.
#define EXIT_DIVERGED 4

static volatile sig_atomic_t stop_signal = 0;

static void on_signal(int sig) {
    stop_signal = sig;
    signal(sig, SIG_DFL);  // a second Ctrl-C stops at once
}

static void usage(void) {
    fprintf(stderr,
            "usage: ./train [CONFIG.json] [--set section.key=value]... [--resume [--checkpoint FILE]]\n"
            "  CONFIG.json        the run's configuration (default: the embedded flip-flop CoPE demo)\n"
            "  --set k=v          override one key, e.g. --set train.lr=3e-4 --set run.name=x\n"
            "  --resume           continue the run in runs/<name>/ from its latest checkpoint (from step 0\n"
            "                     when it was stopped before writing one)\n"
            "  --checkpoint FILE  with --resume: continue from this checkpoint of the run instead (e.g. an\n"
            "                     older one when the latest is corrupt)\n"
            "  --memory-limit M   refuse a run needing more than M bytes (e.g. 8G, 512M; default: the memory\n"
            "                     the machine has available)\n"
            "  --dry-run          check the config, build the task, print the sizes and the memory the run\n"
            "                     needs, and stop (allocates no parameters)\n"
            "  --keys             print every config key (type, default, range, meaning) as a Markdown table\n"
            "Exit status: 0 done, 1 error while running, 2 bad input or not enough memory, 4 diverged\n"
            "(non-finite loss or gradient), 128+N stopped by signal N (a checkpoint was written).\n");
}

typedef struct {
    const char *config_path;
    const char **overrides;  // argc entries at most
    int n_overrides;
    int resume, dry_run;
    const char *checkpoint;  // --checkpoint, with --resume
    double memory_limit;     // bytes; 0: the machine's available memory
} Args;

// Everything a training run holds; trainer_free releases whatever was set up.
typedef struct {
    Config cfg;
    const TrainConfig *tc;
    Optimizer opt;          // tc's optimizer settings, resolved once
    int loss_per_sequence;  // train.loss_norm "sequence"
    int threads;
    ThreadGovernor gov;  // fewer threads while other processes compete for the cores (system.h)
    Task *task;
    Model model;
    int micro, T;
    Batch *batches;     // grad_accum micro-batches: this rank's share of the step
    MicroRunner runner; // runs them, at once on replicas of the model when there are threads for it
    uint64_t *micro_key; // their dropout keys, this step's
    double *micro_loss; // the loss of each of the step's grad_accum × ranks micro-batches
    char dir[1024];
    RunLog log;
    int log_open;
    TrainState st;
    double t0;          // when training started, minus the elapsed time of a resumed run
    double interval_start;
    long interval_tokens;  // for tokens/s only: timing is not part of the run's state
    double interval_reduce;  // seconds summing gradients across ranks in the log interval
} Trainer;

// The message of a failure, held in a job of several ranks until it is known which rank reports it
// (agree, alone).
static char failure[4096];

static void print_failure(void) {
    if (!failure[0]) return;
    fputs(failure, stderr);
    fflush(stderr);
    failure[0] = '\0';
}

static int fail(int code, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static int fail(int code, const char *fmt, ...) {
    int n = dist_size() > 1 && dist_rank() > 0 ? snprintf(failure, sizeof failure, "train: rank %d: ", dist_rank())
                                               : snprintf(failure, sizeof failure, "train: ");
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(failure + n, sizeof failure - n - 1, fmt, ap);
    va_end(ap);
    strcat(failure, "\n");
    if (dist_size() == 1) print_failure();
    return code;
}

// After a phase every rank runs (setup, opening the run): the exit status of all, non-zero when any
// failed, with one message: rank 0's when it failed too (the ranks read one config, so they mostly
// fail alike), else that of each rank that failed.
static int agree(int code) {
    if (dist_size() == 1) return code;
    int worst = dist_max_int(code), rank0_failed = dist_max_int(dist_rank() == 0 && code != 0);
    if (code != 0 && (dist_rank() == 0 || !rank0_failed)) print_failure();
    return worst;
}

// A failure of this rank alone (writing the run folder, an evaluation): the other ranks may be
// waiting for it in a collective call, so the whole job stops with its message and status.
static int alone(int code) {
    if (code != 0 && dist_size() > 1) {
        print_failure();
        dist_abort(code);
    }
    return code;
}

// Rank 0's log: printf to stdout and log.txt.
static void say(Trainer *tr, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void say(Trainer *tr, const char *fmt, ...) {
    if (!tr->log_open) return;
    char line[4096];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(line, sizeof line, fmt, ap);
    va_end(ap);
    runlog_printf(&tr->log, "%s", line);
}

// Returns -1 to go on, else the exit status (--help, --keys, a bad argument).
static int parse_args(int argc, char **argv, Args *a) {
    memset(a, 0, sizeof *a);
    a->overrides = malloc(sizeof *a->overrides * (size_t)(argc > 0 ? argc : 1));
    if (!a->overrides) return fail(1, "out of memory");
    for (int i = 1; i < argc; i++) {
        const char *arg = argv[i];
        int has_value = i + 1 < argc;
        if (!strcmp(arg, "--resume")) {
            a->resume = 1;
        } else if (!strcmp(arg, "--set") && has_value) {
            a->overrides[a->n_overrides++] = argv[++i];
        } else if (!strncmp(arg, "--set=", 6)) {
            a->overrides[a->n_overrides++] = arg + 6;
        } else if (!strcmp(arg, "--checkpoint") && has_value) {
            a->checkpoint = argv[++i];
        } else if (!strcmp(arg, "--memory-limit") && has_value) {
            if (parse_size(argv[++i], &a->memory_limit) != 0 || a->memory_limit <= 0)
                return fail(2, "--memory-limit \"%s\": expected a size such as 8G, 512M or 1000000 (bytes)", argv[i]);
        } else if (!strcmp(arg, "--dry-run")) {
            a->dry_run = 1;
        } else if (!strcmp(arg, "--keys")) {
            config_schema_markdown(stdout);
            return 0;
        } else if (!strcmp(arg, "--help") || !strcmp(arg, "-h")) {
            usage();
            return 0;
        } else if (arg[0] == '-' || a->config_path) {
            fprintf(stderr, "train: unexpected argument \"%s\"%s\n", arg,
                    arg[0] == '-' && !has_value ? " (missing its value?)" : "");
            usage();
            return 2;
        } else {
            a->config_path = arg;
        }
    }
    if (a->checkpoint && !a->resume) return fail(2, "--checkpoint %s: only with --resume", a->checkpoint);
    return -1;
}

// The longest context the run evaluates at (a split the model cannot run is skipped, so not counted).
static int longest_context(Trainer *tr) {
    char err[256];
    int longest = tr->T;
    const char *const *splits = task_split_names(tr->task);
    for (int s = 0; splits[s]; s++) {
        int T = task_split_max_length(tr->task, splits[s]);
        if (T > longest && model_check_length(&tr->model, T, err, sizeof err) == 0) longest = T;
    }
    return longest;
}

// What train_step needs beside the model: the gradient sum of the micro-batches, and in a job of
// several ranks the copies of this rank's block of the gradient (src/dist.h).
static void budget_exchange(Budget *budget, const Trainer *tr) {
    double grads = sizeof(real) * (double)tr->model.n_params;
    if (tr->tc->grad_accum > 1 && budget->n < BUDGET_MAX_PARTS)
        budget->parts[budget->n++] = (BudgetPart){"gradient sum of the micro-batches", grads, "train.grad_accum"};
    if (dist_size() > 1 && budget->n < BUDGET_MAX_PARTS)
        budget->parts[budget->n++] = (BudgetPart){"gradient exchange between ranks", grads, "the model's size"};
}

// The config, the task, the model's layout and the memory the run needs (refused when the machine
// lacks it); with --dry-run it prints the figures and allocates nothing large. Then the model and
// the batches.
static int setup(Trainer *tr, const Args *a) {
    char err[1024];
    Config *cfg = &tr->cfg;
    const char *source = a->config_path ? a->config_path : "(embedded default config)";
    int rc = a->config_path ? config_load(cfg, a->config_path, a->overrides, a->n_overrides, err, sizeof err)
                            : config_load_text(cfg, default_config, source, a->overrides, a->n_overrides, err,
                                               sizeof err);
    if (rc != 0) return fail(2, "%s", err);
    tr->tc = &cfg->train;
    optimizer_init(&tr->opt, tr->tc);
    tr->loss_per_sequence = strcmp(tr->tc->loss_norm, "sequence") == 0;
    tr->threads = set_threads(cfg->run.threads);
    governor_init(&tr->gov, tr->threads);
    tr->task = task_create(&cfg->task, cfg->model.block_size, (uint64_t)cfg->run.seed, err, sizeof err);
    if (!tr->task)
        return fail(2, "%s%s", err,
                    cfg->task.data_dir[0] ? " (data/README.md says how to fetch or build the data)" : "");
    if (model_init(&tr->model, cfg, task_vocab_size(tr->task), err, sizeof err) != 0) return fail(2, "%s", err);
    int shares = tr->tc->grad_accum * dist_size();  // micro-batches per step, all ranks together
    if (tr->tc->batch_size % shares != 0)
        return fail(2, "%s: train.batch_size %d does not split into %d ranks × train.grad_accum %d micro-batches of "
                    "equal size; choose a batch size that %d divides",
                    source, tr->tc->batch_size, dist_size(), tr->tc->grad_accum, shares);
    tr->micro = tr->tc->batch_size / shares;
    tr->T = task_max_length(tr->task);

    // The activations are allocated at once for the longest evaluation, so a run that fits starts
    // and a run that does not is refused here, not at its first evaluation.
    int longest = longest_context(tr);
    Budget budget = {0};
    budget_model(&budget, &tr->model, 1, tr->micro, longest, tr->tc->grad_accum + 1);
    budget_exchange(&budget, tr);
    double limit = a->memory_limit > 0 ? a->memory_limit : available_memory_bytes();
    // Micro-batches run at once on up to one replica a thread, as many as the memory holds (the
    // results are the same with any number).
    int replicas = tr->tc->grad_accum < tr->threads ? tr->tc->grad_accum : tr->threads;
    while (replicas > 1 && limit > 0 &&
           budget_total(&budget) + micro_extra_bytes(&tr->model, replicas, tr->micro, tr->T) > limit)
        replicas--;
    if (replicas > 1 && budget.n < BUDGET_MAX_PARTS) {
        BudgetPart *p = &budget.parts[budget.n++];
        *p = (BudgetPart){"", micro_extra_bytes(&tr->model, replicas, tr->micro, tr->T), "run.threads"};
        snprintf(p->name, sizeof p->name, "%d model replica%s running micro-batches at once", replicas - 1,
                 replicas > 2 ? "s" : "");
    }
    if (a->dry_run) {
        printf("%s: config valid; task %s (vocabulary %d, context %d); model %ld parameters\n", source,
               cfg->task.name, task_vocab_size(tr->task), tr->T, tr->model.n_params);
        printf("memory the run needs (%s %.2f GiB):\n", a->memory_limit > 0 ? "--memory-limit" : "available",
               limit / 1073741824.0);
        budget_print(&budget, stdout, "  ");
        return 0;
    }
    if (budget_check(&budget, limit, err, sizeof err) != 0)
        return fail(2, "%s: the run %s (--dry-run shows every part; --memory-limit SIZE sets the limit)", source, err);

    if (model_alloc(&tr->model, 1, err, sizeof err) != 0 ||
        model_prepare(&tr->model, tr->micro, longest, err, sizeof err) != 0)
        return fail(2, "%s", err);
    if (micro_init(&tr->runner, &tr->model, replicas, tr->tc->grad_accum, tr->micro, tr->T, err, sizeof err) != 0)
        return fail(2, "%s", err);
    tr->batches = calloc(tr->tc->grad_accum, sizeof *tr->batches);
    tr->micro_key = calloc(tr->tc->grad_accum, sizeof *tr->micro_key);
    tr->micro_loss = calloc(shares, sizeof *tr->micro_loss);
    if (!tr->batches || !tr->micro_key || !tr->micro_loss) return fail(1, "out of memory");
    for (int i = 0; i < tr->tc->grad_accum; i++) batch_alloc(&tr->batches[i], tr->micro, tr->T);
    return 0;
}

// The checkpoint --resume continues from: --checkpoint, or the one `latest` names, or when the run
// was stopped before `latest` was first written the newest intact checkpoint file, if any. An empty
// path means: no checkpoint yet, start again from step 0. config_json names the run's config.json.
static int resume_point(const Trainer *tr, const Args *a, const char *config_json, char *ckpt, int len) {
    char err[2048], latest[1200];
    ckpt[0] = '\0';
    if (a->checkpoint) {
        run_checkpoint_path(tr->dir, a->checkpoint, ckpt, len, err, sizeof err);
        return 0;
    }
    snprintf(latest, sizeof latest, "%s/latest", tr->dir);
    if (access(latest, F_OK) == 0) {
        if (checkpoint_latest(tr->dir, ckpt, len, err, sizeof err) != 0) return fail(2, "--resume: %s", err);
        return 0;
    }
    if (access(config_json, F_OK) != 0)
        return fail(2, "--resume: %s holds no run (no config.json); start it without --resume", tr->dir);
    char name[64];
    if (checkpoint_newest_intact(tr->dir, LONG_MAX, name, sizeof name) == 0)
        snprintf(ckpt, len, "%s/%s", tr->dir, name);
    return 0;
}

// Refuses to resume with a config whose non-resume-safe keys differ from the saved one (the
// checkpoint's, or config.json when there is no checkpoint yet).
static int check_resume_config(Trainer *tr, const char *ckpt, const char *config_json) {
    char err[2048];
    Config saved;
    const char *source = ckpt[0] ? ckpt : config_json;
    if (ckpt[0]) {
        if (run_read_config(ckpt, &saved, NULL, NULL, err, sizeof err) != 0) {
            run_suggest_intact(tr->dir, ckpt, "--resume --checkpoint", err, sizeof err);
            return fail(2, "%s", err);
        }
    } else if (config_load(&saved, config_json, NULL, 0, err, sizeof err) != 0) {
        return fail(2, "%s", err);
    }
    if (config_check_resume(&saved, &tr->cfg, stdout, err, sizeof err) != 0)
        return fail(2, "cannot resume %s with this config: %s", source, err);
    return 0;
}

// Opens runs/<name>/ for a new run, or for --resume: checks the config against the saved one,
// restores the checkpoint and cuts metrics.jsonl back to it.
static int open_or_resume_run(Trainer *tr, const Args *a) {
    char err[2048], config_json[1200], ckpt[1200] = "";
    snprintf(tr->dir, sizeof tr->dir, "%s/%s", tr->cfg.run.out_dir, tr->cfg.run.name);
    snprintf(config_json, sizeof config_json, "%s/config.json", tr->dir);
    if (!a->resume && access(config_json, F_OK) == 0) {
        char latest[1200];
        snprintf(latest, sizeof latest, "%s/latest", tr->dir);
        return fail(2,
                    "%s already holds a run%s; use --resume to continue it, or choose another run.name "
                    "(--set run.name=...)",
                    tr->dir, access(latest, F_OK) == 0 ? "" : " stopped before its first checkpoint (--resume starts it again from step 0)");
    }
    if (a->resume && (resume_point(tr, a, config_json, ckpt, sizeof ckpt) != 0 ||
                      check_resume_config(tr, ckpt, config_json) != 0))
        return 2;
    if (make_dirs(tr->dir) != 0) return fail(2, "cannot create %s: %s", tr->dir, strerror(errno));
    if (runlog_open(&tr->log, tr->dir, err, sizeof err) != 0) return fail(2, "%s", err);
    tr->log_open = 1;

    RunLog *log = &tr->log;
    say(tr, "copetrain: run %s (%s)\n", tr->dir,
                  !a->resume ? "new" : ckpt[0] ? "resumed" : "resumed: it has no checkpoint yet, so it starts again from step 0");
    config_print(&tr->cfg, stdout);
    config_print(&tr->cfg, log->text);
    if (dist_size() > 1)
        say(tr, "ranks: %d (MPI), each with %d threads (OpenMP), OpenBLAS core %s, %s\n", dist_size(), tr->threads,
            openblas_get_corename(), REAL_NAME);
    else
        say(tr, "threads: %d (OpenMP), OpenBLAS core %s, %s\n", tr->threads, openblas_get_corename(), REAL_NAME);
    char *json = config_to_json(&tr->cfg);
    int rc = json ? atomic_write_file(config_json, json, strlen(json), err, sizeof err) : -1;
    free(json);
    if (rc != 0) return fail(1, "%s", json ? err : "out of memory");
    say(tr, "model: %ld parameters, activations %.1f MiB for %d × %d\n", tr->model.n_params,
                  tr->model.act_size * sizeof(real) / 1048576.0, tr->micro, tr->T);

    tr->st = (TrainState){.dropout_seed = rng_mix64((uint64_t)tr->cfg.run.seed ^ 0xd50b0d)};
    if (ckpt[0]) {
        if (run_restore(ckpt, &tr->model, tr->task, &tr->st, err, sizeof err) != 0) {
            run_suggest_intact(tr->dir, ckpt, "--resume --checkpoint", err, sizeof err);
            return fail(2, "%s", err);
        }
        say(tr, "resumed from %s at step %lld\n", ckpt, (long long)tr->st.step);
    }
    if (a->resume &&
        runlog_truncate_metrics(log, tr->st.step, tr->tc->log_interval, tr->tc->steps, err, sizeof err) != 0)
        return fail(1, "%s", err);
    return 0;
}

static void format_duration(char *out, size_t n, double s) {
    if (s < 60)
        snprintf(out, n, "%.1fs", s);
    else if (s < 3600)
        snprintf(out, n, "%dm%02ds", (int)s / 60, (int)s % 60);
    else
        snprintf(out, n, "%dh%02dm", (int)s / 3600, ((int)s % 3600) / 60);
}

// Stops a run whose numbers are no longer finite, saying where and what to change.
static int diverged(Trainer *tr, long long step, const char *what) {
    char last[1200], err[1024];
    int have = checkpoint_latest(tr->dir, last, sizeof last, err, sizeof err) == 0;
    say(tr,
                  "diverged at step %lld: %s; no checkpoint is written. %s%s%s. Lower train.lr, or enable or lower "
                  "train.grad_clip (e.g. 1), or lower train.weight_decay\n",
                  step, what, have ? "The latest checkpoint, " : "No checkpoint was written before", have ? last : "",
                  have ? ", is finite and kept" : "");
    return EXIT_DIVERGED;
}

// This rank's micro-batches of the step: the step's batch is grad_accum × ranks micro-batches drawn
// in turn from the one seeded stream, of which rank r takes the r-th run of grad_accum. Returns the
// step's loss normaliser, over all of them, and sets *tokens to their positions.
static double draw_batches(Trainer *tr, long *tokens) {
    const TrainConfig *tc = tr->tc;
    long share = (long)tc->grad_accum * tr->micro;
    task_skip_train(tr->task, dist_rank() * share);
    long counts[2] = {0, 0};  // the normaliser (a count) and the positions
    for (int a = 0; a < tc->grad_accum; a++) {
        Batch *b = &tr->batches[a];
        task_next_train(tr->task, b, tr->micro);
        counts[0] += (long)batch_loss_normaliser(b, tr->loss_per_sequence);
        counts[1] += (long)b->B * b->T;
    }
    task_skip_train(tr->task, (dist_size() - 1 - dist_rank()) * share);
    dist_sum_longs(counts, 2);
    *tokens = counts[1];
    return counts[0] > 0 ? (double)counts[0] : 1;
}

// The gradient of this rank's micro-batches: each one's from zero, added in order (a rank of a
// job of N with one micro-batch then holds exactly what a single process with N micro-batches
// holds at that point of its sum). Their losses go to micro_loss, their statistics to `stats`.
static void accumulate_gradients(Trainer *tr, double norm, EvalStats *stats) {
    int k = tr->tc->grad_accum;
    for (int a = 0; a < k; a++) {
        long micro = (long)dist_rank() * k + a;  // the micro-batch's place in the whole step
        tr->micro_key[a] = rng_key(tr->st.dropout_seed, (uint64_t)tr->st.step, (uint64_t)micro, 1);
    }
    micro_gradients(&tr->runner, tr->batches, k, tr->micro_key, (real)(1.0 / norm),
                    tr->micro_loss + (long)dist_rank() * k, stats);
}

// One optimizer step over the batch (grad_accum micro-batches on each rank). Returns 0, or
// EXIT_DIVERGED (the parameters untouched) when the loss or the gradient norm is not finite; every
// rank returns the same, as every rank holds the same summed gradient.
static int train_step(Trainer *tr) {
    const TrainConfig *tc = tr->tc;
    Model *model = &tr->model;
    TrainState *st = &tr->st;
    double lr = lr_at(&tr->opt, st->step);
    // The normaliser covers the whole step, so B sequences in one batch, in k micro-batches or on
    // N ranks give the same gradient.
    long step_tokens;
    double norm = draw_batches(tr, &step_tokens);
    EvalStats stats = {0};
    accumulate_gradients(tr, norm, &stats);
    if (dist_sum_reals(model->grads, model->n_params) != 0)
        return alone(fail(1, "out of memory summing the gradients of the ranks"));
    tr->interval_reduce += dist_take_reduce_seconds();
    int shares = tc->grad_accum * dist_size();
    dist_gather_doubles(tr->micro_loss + dist_rank() * tc->grad_accum, tc->grad_accum, tr->micro_loss);
    double step_loss = 0;
    for (int i = 0; i < shares; i++) step_loss += tr->micro_loss[i];
    eval_sum_ranks(&stats);
    stats.loss_sum = step_loss;
    double grad_norm = clip_gradients(model, tc->grad_clip);
    if (!isfinite(step_loss) || !isfinite(grad_norm)) {
        char what[128];
        snprintf(what, sizeof what, "the training loss is %g and the gradient norm %g; the step was not applied",
                 step_loss / norm, grad_norm);
        return diverged(tr, st->step + 1, what);
    }
    adam_update(model, &tr->opt, st->step + 1, lr);
    st->step++;
    st->lr = lr;
    st->tokens += step_tokens;
    st->interval_loss += step_loss / norm;
    st->interval_steps++;
    eval_add(&st->interval, &stats);
    tr->interval_tokens += step_tokens;
    return 0;
}

// The progress line and the "train" metrics line, at every log interval and at the last step.
static int log_progress(Trainer *tr) {
    const TrainConfig *tc = tr->tc;
    TrainState *st = &tr->st;
    int last = st->step == tc->steps, log_due = st->step % tc->log_interval == 0;
    if (!log_due && !last) return 0;
    char err[1024], el[32], lf[32];
    double now = now_seconds();
    double tok_s = tr->interval_tokens / (now - tr->interval_start);
    st->elapsed = now - tr->t0;
    format_duration(el, sizeof el, st->elapsed);
    format_duration(lf, sizeof lf, (tc->steps - st->step) * (st->elapsed / (double)st->step));
    double loss = st->interval_loss / st->interval_steps;
    char reduce[96] = "";  // in a job of several ranks: the time summing gradients, per step
    if (dist_size() > 1)
        snprintf(reduce, sizeof reduce, " | allreduce %.1f ms/step", 1e3 * tr->interval_reduce / st->interval_steps);
    if (tr->gov.count < tr->threads)  // other processes hold cores: the governor runs fewer threads
        snprintf(reduce + strlen(reduce), sizeof reduce - strlen(reduce), " | %d of %d threads (busy machine)",
                 tr->gov.count, tr->threads);
    say(tr, "step %6lld/%d | loss %.4f | err %6.2f%% | lr %.2e | %8.0f tok/s%s | %s elapsed | %s left\n",
        (long long)st->step, tc->steps, loss, 100 * eval_error(&st->interval), st->lr, tok_s, reduce, el, lf);
    if (tr->log_open && runlog_metrics(&tr->log, st->step, "train", loss, st->lr, tok_s, &st->interval,
                                       task_is_language_model(tr->task), err, sizeof err) != 0)
        return alone(fail(1, "%s", err));
    // A last line off the interval keeps the interval open: a run resumed from here with more
    // steps then logs the lines of the run that never stopped.
    if (log_due) {
        st->interval_loss = 0;
        st->interval_steps = 0;
        memset(&st->interval, 0, sizeof st->interval);
        tr->interval_tokens = 0;
        tr->interval_reduce = 0;
        tr->interval_start = now;
    }
    return 0;
}

// Writes the step's checkpoint; a non-finite parameter or moment (an overflow the loss has not
// shown yet) stops the run as diverged instead (on every rank, as they hold the same values).
// Rank 0 writes it.
static int save_checkpoint(Trainer *tr) {
    char err[2048];
    if (run_check_finite(&tr->model, "", err, sizeof err) != 0) return diverged(tr, tr->st.step, err);
    tr->st.elapsed = now_seconds() - tr->t0;
    if (dist_rank() > 0 ||
        run_save(tr->dir, &tr->model, tr->task, &tr->st, tr->tc->keep_checkpoints, err, sizeof err) == 0)
        return 0;
    return alone(fail(1, "checkpoint of step %lld not written: %s", (long long)tr->st.step, err));
}

// The evaluation due at `step`: the validation split every eval_interval steps, every split at the
// last step. A split longer than the model can run (learned absolute PE) is skipped with the reason.
static int evaluate_due(Trainer *tr) {
    const TrainConfig *tc = tr->tc;
    long step = (long)tr->st.step;
    int last = step == tc->steps;
    if (!last && !(tc->eval_interval > 0 && step % tc->eval_interval == 0)) return 0;
    char err[1024];
    const char *const *splits = task_split_names(tr->task);
    for (int s = 0; splits[s]; s++) {
        if (!last && strcmp(splits[s], "valid") != 0) continue;
        int T = task_split_max_length(tr->task, splits[s]);
        if (model_check_length(&tr->model, T, err, sizeof err) != 0) {
            say(tr, "eval %-8s skipped: %s\n", splits[s], err);
            continue;
        }
        Batch b;
        batch_alloc(&b, tr->micro, T);
        EvalStats es;
        int rc = evaluate_split(&tr->model, tr->task, splits[s], tc->eval_sequences, &b, &es, err, sizeof err);
        batch_free(&b);
        if (rc != 0) return alone(fail(1, "evaluation: %s", err));
        double loss = eval_loss(&es);
        say(tr, "eval %-8s step %ld | loss %.4f | err %6.2f%% | seq err %6.2f%%\n", splits[s], step, loss,
            100 * eval_error(&es), 100 * eval_seq_error(&es));
        if (tr->log_open && runlog_metrics(&tr->log, step, splits[s], loss, tr->st.lr, 0, &es,
                                           task_is_language_model(tr->task), err, sizeof err) != 0)
            return alone(fail(1, "%s", err));
    }
    tr->interval_start = now_seconds();  // evaluation time is not training throughput
    return 0;
}

// The signal that stops the run after this step, 0 for none: the ranks stop together, at the step
// the first of them was signalled in (mpirun passes a Ctrl-C on to each).
static int stop_requested(void) { return dist_max_int((int)stop_signal); }

static int stopped_by_signal(Trainer *tr, int sig) {
    say(tr, "stopped by signal %d at step %lld; checkpoint written; continue with --resume\n", sig,
        (long long)tr->st.step);
    return 128 + sig;
}

// The training loop. Each step: train, log, checkpoint (before the evaluation, so a failing
// evaluation loses no training), evaluate. A resumed run first reruns the evaluation of its
// checkpoint's step, which a kill may have cut short (runlog_truncate_metrics dropped its lines).
static int train(Trainer *tr) {
    const TrainConfig *tc = tr->tc;
    signal(SIGINT, on_signal);
    signal(SIGTERM, on_signal);
    tr->interval_start = now_seconds();
    tr->t0 = tr->interval_start - tr->st.elapsed;
    if (tr->st.step > 0) {
        int rc = evaluate_due(tr);
        if (rc != 0) return rc;
        int sig = stop_requested();
        if (sig) return stopped_by_signal(tr, sig);
    }
    while (tr->st.step < tc->steps) {
        governor_step_begin(&tr->gov);
        double t_step = now_seconds();
        int rc = train_step(tr);
        governor_step_end(&tr->gov, now_seconds() - t_step);
        if (rc == 0) rc = log_progress(tr);
        if (rc != 0) return rc;
        int saved = 0;
        if (tr->st.step % tc->checkpoint_interval == 0 || tr->st.step == tc->steps) {
            if ((rc = save_checkpoint(tr)) != 0) return rc;
            saved = 1;
        }
        if ((rc = evaluate_due(tr)) != 0) return rc;
        // A signal (also one that came during the evaluation) ends the run after this step.
        int sig = stop_requested();
        if (sig) {
            if (!saved && (rc = save_checkpoint(tr)) != 0) return rc;
            return stopped_by_signal(tr, sig);
        }
    }
    say(tr, "done: %lld steps\n", (long long)tr->st.step);
    return 0;
}

static void trainer_free(Trainer *tr) {
    if (tr->log_open) runlog_close(&tr->log);
    if (tr->batches)
        for (int i = 0; i < tr->tc->grad_accum; i++) batch_free(&tr->batches[i]);
    free(tr->batches);
    micro_free(&tr->runner);
    free(tr->micro_key);
    free(tr->micro_loss);
    model_free(&tr->model);
    task_free(tr->task);
}

// Rank 0 opened the run and restored its checkpoint; every other rank takes the state from it (so
// only rank 0 needs the run folder).
static int share_state(Trainer *tr) {
    if (dist_size() == 1) return 0;
    Model *m = &tr->model;
    long bytes = (long)sizeof(real) * m->n_params;
    dist_broadcast(m->params, bytes);
    dist_broadcast(m->adam_m, bytes);
    dist_broadcast(m->adam_v, bytes);
    dist_broadcast(&tr->st, sizeof tr->st);
    size_t size = task_state_size(tr->task);
    void *cursor = malloc(size);
    if (!cursor) return alone(fail(1, "out of memory"));
    if (dist_rank() == 0) task_state_save(tr->task, cursor);
    dist_broadcast(cursor, (long)size);
    int rc = task_state_load(tr->task, cursor, size);
    free(cursor);
    return rc == 0 ? 0 : alone(fail(2, "rank 0's training-stream cursor does not fit this rank's task"));
}

static int run(Trainer *tr, const Args *args) {
    int code = agree(setup(tr, args));
    if (code != 0 || args->dry_run) return code;
    // The other ranks leave the run folder to rank 0 (they name it only in messages).
    snprintf(tr->dir, sizeof tr->dir, "%s/%s", tr->cfg.run.out_dir, tr->cfg.run.name);
    code = agree(dist_rank() == 0 ? open_or_resume_run(tr, args) : 0);
    if (code == 0) code = share_state(tr);
    if (code == 0) code = train(tr);
    return code;
}

int main(int argc, char **argv) {
    dist_init(&argc, &argv);
    // Rank 0 alone prints; the others write only their failures (stderr).
    if (dist_rank() > 0 && !freopen("/dev/null", "w", stdout)) return 1;
    Args args;
    int code = parse_args(argc, argv, &args);
    // A rank whose arguments stop it here (--help, a bad one) stops the job.
    if (dist_max_int(code >= 0)) {
        code = agree(code > 0 ? code : 0);
    } else {
        Trainer tr = {0};
        code = run(&tr, &args);
        trainer_free(&tr);
    }
    free(args.overrides);
    dist_finalize();
    return code;
}
