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

// Writes run_dir/ckpt_<step>.bin (keeping the newest `keep`) and points run_dir/latest at it.
int run_save(const char *run_dir, const Model *m, Task *task, const TrainState *st, int keep, char *err,
             int errlen);
// Everything ./train --resume needs: parameters, moments, state and the task's cursor.
int run_restore(const char *path, Model *m, Task *task, TrainState *st, char *err, int errlen);
// The checkpoint a program should read: `name` (a path, or a file in run_dir) or, when NULL, the
// run's latest.
int run_checkpoint_path(const char *run_dir, const char *name, char *path, int pathlen, char *err, int errlen);
// A checkpoint's config (and, when asked, its JSON text, malloc'd, and its train state).
int run_read_config(const char *path, Config *cfg, char **json, TrainState *st, char *err, int errlen);
// A checkpoint's parameters into a model built from its config.
int run_load_params(const char *path, Model *m, char *err, int errlen);

#endif
