// A map from token pairs (left, right) to an int: the ranks of a BPE's merges (bpe.c), the pairs a
// training counts (bpe_train.c). Open addressing on 64-bit keys, growing at half full.
#ifndef PAIR_MAP_H
#define PAIR_MAP_H

#include <stdint.h>
#include <stdlib.h>

#include "rng.h"

typedef struct {
    uint64_t *keys;  // (cap) pair_key + 1; 0 = empty
    int *vals;       // (cap)
    size_t cap, n;
} PairMap;

static inline uint64_t pair_key(int left, int right) { return (uint64_t)(uint32_t)left << 32 | (uint32_t)right; }

static inline size_t pair_map_slot(const PairMap *m, uint64_t key) {
    size_t mask = m->cap - 1, i = (size_t)rng_mix64(key) & mask;
    while (m->keys[i] && m->keys[i] != key + 1) i = (i + 1) & mask;
    return i;
}

// The value of (left, right), or -1.
static inline int pair_map_get(const PairMap *m, int left, int right) {
    if (!m->cap) return -1;
    size_t i = pair_map_slot(m, pair_key(left, right));
    return m->keys[i] ? m->vals[i] : -1;
}

static inline int pair_map_grow(PairMap *m) {
    PairMap g = {calloc(m->cap ? 2 * m->cap : 1024, sizeof(uint64_t)), malloc(sizeof(int) * (m->cap ? 2 * m->cap : 1024)),
                 m->cap ? 2 * m->cap : 1024, m->n};
    if (!g.keys || !g.vals) {
        free(g.keys);
        free(g.vals);
        return -1;
    }
    for (size_t i = 0; i < m->cap; i++)
        if (m->keys[i]) {
            size_t j = pair_map_slot(&g, m->keys[i] - 1);
            g.keys[j] = m->keys[i];
            g.vals[j] = m->vals[i];
        }
    free(m->keys);
    free(m->vals);
    *m = g;
    return 0;
}

// Sets (left, right) to val, adding it if new. -1 when out of memory.
static inline int pair_map_put(PairMap *m, int left, int right, int val) {
    if (2 * (m->n + 1) > m->cap && pair_map_grow(m) != 0) return -1;
    uint64_t key = pair_key(left, right);
    size_t i = pair_map_slot(m, key);
    if (!m->keys[i]) {
        m->keys[i] = key + 1;
        m->n++;
    }
    m->vals[i] = val;
    return 0;
}

static inline void pair_map_free(PairMap *m) {
    free(m->keys);
    free(m->vals);
    *m = (PairMap){0};
}

#endif
