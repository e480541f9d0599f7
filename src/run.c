#include "run.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "checkpoint.h"

int run_save(const char *run_dir, const Model *m, Task *task, const TrainState *st, int keep, char *err,
             int errlen) {
    char *json = config_to_json(&m->cfg);
    size_t task_size = task_state_size(task);
    void *task_buf = malloc(task_size ? task_size : 1);
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
    return rc;
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
    int rc = config_from_json(cfg, sections[0].data, path, err, errlen);
    if (rc == 0 && json)
        *json = sections[0].data;
    else
        free(sections[0].data);
    return rc;
}

int run_load_params(const char *path, Model *m, char *err, int errlen) {
    CkptSection params = {"params", m->params, sizeof(real) * (size_t)m->n_params};
    return checkpoint_read(path, &params, 1, err, errlen);
}
