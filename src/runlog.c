#include "runlog.h"

#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <unistd.h>

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

int runlog_metrics(RunLog *log, long step, const char *split, double loss, double lr, double tokens_per_s,
                   const EvalStats *s, int language_model, char *err, int errlen) {
    FILE *f = log->metrics;
    fprintf(f, "{\"step\": %ld, \"split\": \"%s\", \"loss\": %.9g, \"lr\": %.9g", step, split, loss, lr);
    if (tokens_per_s > 0) fprintf(f, ", \"tokens_per_s\": %.1f", tokens_per_s);
    if (s->n_metric > 0)
        fprintf(f, ", \"error\": %.6g, \"seq_error\": %.6g", 100.0 * s->n_metric_err / s->n_metric,
                s->n_seq ? 100.0 * s->n_seq_err / s->n_seq : 0.0);
    if (language_model) fprintf(f, ", \"ppl\": %.6g, \"bits_per_token\": %.6g", exp(loss), loss / 0.69314718055994531);
    fprintf(f, "}\n");
    if (fflush(f) != 0 || ferror(f)) {
        snprintf(err, errlen, "cannot write %s/metrics.jsonl: %s", log->dir, strerror(errno));
        return -1;
    }
    return 0;
}

int runlog_truncate_metrics(RunLog *log, long step, int log_interval, int eval_interval, char *err, int errlen) {
    char path[1100], tmp[1200];
    snprintf(path, sizeof path, "%s/metrics.jsonl", log->dir);
    snprintf(tmp, sizeof tmp, "%s.tmp", path);
    FILE *in = fopen(path, "r");
    if (!in) return 0;  // nothing logged yet
    FILE *out = fopen(tmp, "w");
    if (!out) {
        fclose(in);
        snprintf(err, errlen, "cannot write %s: %s", tmp, strerror(errno));
        return -1;
    }
    char *line = NULL;
    size_t cap = 0;
    while (getline(&line, &cap, in) > 0) {
        long s;
        char split[64] = "";
        if (sscanf(line, "{\"step\": %ld, \"split\": \"%63[^\"]", &s, split) >= 1) {
            int interval = strcmp(split, "train") == 0 ? log_interval : eval_interval;
            if (s > step || (s == step && (interval <= 0 || s % interval != 0))) continue;
        }
        fputs(line, out);
    }
    free(line);
    fclose(in);
    int ok = fflush(out) == 0 && !ferror(out) && fsync(fileno(out)) == 0;
    ok = (fclose(out) == 0) && ok;
    if (!ok || rename(tmp, path) != 0) {
        snprintf(err, errlen, "cannot rewrite %s: %s", path, strerror(errno));
        unlink(tmp);
        return -1;
    }
    fclose(log->metrics);
    log->metrics = fopen(path, "a");
    if (!log->metrics) {
        snprintf(err, errlen, "cannot open %s for appending: %s", path, strerror(errno));
        return -1;
    }
    return 0;
}

int runlog_write_atomic(const char *path, const char *text, char *err, int errlen) {
    char tmp[1200];
    snprintf(tmp, sizeof tmp, "%s.tmp", path);
    FILE *f = fopen(tmp, "w");
    if (!f) {
        snprintf(err, errlen, "cannot write %s: %s", tmp, strerror(errno));
        return -1;
    }
    size_t n = strlen(text);
    int ok = fwrite(text, 1, n, f) == n && fflush(f) == 0 && fsync(fileno(f)) == 0;
    ok = (fclose(f) == 0) && ok;
    if (!ok || rename(tmp, path) != 0) {
        snprintf(err, errlen, "cannot write %s: %s", path, strerror(errno));
        unlink(tmp);
        return -1;
    }
    return 0;
}
