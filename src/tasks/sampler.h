// What makes the tasks' data reproducible and their training streams resumable: a seed per item,
// epochs over a finite set, and Rng states saved in cursors.
#ifndef TASKS_SAMPLER_H
#define TASKS_SAMPLER_H

#include <stdint.h>

#include "rng.h"

// Stream identifiers mixed into seeds, so no two streams share random numbers.
enum { STREAM_TRAIN = 1, STREAM_EVAL = 2, STREAM_DATA = 3, STREAM_SHUFFLE = 4 };
// A generator seeded for item n of (seed, stream, split): independent of every other item.
void task_item_rng(Rng *r, uint64_t seed, int stream, int split, long n);

// Epochs over a finite set of n items: a permutation per epoch, drawn from an Rng. The cursor is
// (epoch, index, the Rng's state at the start of the epoch); loading it redraws that permutation.
typedef struct {
    long n;
    long *perm;
    uint64_t epoch;
    long index;
    Rng rng;          // after drawing the current permutation
    Rng epoch_start;  // before drawing it
} EpochSampler;

int sampler_init(EpochSampler *s, long n, uint64_t seed);  // -1: out of memory
void sampler_free(EpochSampler *s);
long sampler_next(EpochSampler *s);                         // the next item (advances the cursor)
double sampler_epoch(const EpochSampler *s);
#define SAMPLER_STATE_SIZE 56
void sampler_save(const EpochSampler *s, void *buf);
int sampler_load(EpochSampler *s, const void *buf);  // -1: a cursor for another set size

// Rng state as a cursor.
#define RNG_STATE_SIZE 32
void rng_save(const Rng *r, void *buf);
void rng_load(Rng *r, const void *buf);

#endif
