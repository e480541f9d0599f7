// ./train CONFIG.json [--set section.key=value]... [--resume]
//
// Trains a model on a task as the config says, in runs/<name>/: config.json (resolved),
// metrics.jsonl, log.txt and checkpoints. Without a config it trains the embedded default (a small
// flip-flop model with CoPE that finishes in about a minute).
#include <errno.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cblas.h>

#include "config.h"
#include "evaluate.h"
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

static volatile sig_atomic_t stop_signal = 0;

static void on_signal(int sig) {
    stop_signal = sig;
    signal(sig, SIG_DFL);  // a second Ctrl-C stops at once
}

static void usage(void) {
    fprintf(stderr,
            "usage: ./train [CONFIG.json] [--set section.key=value]... [--resume]\n"
            "  CONFIG.json   the run's configuration (default: the embedded flip-flop CoPE demo)\n"
            "  --set k=v     override one key, e.g. --set train.lr=3e-4 --set run.name=x\n"
            "  --resume      continue the run in runs/<name>/ from its latest checkpoint\n"
            "  --dry-run     check the config, build the task and the model, print their sizes, and stop\n"
            "  --keys        print every config key (type, default, range, meaning) as a Markdown table\n");
}

static int save_state(const char *run_dir, const Model *m, Task *task, TrainState *st, double t0, int keep) {
    char err[1024];
    st->elapsed = now_seconds() - t0;
    if (run_save(run_dir, m, task, st, keep, err, sizeof err) == 0) return 0;
    fprintf(stderr, "train: checkpoint not written: %s\n", err);
    return -1;
}

// Evaluates the task's validation split (or, at the end, every split) and logs the results. A split
// longer than the model can run (learned absolute PE) is skipped with the reason.
static int evaluate_and_log(RunLog *log, Model *model, Task *task, const TrainConfig *tc, long step, double lr,
                            int all_splits, char *err, int errlen) {
    const char *const *splits = task_split_names(task);
    int micro = tc->batch_size / tc->grad_accum;
    for (int s = 0; splits[s]; s++) {
        if (!all_splits && strcmp(splits[s], "valid") != 0) continue;
        int T = task_split_max_length(task, splits[s]);
        if (model_check_length(model, T, err, errlen) != 0) {
            runlog_printf(log, "eval %-8s skipped: %s\n", splits[s], err);
            continue;
        }
        Batch b;
        batch_alloc(&b, micro, T);
        EvalStats es;
        int rc = evaluate_split(model, task, splits[s], tc->eval_sequences, &b, &es, err, errlen);
        batch_free(&b);
        if (rc != 0) return -1;
        double loss = es.loss_sum / (es.n_loss > 0 ? es.n_loss : 1);
        runlog_printf(log, "eval %-8s step %ld | loss %.4f | err %6.2f%% | seq err %6.2f%%\n", splits[s], step, loss,
                      100 * eval_error(&es), 100 * eval_seq_error(&es));
        if (runlog_metrics(log, step, splits[s], loss, lr, 0, &es, task_is_language_model(task), err, errlen) != 0)
            return -1;
    }
    return 0;
}

static int file_exists(const char *path) {
    struct stat sb;
    return stat(path, &sb) == 0;
}

static void format_duration(char *out, size_t n, double s) {
    if (s < 60)
        snprintf(out, n, "%.1fs", s);
    else if (s < 3600)
        snprintf(out, n, "%dm%02ds", (int)s / 60, (int)s % 60);
    else
        snprintf(out, n, "%dh%02dm", (int)s / 3600, ((int)s % 3600) / 60);
}

int main(int argc, char **argv) {
    const char *config_path = NULL;
    const char *overrides[256];
    int n_overrides = 0, resume = 0, dry_run = 0;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--resume") == 0) {
            resume = 1;
        } else if (strcmp(argv[i], "--set") == 0 && i + 1 < argc && n_overrides < 256) {
            overrides[n_overrides++] = argv[++i];
        } else if (strncmp(argv[i], "--set=", 6) == 0 && n_overrides < 256) {
            overrides[n_overrides++] = argv[i] + 6;
        } else if (strcmp(argv[i], "--dry-run") == 0) {
            dry_run = 1;
        } else if (strcmp(argv[i], "--keys") == 0) {
            config_schema_markdown(stdout);
            return 0;
        } else if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
            usage();
            return 0;
        } else if (argv[i][0] == '-' || config_path) {
            fprintf(stderr, "train: unexpected argument \"%s\"\n", argv[i]);
            usage();
            return 2;
        } else {
            config_path = argv[i];
        }
    }

    char err[1024];
    Config cfg;
    int rc = config_path ? config_load(&cfg, config_path, overrides, n_overrides, err, sizeof err)
                         : config_load_text(&cfg, default_config, "(embedded default config)", overrides,
                                            n_overrides, err, sizeof err);
    if (rc != 0) {
        fprintf(stderr, "train: %s\n", err);
        return 2;
    }

    int threads = set_threads(cfg.run.threads);

    Task *task = task_create(&cfg.task, cfg.model.block_size, (uint64_t)cfg.run.seed, err, sizeof err);
    if (!task) {
        fprintf(stderr, "train: %s%s\n", err,
                cfg.task.data_dir[0] ? " (data/README.md says how to fetch or build the data)" : "");
        return 2;
    }
    Model model;
    if (model_create(&model, &cfg, task_vocab_size(task), err, sizeof err) != 0) {
        fprintf(stderr, "train: %s\n", err);
        return 2;
    }
    const TrainConfig *tc = &cfg.train;
    int micro = tc->batch_size / tc->grad_accum;
    int T = task_max_length(task);
    if (dry_run) {
        printf("%s: config valid; task %s (vocabulary %d, context %d); model %ld parameters, activations %.1f MiB "
               "for %d x %d\n",
               config_path ? config_path : "(embedded default config)", cfg.task.name, task_vocab_size(task), T,
               model.n_params, model_activation_size(&model, micro, T) * sizeof(real) / 1048576.0, micro, T);
        model_free(&model);
        task_free(task);
        return 0;
    }

    if (model_prepare(&model, micro, T, err, sizeof err) != 0) {
        fprintf(stderr, "train: %s\n", err);
        return 2;
    }
    char run_dir[1024], path[1200];
    snprintf(run_dir, sizeof run_dir, "%s/%s", cfg.run.out_dir, cfg.run.name);
    snprintf(path, sizeof path, "%s/config.json", run_dir);
    int run_exists = file_exists(path);
    if (run_exists && !resume) {
        fprintf(stderr,
                "train: %s already holds a run; use --resume to continue it, or choose another run.name "
                "(--set run.name=...)\n",
                run_dir);
        return 2;
    }
    char ckpt_path[1200] = "";
    if (resume) {
        if (run_checkpoint_path(run_dir, NULL, ckpt_path, sizeof ckpt_path, err, sizeof err) != 0) {
            fprintf(stderr, "train: --resume: %s\n", err);
            return 2;
        }
        Config saved;
        if (run_read_config(ckpt_path, &saved, NULL, NULL, err, sizeof err) != 0) {
            fprintf(stderr, "train: %s\n", err);
            return 2;
        }
        if (config_check_resume(&saved, &cfg, stdout, err, sizeof err) != 0) {
            fprintf(stderr, "train: cannot resume %s with this config: %s\n", ckpt_path, err);
            return 2;
        }
    }
    if (make_dirs(run_dir) != 0) {
        fprintf(stderr, "train: cannot create %s: %s\n", run_dir, strerror(errno));
        return 2;
    }
    RunLog log;
    if (runlog_open(&log, run_dir, err, sizeof err) != 0) {
        fprintf(stderr, "train: %s\n", err);
        return 2;
    }

    runlog_printf(&log, "copetrain: run %s (%s)\n", run_dir, resume ? "resumed" : "new");
    config_print(&cfg, stdout);
    config_print(&cfg, log.text);
    runlog_printf(&log, "threads: %d (OpenMP), OpenBLAS core %s, %s\n", threads, openblas_get_corename(), REAL_NAME);

    char *json = config_to_json(&cfg);
    rc = runlog_write_atomic(path, json, err, sizeof err);
    free(json);
    if (rc != 0) {
        fprintf(stderr, "train: %s\n", err);
        return 1;
    }

    runlog_printf(&log, "model: %ld parameters, activations %.1f MiB for %d × %d\n", model.n_params,
                  model.act_size * sizeof(real) / 1048576.0, micro, T);

    TrainState st = {.dropout_seed = rng_mix64((uint64_t)cfg.run.seed ^ 0xd50b0d)};
    if (resume) {
        if (run_restore(ckpt_path, &model, task, &st, err, sizeof err) != 0) {
            fprintf(stderr, "train: %s\n", err);
            return 2;
        }
        runlog_printf(&log, "resumed from %s at step %lld\n", ckpt_path, (long long)st.step);
        if (runlog_truncate_metrics(&log, st.step, tc->log_interval, tc->eval_interval, err, sizeof err) != 0) {
            fprintf(stderr, "train: %s\n", err);
            return 1;
        }
    }

    Batch *batches = calloc(tc->grad_accum, sizeof *batches);
    if (!batches) {
        fprintf(stderr, "train: out of memory\n");
        return 1;
    }
    for (int a = 0; a < tc->grad_accum; a++) batch_alloc(&batches[a], micro, T);

    signal(SIGINT, on_signal);
    signal(SIGTERM, on_signal);

    double interval_start = now_seconds(), t0 = now_seconds() - st.elapsed;
    long interval_tokens = 0;  // for tokens/s only: timing is not part of the run's state
    int exit_code = 0;
    while (st.step < tc->steps) {
        double lr = lr_at(tc, st.step);
        model_zero_grad(&model);
        // The normaliser covers the whole step, so B sequences in one batch and in k micro-batches
        // give the same gradient.
        double norm = 0;
        for (int a = 0; a < tc->grad_accum; a++) {
            task_next_train(task, &batches[a], micro);
            norm += batch_loss_normaliser(&batches[a], tc->loss_norm);
        }
        if (norm <= 0) norm = 1;
        double step_loss = 0;
        long step_tokens = 0;
        for (int a = 0; a < tc->grad_accum; a++) {
            Batch *b = &batches[a];
            if (model_prepare(&model, b->B, b->T, err, sizeof err) != 0) {
                fprintf(stderr, "train: %s\n", err);
                return 2;
            }
            uint64_t key = rng_key(st.dropout_seed, (uint64_t)st.step, (uint64_t)a, 1);
            step_loss += model_forward(&model, b, key);
            eval_accumulate(&st.interval, &model, b);
            model_backward(&model, b, (real)(1.0 / norm));
            step_tokens += (long)b->B * b->T;
        }
        clip_gradients(&model, tc->grad_clip);
        adam_update(&model, tc, st.step + 1, lr);
        st.step++;
        st.lr = lr;
        st.tokens += step_tokens;
        st.interval_loss += step_loss / norm;
        st.interval_steps++;
        interval_tokens += step_tokens;

        int last = st.step == tc->steps;
        int log_due = st.step % tc->log_interval == 0;
        if (log_due || last) {
            double now = now_seconds();
            double tok_s = interval_tokens / (now - interval_start);
            st.elapsed = now - t0;
            double left = (tc->steps - st.step) * (st.elapsed / (double)st.step);
            char el[32], lf[32];
            format_duration(el, sizeof el, st.elapsed);
            format_duration(lf, sizeof lf, left);
            double loss = st.interval_loss / st.interval_steps;
            runlog_printf(&log, "step %6lld/%d | loss %.4f | err %6.2f%% | lr %.2e | %8.0f tok/s | %s elapsed | %s left\n",
                          (long long)st.step, tc->steps, loss, 100 * eval_error(&st.interval), lr, tok_s, el, lf);
            if (runlog_metrics(&log, st.step, "train", loss, lr, tok_s, &st.interval, task_is_language_model(task),
                               err, sizeof err) != 0) {
                fprintf(stderr, "train: %s\n", err);
                exit_code = 1;
                break;
            }
            // A last line off the interval keeps the interval open: a run resumed from here with
            // more steps then logs the lines of the run that never stopped.
            if (log_due) {
                st.interval_loss = 0;
                st.interval_steps = 0;
                memset(&st.interval, 0, sizeof st.interval);
                interval_tokens = 0;
                interval_start = now;
            }
        }
        // The checkpoint comes before the evaluation, so a failing evaluation loses no training.
        int saved = 0;
        if (st.step % tc->checkpoint_interval == 0 || last) {
            if (save_state(run_dir, &model, task, &st, t0, tc->keep_checkpoints) != 0) {
                exit_code = 1;
                break;
            }
            saved = 1;
        }
        if ((tc->eval_interval > 0 && st.step % tc->eval_interval == 0) || last) {
            if (evaluate_and_log(&log, &model, task, tc, st.step, lr, last, err, sizeof err) != 0) {
                fprintf(stderr, "train: evaluation: %s\n", err);
                exit_code = 1;
                break;
            }
            interval_start = now_seconds();  // evaluation time is not training throughput
        }
        // A signal (also one that came during the evaluation) ends the run after this step.
        if (stop_signal) {
            if (!saved && save_state(run_dir, &model, task, &st, t0, tc->keep_checkpoints) != 0) {
                exit_code = 1;
                break;
            }
            runlog_printf(&log, "stopped by signal %d at step %lld; checkpoint written; continue with --resume\n",
                          (int)stop_signal, (long long)st.step);
            exit_code = 128 + stop_signal;
            break;
        }
    }
    if (exit_code == 0) runlog_printf(&log, "done: %lld steps\n", (long long)st.step);
    runlog_close(&log);
    for (int a = 0; a < tc->grad_accum; a++) batch_free(&batches[a]);
    free(batches);
    model_free(&model);
    task_free(task);
    return exit_code;
}
