// Seeds per item, the epoch sampler, and Rng states as cursors.
#include <stdlib.h>
#include <string.h>

#include "bytes.h"
#include "tasks/sampler.h"

void task_item_rng(Rng *r, uint64_t seed, int stream, int split, long n) {
    rng_seed(r, rng_mix64(rng_key(seed, (uint64_t)stream, (uint64_t)split, 0) ^ rng_mix64((uint64_t)n)));
}

void rng_save(const Rng *r, void *buf) {
    for (int i = 0; i < 4; i++) put_u64((uint8_t *)buf + 8 * i, r->s[i]);
}
void rng_load(Rng *r, const void *buf) {
    for (int i = 0; i < 4; i++) r->s[i] = get_u64((const uint8_t *)buf + 8 * i);
}

static void sampler_shuffle(EpochSampler *s) {
    s->epoch_start = s->rng;
    for (long i = 0; i < s->n; i++) s->perm[i] = i;
    for (long i = s->n - 1; i > 0; i--) {  // Fisher-Yates
        long j = (long)rng_below(&s->rng, (uint64_t)i + 1);
        long tmp = s->perm[i];
        s->perm[i] = s->perm[j];
        s->perm[j] = tmp;
    }
}

int sampler_init(EpochSampler *s, long n, uint64_t seed) {
    memset(s, 0, sizeof *s);
    s->n = n;
    s->perm = malloc(sizeof(long) * (size_t)(n > 0 ? n : 1));
    if (!s->perm) return -1;
    rng_seed(&s->rng, seed);
    sampler_shuffle(s);
    return 0;
}

void sampler_free(EpochSampler *s) {
    free(s->perm);
    s->perm = NULL;
}

long sampler_next(EpochSampler *s) {
    if (s->index >= s->n) {
        s->epoch++;
        s->index = 0;
        sampler_shuffle(s);
    }
    return s->perm[s->index++];
}

double sampler_epoch(const EpochSampler *s) { return (double)s->epoch + (double)s->index / (double)s->n; }

void sampler_save(const EpochSampler *s, void *buf) {
    uint8_t *p = buf;
    put_u64(p, (uint64_t)s->n);
    put_u64(p + 8, s->epoch);
    put_u64(p + 16, (uint64_t)s->index);
    rng_save(&s->epoch_start, p + 24);
}

int sampler_load(EpochSampler *s, const void *buf) {
    const uint8_t *p = buf;
    if ((long)get_u64(p) != s->n) return -1;
    long index = (long)get_u64(p + 16);
    if (index < 0 || index > s->n) return -1;
    s->epoch = get_u64(p + 8);
    rng_load(&s->rng, p + 24);
    sampler_shuffle(s);
    s->index = index;
    return 0;
}
