#include "run.h"

#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "checkpoint.h"
#include "error.h"

// The step of a path ending in ckpt_<step>.bin; LONG_MAX for any other name.
static long step_of(const char *path) {
    const char *base = strrchr(path, '/') ? strrchr(path, '/') + 1 : path;
    long step;
    char tail[8];
    return sscanf(base, "ckpt_%ld%7s", &step, tail) == 2 && !strcmp(tail, ".bin") ? step : LONG_MAX;
}

// " (the latest intact checkpoint is ckpt_X.bin)" after a failed write, when there is one.
static void name_latest(const char *run_dir, char *err, int errlen) {
    char path[1200], ignored[1024];
    size_t len = strlen(err);
    if (checkpoint_latest(run_dir, path, sizeof path, ignored, sizeof ignored) == 0)
        snprintf(err + len, errlen - len, "; %s, which `latest` names, is intact", path);
    else
        snprintf(err + len, errlen - len, "; the run has no earlier checkpoint");
}

// The config section is JSON text: a NUL inside would cut it short unseen.
static int config_text_check(const char *path, const char *text, size_t size, char *err, int errlen) {
    if (strlen(text) == size) return 0;
    return errf(err, errlen, "checkpoint %s: corrupt: section 'config' holds a NUL byte at offset %zu", path,
                strlen(text));
}

int run_check_finite(const Model *m, const char *where, char *err, int errlen) {
    const real *bufs[3] = {m->params, m->adam_m, m->adam_v};
    const char *names[3] = {"params", "adam_m", "adam_v"};
    char what[1400];
    for (int i = 0; i < 3; i++) {
        snprintf(what, sizeof what, "%s'%s'", where, names[i]);
        if (bufs[i] && model_check_finite(m, bufs[i], what, err, errlen) != 0) return -1;
    }
    return 0;
}

int run_save(const char *run_dir, const Model *m, Task *task, const TrainState *st, int keep, char *err,
             int errlen) {
    char *json = config_to_json(&m->cfg);
    size_t task_size = task_state_size(task);
    void *task_buf = malloc(task_size ? task_size : 1);
    if (!json || !task_buf) {
        free(json);
        free(task_buf);
        snprintf(err, errlen, "out of memory preparing the checkpoint of step %lld", (long long)st->step);
        return -1;
    }
    task_state_save(task, task_buf);
    size_t pbytes = sizeof(real) * m->n_params;
    CkptSection sections[] = {
        {"config", json, strlen(json)},
        {"params", m->params, pbytes},
        {"adam_m", m->adam_m, pbytes},
        {"adam_v", m->adam_v, pbytes},
        {"train_state", (void *)st, sizeof *st},
        {"task_state", task_buf, task_size},
    };
    int rc = checkpoint_save_step(run_dir, st->step, keep, sections, 6, err, errlen);
    if (rc != 0) name_latest(run_dir, err, errlen);
    free(task_buf);
    free(json);
    return rc;
}

int run_restore(const char *path, Model *m, Task *task, TrainState *st, char *err, int errlen) {
    size_t pbytes = sizeof(real) * m->n_params;
    CkptSection sections[] = {
        {"params", m->params, pbytes},
        {"adam_m", m->adam_m, pbytes},
        {"adam_v", m->adam_v, pbytes},
        {"train_state", st, sizeof *st},
        {"task_state", NULL, 0},
    };
    if (checkpoint_read(path, sections, 5, err, errlen) != 0) return -1;
    int rc = task_state_load(task, sections[4].data, sections[4].size);
    if (rc != 0) snprintf(err, errlen, "%s: section task_state does not fit this task", path);
    free(sections[4].data);
    if (rc != 0) return rc;
    char where[1300];
    snprintf(where, sizeof where, "checkpoint %s: section ", path);
    return run_check_finite(m, where, err, errlen);
}

int run_checkpoint_path(const char *run_dir, const char *name, char *path, int pathlen, char *err, int errlen) {
    if (!name) return checkpoint_latest(run_dir, path, pathlen, err, errlen);
    struct stat sb;
    if (strchr(name, '/') || stat(name, &sb) == 0)
        snprintf(path, pathlen, "%s", name);
    else
        snprintf(path, pathlen, "%s/%s", run_dir, name);
    return 0;
}

int run_read_config(const char *path, Config *cfg, char **json, TrainState *st, char *err, int errlen) {
    TrainState unused;
    CkptSection sections[2] = {{"config", NULL, 0}, {"train_state", st ? st : &unused, sizeof unused}};
    if (checkpoint_read(path, sections, 2, err, errlen) != 0) return -1;
    int rc = config_text_check(path, sections[0].data, sections[0].size, err, errlen) == 0
                 ? config_from_json(cfg, sections[0].data, path, err, errlen)
                 : -1;
    if (rc == 0 && json)
        *json = sections[0].data;
    else
        free(sections[0].data);
    return rc;
}

// Attempts at reading the latest checkpoint of a run whose ./train replaces it meanwhile: each
// replacement takes one checkpoint interval, so a second attempt almost always succeeds.
#define LATEST_ATTEMPTS 5

int run_read_checkpoint(const char *run_dir, const char *name, RunCheckpoint *ck, char *err, int errlen) {
    memset(ck, 0, sizeof *ck);
    for (int attempt = 1;; attempt++) {
        if (run_checkpoint_path(run_dir, name, ck->path, sizeof ck->path, err, errlen) != 0) return -1;
        CkptSection sections[3] = {
            {"config", NULL, 0}, {"train_state", &ck->state, sizeof ck->state}, {"params", NULL, 0}};
        if (checkpoint_read(ck->path, sections, 3, err, errlen) == 0) {
            ck->config_json = sections[0].data;
            ck->params = sections[2].data;
            ck->n_params = (long)(sections[2].size / sizeof(real));
            if (config_text_check(ck->path, ck->config_json, sections[0].size, err, errlen) == 0 &&
                config_from_json(&ck->cfg, ck->config_json, ck->path, err, errlen) == 0)
                return 0;
            run_checkpoint_free(ck);
            return -1;
        }
        // Retry only when the file went away (pruned by the ./train that wrote a newer one).
        if (name || attempt == LATEST_ATTEMPTS || access(ck->path, F_OK) == 0) return -1;
    }
}

int run_use_params(const RunCheckpoint *ck, Model *m, char *err, int errlen) {
    if (ck->n_params != m->n_params) {
        snprintf(err, errlen, "checkpoint %s: section 'params' has %ld values, its config's model has %ld", ck->path,
                 ck->n_params, m->n_params);
        return -1;
    }
    char what[1300];
    snprintf(what, sizeof what, "checkpoint %s: section 'params'", ck->path);
    if (model_check_finite(m, ck->params, what, err, errlen) != 0) return -1;
    memcpy(m->params, ck->params, sizeof(real) * (size_t)m->n_params);
    return 0;
}

void run_checkpoint_free(RunCheckpoint *ck) {
    free(ck->config_json);
    free(ck->params);
    ck->config_json = NULL;
    ck->params = NULL;
}

void run_suggest_intact(const char *run_dir, const char *failed, const char *how, char *err, int errlen) {
    char name[64];
    size_t len = strlen(err);
    if (checkpoint_newest_intact(run_dir, step_of(failed), name, sizeof name) == 0)
        snprintf(err + len, errlen - len, "\n  %s/%s is intact: continue from it with %s %s", run_dir, name, how, name);
}
