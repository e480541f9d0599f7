#include "runlog.h"

#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <unistd.h>

#include "atomic_file.h"
#include "error.h"

int runlog_open(RunLog *log, const char *run_dir, char *err, int errlen) {
    char path[1100];
    snprintf(log->dir, sizeof log->dir, "%s", run_dir);
    snprintf(path, sizeof path, "%s/log.txt", run_dir);
    log->text = fopen(path, "a");
    snprintf(path, sizeof path, "%s/metrics.jsonl", run_dir);
    log->metrics = fopen(path, "a");
    if (!log->text || !log->metrics) {
        snprintf(err, errlen, "cannot open %s for appending: %s", path, strerror(errno));
        return -1;
    }
    if (flock(fileno(log->text), LOCK_EX | LOCK_NB) != 0) {
        snprintf(err, errlen, "%s is in use by another ./train (its log.txt is locked)", run_dir);
        return -1;
    }
    return 0;
}

void runlog_close(RunLog *log) {
    if (log->text) fclose(log->text);
    if (log->metrics) fclose(log->metrics);
    log->text = log->metrics = NULL;
}

void runlog_printf(RunLog *log, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vprintf(fmt, ap);
    va_end(ap);
    fflush(stdout);
    if (log->text) {
        va_start(ap, fmt);
        vfprintf(log->text, fmt, ap);
        va_end(ap);
        fflush(log->text);
    }
}

void json_number(FILE *f, const char *key, double v, const char *format) {
    fprintf(f, ", \"%s\": ", key);
    if (isfinite(v))
        fprintf(f, format, v);
    else
        fprintf(f, "null, \"%s_nonfinite\": \"%s\"", key, isnan(v) ? "nan" : v > 0 ? "inf" : "-inf");
}

int runlog_metrics(RunLog *log, long step, const char *split, double loss, double lr, double tokens_per_s,
                   const EvalStats *s, int language_model, char *err, int errlen) {
    FILE *f = log->metrics;
    fprintf(f, "{\"step\": %ld, \"split\": \"%s\"", step, split);
    json_number(f, "loss", loss, "%.9g");
    json_number(f, "lr", lr, "%.9g");
    if (tokens_per_s > 0) json_number(f, "tokens_per_s", tokens_per_s, "%.1f");
    if (s->n_metric > 0) {
        json_number(f, "error", 100.0 * s->n_metric_err / s->n_metric, "%.6g");
        json_number(f, "seq_error", s->n_seq ? 100.0 * s->n_seq_err / s->n_seq : 0.0, "%.6g");
    }
    if (language_model) {
        json_number(f, "ppl", loss_ppl(loss), "%.6g");
        json_number(f, "bits_per_token", loss_bits(loss), "%.6g");
    }
    fprintf(f, "}\n");
    if (fflush(f) != 0 || ferror(f)) {
        snprintf(err, errlen, "cannot write %s/metrics.jsonl: %s", log->dir, strerror(errno));
        return -1;
    }
    return 0;
}

int runlog_truncate_metrics(RunLog *log, long step, int log_interval, long steps, char *err, int errlen) {
    char path[1100];
    snprintf(path, sizeof path, "%s/metrics.jsonl", log->dir);
    FILE *in = fopen(path, "r");
    if (!in) return 0;  // nothing logged yet
    AtomicFile out;
    if (atomic_open(&out, path, err, errlen) != 0) {
        fclose(in);
        return -1;
    }
    char *line = NULL;
    size_t cap = 0;
    ssize_t len;
    while ((len = getline(&line, &cap, in)) > 0) {
        long s;
        char split[64] = "";
        // A line a kill cut short (no newline, no step) is dropped with the rest of its step.
        if (line[len - 1] != '\n' || sscanf(line, "{\"step\": %ld, \"split\": \"%63[^\"]", &s, split) != 2) continue;
        int train_line = strcmp(split, "train") == 0;
        if (s > step || (s == step && (!train_line || (s % log_interval != 0 && s != steps)))) continue;
        atomic_write(&out, line, (size_t)len);
    }
    free(line);
    fclose(in);
    if (atomic_commit(&out, err, errlen) != 0) return -1;
    fclose(log->metrics);
    log->metrics = fopen(path, "a");
    if (!log->metrics) return errf(err, errlen, "cannot open %s for appending: %s", path, strerror(errno));
    return 0;
}
