// A run's outputs besides checkpoints: log.txt (everything printed), metrics.jsonl (one JSON
// object per line) and atomic writes of small files.
#ifndef RUNLOG_H
#define RUNLOG_H

#include <stdio.h>

#include "evaluate.h"

typedef struct {
    char dir[1024];
    FILE *text;     // log.txt, appended
    FILE *metrics;  // metrics.jsonl, appended
} RunLog;

int runlog_open(RunLog *log, const char *run_dir, char *err, int errlen);
void runlog_close(RunLog *log);
// printf to stdout and log.txt.
void runlog_printf(RunLog *log, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
// One metrics line: step, split, loss, lr, tokens_per_s, error and seq_error (%) where the split
// has metric positions, perplexity (and bits per token) for language models.
void runlog_metrics(RunLog *log, long step, const char *split, double loss, double lr, double tokens_per_s,
                    const EvalStats *s, int language_model);
// Drops metrics lines of steps after `step` (written after the checkpoint a run resumes from),
// so the file reads as the run that never stopped.
void runlog_truncate_metrics(RunLog *log, long step);
// Writes text to path atomically (temporary file, fsync, rename).
int runlog_write_atomic(const char *path, const char *text, char *err, int errlen);

#endif
