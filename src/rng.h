// Random numbers with a state small enough to live in a checkpoint.
//
// Two kinds: a sequential generator (xoshiro256**) for things drawn in order (initialisation, data
// streams), and a counter-based hash for things drawn in parallel (dropout masks), whose value at
// (key, index) does not depend on the thread that asks, so masks are the same bits at any thread
// count and need no storage: the backward recomputes them.
#ifndef RNG_H
#define RNG_H

#include <math.h>
#include <stdint.h>

typedef struct {
    uint64_t s[4];
} Rng;

void rng_seed(Rng *r, uint64_t seed);
uint64_t rng_u64(Rng *r);
double rng_uniform(Rng *r);            // [0, 1), 53 bits
double rng_normal(Rng *r);             // N(0, 1), Box-Muller (no cached spare: the state is just s[])
uint64_t rng_below(Rng *r, uint64_t n); // uniform in [0, n), unbiased

// Mixes a 64-bit value (splitmix64 finaliser); a good hash of a counter.
static inline uint64_t rng_mix64(uint64_t x) {
    x += 0x9e3779b97f4a7c15ULL;
    x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ULL;
    x = (x ^ (x >> 27)) * 0x94d049bb133111ebULL;
    return x ^ (x >> 31);
}

// A stream key from a seed and a few identifiers (step, layer, site...).
static inline uint64_t rng_key(uint64_t seed, uint64_t a, uint64_t b, uint64_t c) {
    return rng_mix64(rng_mix64(rng_mix64(seed ^ 0x5851f42d4c957f2dULL) ^ a) ^ (b << 20) ^ c);
}

// Uniform in [0, 1) at position `index` of stream `key`.
static inline double rng_counter_uniform(uint64_t key, uint64_t index) {
    return (double)(rng_mix64(key ^ rng_mix64(index)) >> 11) * 0x1.0p-53;
}

// rng_counter_uniform(key, index) >= p as integers: the uniform is m·2^-53, m the hash's top 53 bits,
// and m·2^-53 >= p exactly when m >= ceil(p·2^53) (p·2^53 is exact in double). The same bits as the
// double test, but a loop of it vectorises on any target: converting 64-bit integers to double
// takes AVX-512, and without it the loop stays scalar.
static inline uint64_t rng_counter_threshold(double p) { return (uint64_t)ceil(p * 0x1.0p53); }
static inline int rng_counter_at_least(uint64_t key, uint64_t index, uint64_t threshold) {
    return rng_mix64(key ^ rng_mix64(index)) >> 11 >= threshold;
}

#endif
