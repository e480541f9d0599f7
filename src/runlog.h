// A run's outputs besides checkpoints: log.txt (everything printed) and metrics.jsonl (one JSON
// object per line).
#ifndef RUNLOG_H
#define RUNLOG_H

#include <stdio.h>

#include "evaluate.h"

typedef struct {
    char dir[1024];
    FILE *text;     // log.txt, appended
    FILE *metrics;  // metrics.jsonl, appended
} RunLog;

// Opens the run's log files for appending and locks the run: a second ./train on the same run
// folder is refused while this one runs (the lock goes with the process).
int runlog_open(RunLog *log, const char *run_dir, char *err, int errlen);
void runlog_close(RunLog *log);
// printf to stdout and log.txt.
void runlog_printf(RunLog *log, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
// One metrics line: step, split, loss, lr, tokens_per_s, error and seq_error (%) where the split
// has metric positions, perplexity (and bits per token) for language models.
// Returns -1 with err when the line cannot be written (a full disk).
int runlog_metrics(RunLog *log, long step, const char *split, double loss, double lr, double tokens_per_s,
                   const EvalStats *s, int language_model, char *err, int errlen);
// Before resuming from the checkpoint of `step` towards `steps`: drops the metrics lines written
// after it, the evaluation lines at it (the resumed run evaluates that step again: a kill may have
// cut the evaluation short) and a training line at it that only a run ending there writes (off the
// log interval), and any line a kill cut short; so the file reads as the run that never stopped.
int runlog_truncate_metrics(RunLog *log, long step, int log_interval, long steps, char *err, int errlen);
// Writes `, "key": value` to a JSON object in `format`; a non-finite value is written as null with
// a "key_nonfinite" string beside it ("nan", "inf", "-inf"), so every line stays JSON.
void json_number(FILE *f, const char *key, double v, const char *format);

#endif
