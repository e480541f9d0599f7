// A training run's checkpoints: the sections ./train writes, and how ./train --resume, ./eval and
// ./sample read them back. (checkpoint.[ch] is the file format; this is what goes in it.)
//
//   config       the resolved config, JSON text
//   params       the flat parameter buffer (model.h's layout, which the config determines)
//   adam_m       Adam's first moments, same layout
//   adam_v       Adam's second moments, same layout
//   train_state  TrainState below
//   task_state   the task's training-stream cursor (task_state_save)
#ifndef RUN_H
#define RUN_H

#include <stdint.h>

#include "config.h"
#include "evaluate.h"
#include "model.h"
#include "tasks/task.h"

// The training state that is not a parameter.
typedef struct {
    int64_t step;           // optimizer steps done
    int64_t tokens;         // training tokens seen
    double elapsed;         // seconds of training so far
    uint64_t dropout_seed;  // the counter-based dropout stream's base (the "RNG state")
    double lr;              // the schedule's last learning rate
    // the log interval in progress, so a resumed run logs the same lines as one that never stopped
    double interval_loss;   // summed step losses
    int64_t interval_steps;
    EvalStats interval;     // training loss and metric counts
} TrainState;

// 0 when the parameters and Adam moments (those allocated) are finite; else -1 with err naming
// `where` + the section, the tensor and the index. ./train checks before every checkpoint, so each
// one is a state a run can go on from.
int run_check_finite(const Model *m, const char *where, char *err, int errlen);
// Writes run_dir/ckpt_<step>.bin (keeping the newest `keep`) and points run_dir/latest at it. When
// the write fails (a full disk), err also names the intact checkpoint `latest` still points to.
int run_save(const char *run_dir, const Model *m, Task *task, const TrainState *st, int keep, char *err,
             int errlen);
// Everything ./train --resume needs: parameters, moments, state and the task's cursor. Refuses
// non-finite values naming the tensor.
int run_restore(const char *path, Model *m, Task *task, TrainState *st, char *err, int errlen);
// The checkpoint a program should read: `name` (a path, or a file in run_dir) or, when NULL, the
// run's latest.
int run_checkpoint_path(const char *run_dir, const char *name, char *path, int pathlen, char *err, int errlen);
// A checkpoint's config (and, when asked, its JSON text, malloc'd, and its train state).
int run_read_config(const char *path, Config *cfg, char **json, TrainState *st, char *err, int errlen);

// A checkpoint as ./eval and ./sample use it, read in one pass: a ./train pruning its old
// checkpoints meanwhile cannot take the parameters away after the config was read.
typedef struct {
    char path[1200];
    char *config_json;  // the saved resolved config (malloc'd)
    Config cfg;
    TrainState state;
    real *params;       // the flat parameter buffer (malloc'd), n_params reals
    long n_params;
} RunCheckpoint;
// Reads run_dir's checkpoint `name` (see run_checkpoint_path; NULL: the latest, re-resolved when a
// running ./train replaced it while it was being read).
int run_read_checkpoint(const char *run_dir, const char *name, RunCheckpoint *ck, char *err, int errlen);
// Copies the parameters into a model built from ck->cfg; refuses non-finite values naming the tensor.
int run_use_params(const RunCheckpoint *ck, Model *m, char *err, int errlen);
void run_checkpoint_free(RunCheckpoint *ck);
// After the checkpoint `failed` of run_dir could not be read: appends to err the newest older
// checkpoint whose every CRC checks (if any) and how to use it (`how`, e.g. "--resume --checkpoint").
void run_suggest_intact(const char *run_dir, const char *failed, const char *how, char *err, int errlen);

#endif
