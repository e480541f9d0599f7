// Causal multi-head attention with the position encodings that act inside it (src/pe/). The loop is
// the same for every encoding; the kernels of the encodings a layer switched on are called at fixed
// points (pe/pe.h describes the hooks).
//
// Work is split over (sequence, head) pairs, one OpenMP thread each; within a head the query rows are
// cut into blocks of ROWS so that the dense products skip the upper triangle (row block [i0,i1) needs
// keys j < i1 only) and the T×T temporaries are blocks of ROWS×T. Every output of a head (its cache
// slices, its columns of out, dq, dk, dv) is written by the thread of that head; gradients of tables
// shared by heads go to per-head partials summed in a fixed order, so results do not depend on the
// thread count.
// The hot loops (softmax, sigmoid gates) vectorise only when the compiler may assume floating-point
// compares do not trap (GCC otherwise keeps pe_exp's clamps as branches); nothing here relies on traps.
// Multiplies and adds fuse where the target has FMA (-std=c11 keeps them apart): pe_exp's
// polynomial then takes half the instructions (tiny model's attention alone 3.36 -> 3.24 ms, 1 thread).
// The last bits differ from a build without FMA, as matmul.c's do.
#pragma GCC optimize("no-trapping-math", "fp-contract=fast")
#include "attention.h"

#include <math.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "matmul.h"
#include "pe/pe.h"
#include "rng.h"
#include "target.h"

#define MAX_KERNELS 8
// Query rows per block. The products of a block cover its keys up to the block's last row, so the
// upper triangle of the diagonal block is computed and thrown away, and a thread's block buffers hold
// rows × T values each (call_setup). 32 rows measured fastest at every shape of `make bench` up to
// T = 1024 (attention alone, 1 thread, forward + backward against 64 rows): no PE 7% faster at the
// tiny shape (T = 128), 6-8% at T = 512; CoPE 0-3% at T ≤ 512; even at T = 1024. 16 rows were slower
// than 32 at T = 512 and 2048, where products of 16 rows run below the loop's rate. From T = 2048 on
// 64 rows are faster: each block adds its dK and dV onto the keys' rows before it (i1 × dh each), and
// at 2048 keys those passes cost more than the wider blocks' thrown-away triangles (no PE 308 → 290
// ms, CoPE 530 → 508, heads of 64, 1 thread).
enum { BLOCK_ROWS = 32, LONG_BLOCK_ROWS = 64, LONG_T = 2048 };
static int block_rows;  // attention_set_block_rows; 0: by T

void attention_set_block_rows(int rows) { block_rows = rows > 0 ? rows : 0; }

static int active_kernels(const AttnPE *pe, const PEKernel **ks) {
    int n = 0;
    for (int i = 0; i < pe_n_kernels; i++)
        if (pe->parts >> i & 1) ks[n++] = pe_kernels[i];
    return n;
}

// The block height of calls with T keys: a cache is bound for it, and the calls on that cache use
// the height it was bound for (AttnCache.rows).
static int rows_for(int T) {
    int rows = block_rows ? block_rows : T >= LONG_T ? LONG_BLOCK_ROWS : BLOCK_ROWS;
    return rows < T ? rows : T;
}

// A training cache (attention_cache_size and _bind) holds what the backward reads, which may depend
// on the block height (the kernels' train_rows); an inference one (the _rows variants: rows r0..T-1,
// no backward) holds what the forward needs only (train_rows 0).
static long cache_size(const AttnPE *pe, int B, int R, int T, int C, int H, int train) {
    const PEKernel *ks[MAX_KERNELS];
    int nk = active_kernels(pe, ks), train_rows = train ? rows_for(T) : 0;
    long n = (long)B * H * R * T;  // probs
    for (int i = 0; i < nk; i++)
        if (ks[i]->cache_size) n += ks[i]->cache_size(pe, B, R, T, C, H, train_rows);
    return n;
}

static void cache_bind(AttnCache *cache, real *mem, const AttnPE *pe, int B, int R, int T, int C, int H,
                       int train) {
    const PEKernel *ks[MAX_KERNELS];
    int nk = active_kernels(pe, ks), train_rows = train ? rows_for(T) : 0;
    memset(cache, 0, sizeof *cache);
    cache->rows = rows_for(T);
    cache->probs = mem;
    mem += (long)B * H * R * T;
    for (int i = 0; i < nk; i++) {
        if (!ks[i]->cache_size) continue;
        ks[i]->cache_bind(cache, mem, pe, B, R, T, C, H, train_rows);
        mem += ks[i]->cache_size(pe, B, R, T, C, H, train_rows);
    }
}

long attention_cache_size_rows(const AttnPE *pe, int B, int R, int T, int C, int H) {
    return cache_size(pe, B, R, T, C, H, 0);
}

void attention_cache_bind_rows(AttnCache *cache, real *mem, const AttnPE *pe, int B, int R, int T, int C, int H) {
    cache_bind(cache, mem, pe, B, R, T, C, H, 0);
}

long attention_cache_size(const AttnPE *pe, int B, int T, int C, int H) {
    return cache_size(pe, B, T, T, C, H, 1);
}

void attention_cache_bind(AttnCache *cache, real *mem, const AttnPE *pe, int B, int T, int C, int H) {
    cache_bind(cache, mem, pe, B, T, T, C, H, 1);
}

int attention_check_length(const AttnPE *pe, int T, char *err, int errlen) {
    const PEKernel *ks[MAX_KERNELS];
    int nk = active_kernels(pe, ks);
    for (int i = 0; i < nk; i++)
        if (ks[i]->check_length && ks[i]->check_length(pe, T, err, errlen) != 0) return -1;
    return 0;
}

// ---------------------------------------------------------------------------------------------
// Workspace: per-thread blocks and per-head partial gradients, in one buffer grown on demand and
// kept between calls (the first touch of fresh pages is costly; steady state allocates nothing).
// One per calling thread, so attention calls of the model replicas that micro.h runs at once do not
// share it (the threads of one call reach it through Call.threads).

static _Thread_local real *ws_mem;
static _Thread_local long ws_size;

static real *workspace(long n) {
    if (n > ws_size) {
        free(ws_mem);
        size_t bytes = ((size_t)n * sizeof(real) + 63) / 64 * 64;
        ws_mem = aligned_alloc(64, bytes);
        if (!ws_mem) {
            fprintf(stderr, "attention.c: out of memory for a %.1f MB workspace\n", bytes / 1e6);
            exit(1);
        }
        ws_size = n;
    }
    return ws_mem;
}

static long round16(long n) { return (n + 15) / 16 * 16; }  // 64-byte multiples: no false sharing

// HEAD_ROWS_BYTES: see head_rows.
enum { TRANSPOSE_MIN_ROWS = 32, HEAD_ROWS_BYTES = 32768 };
static int copy_rows_mode = -1;  // attention_set_copy_rows

void attention_set_copy_rows(int on) { copy_rows_mode = on < 0 ? -1 : on != 0; }

// One call (forward or backward) of one layer.
typedef struct {
    const AttnPE *pe;
    AttnCache *cache;
    const PEKernel *ks[MAX_KERNELS];
    int nk;
    int B, T, C, H, dh, rows;
    int r0;                         // the first query row: rows r0..T-1 against keys 0..T-1
    real s;
    const real *q, *k, *q_in, *k_in, *v;  // q, k: as attention uses them (rotated under RoPE)
    const uint8_t *key_pad;
    real p_drop;
    uint64_t drop_key;
    int transform;                  // a kernel transforms q and k (RoPE)
    int transpose_keys;             // the forward's q·kᵀ reads the keys transposed (see call_setup)
    int copy_rows;                  // products read the head's rows of operands copied (head_rows)
    int ldt;                        // row stride of the transposed keys and values
    long logits_off;                // within a thread's region: the block's logits (forward)
    long transposed_off;            // within a thread's region: keys or values transposed (dh,ldt)
    long rows_off;                  // within a thread's region: the head's rows of operands (T,dh) each
    long core_work, thread_work;    // reals per thread: the core's blocks, and everything
    long kernel_work[MAX_KERNELS];  // offset of each kernel's work within a thread's region
    int team;                       // threads the heads' loop may run on
    real *threads;                  // thread t's region at threads + t·thread_work
    real *partials[MAX_KERNELS];    // kernel k's partial of head bh at partials[k] + bh·partial_size
    long partial_size[MAX_KERNELS];
} Call;

static void call_setup(Call *c, AttnCache *cache, const real *q, const real *k, const real *v, const uint8_t *key_pad,
                       const AttnPE *pe, real p_drop, uint64_t drop_key, int B, int T, int r0, int C, int H,
                       int backward) {
    memset(c, 0, sizeof *c);
    c->pe = pe;
    c->cache = cache;
    c->nk = active_kernels(pe, c->ks);
    c->B = B, c->T = T, c->r0 = r0, c->C = C, c->H = H, c->dh = C / H;
    c->rows = cache->rows;
    c->s = (real)(1.0 / sqrt((double)c->dh));
    c->q = c->q_in = q;
    c->k = c->k_in = k;
    c->v = v;
    c->key_pad = key_pad;
    c->p_drop = p_drop;
    c->drop_key = drop_key;
    for (int i = 0; i < c->nk; i++) {
        if (c->ks[i]->prepare) c->ks[i]->prepare(pe, T, c->dh, backward);
        if (c->ks[i]->qk_forward) c->transform = 1;
    }
    // The products of a block against every key, q·kᵀ (forward) and g·vᵀ (backward), read the head's
    // keys or values transposed, (dh,T), copied once per head: in place, each product of our own loop
    // copied them again (or OpenBLAS packed them). Forwards of fewer than TRANSPOSE_MIN_ROWS query
    // rows (a decoding step) read the keys in place, the copy costing as much as their products.
    c->transpose_keys = !backward && T - r0 >= TRANSPOSE_MIN_ROWS;
    c->copy_rows = copy_rows_mode >= 0 ? copy_rows_mode
                                       : C > c->dh && T - r0 >= TRANSPOSE_MIN_ROWS &&
                                             (long)T * c->dh * (long)sizeof(real) >= HEAD_ROWS_BYTES;
    c->ldt = matmul_copy_stride(T);
    // core blocks: S or dα (rows,T) | dS (rows,T) | α' after dropout (rows,T) | at logits_off, the
    // forward's rows of logits, padded to 16 keys (rows,round16(T)), then each row's max and 1/sum
    // (rows each), or the backward's dq, dk, dv (T,dh) each | keys (forward) or values (backward)
    // transposed (dh,ldt) | at rows_off, the head's values (forward), or its keys, queries and output
    // gradients (backward), (T,dh) each (see head_rows)
    c->logits_off = round16(3L * c->rows * T);
    long logits = c->rows * (round16(T) + 2), grads = backward ? 3L * T * c->dh : 0;
    long head = c->copy_rows ? (backward ? 3L : 1L) * T * c->dh : 0;
    c->transposed_off = round16(c->logits_off + (logits > grads ? logits : grads));
    c->rows_off = round16(c->transposed_off + (long)c->dh * c->ldt);
    c->core_work = c->rows_off + head;
    long off = round16(c->core_work);
    for (int i = 0; i < c->nk; i++) {
        c->kernel_work[i] = off;
        if (c->ks[i]->work_size) off += round16(c->ks[i]->work_size(pe, T, c->dh, c->rows));
    }
    c->thread_work = off;
    // the threads of the heads' loop: one where it would nest inside an active region (a replica's
    // passes, micro.h), as OpenMP then runs it on the calling thread alone
    c->team = omp_get_active_level() < omp_get_max_active_levels() ? omp_get_max_threads() : 1;
    long total = (long)c->team * off;
    if (backward) {
        for (int i = 0; i < c->nk; i++) {
            c->partial_size[i] = c->ks[i]->partial_size ? c->ks[i]->partial_size(pe, c->dh) : 0;
            total += (long)B * H * c->partial_size[i];
        }
    }
    c->threads = workspace(total);
    real *p = c->threads + (long)c->team * off;
    for (int i = 0; i < c->nk; i++) {
        c->partials[i] = p;
        p += (long)B * H * c->partial_size[i];
    }
}

// The key padding of head bh's sequence, or NULL when none of its keys is padding: the loops without
// a mask vectorise (CoPE's position scans do not with one), and a batch of whole sequences has none.
static const uint8_t *sequence_pad(const Call *c, long bh) {
    if (!c->key_pad) return NULL;
    const uint8_t *pad = c->key_pad + (bh / c->H) * c->T;
    for (int t = 0; t < c->T; t++)
        if (pad[t]) return pad;
    return NULL;
}

// The kernels' view of head bh (see PEHead); gradient targets are filled in by the backward.
static void head_views(const Call *c, long bh, real *thread, PEHead *hd) {
    long off = (bh / c->H) * c->T * c->C + (bh % c->H) * c->dh;
    PEHead base = {
        .pe = c->pe,
        .cache = c->cache,
        .T = c->T,
        .C = c->C,
        .dh = c->dh,
        .bh = bh,
        .h = (int)(bh % c->H),
        .H = c->H,
        .s = c->s,
        .q = c->q + off,
        .k = c->k + off,
        .q_in = c->q_in + off,
        .k_in = c->k_in + off,
        .gate_keys = c->pe->gate_keys ? c->pe->gate_keys + off : NULL,
        .pad = sequence_pad(c, bh),
        .r0 = c->r0,
        .transpose_keys = c->transpose_keys,
        .rows = c->rows,
    };
    for (int i = 0; i < c->nk; i++) {
        hd[i] = base;
        hd[i].opts = pe_opts(c->pe, c->ks[i]);
        hd[i].work = thread + c->kernel_work[i];
        hd[i].partial = c->partials[i] ? c->partials[i] + bh * c->partial_size[i] : NULL;
    }
}

// Dropout on the probabilities: entry (i, j) of head bh is element ((bh·T + i)·T + j) of stream
// drop_key, kept iff dropout_keep(p, key, index) (layers.h), tested as rng_counter_at_least (rng.h):
// the same bits, vectorised; test_attention checks the masks against dropout_keep itself.
// m[j] = keep ? 1/(1-p) : 0 for j < n; the backward recomputes the same mask.
static void keep_row(real *m, const Call *c, long bh, int i, int n) {
    uint64_t thr = rng_counter_threshold(c->p_drop), key = c->drop_key;
    uint64_t base = (uint64_t)((bh * c->T + i) * c->T);
    real scale = 1 / (1 - c->p_drop);
#pragma omp simd
    for (int j = 0; j < n; j++) m[j] = rng_counter_at_least(key, base + (uint64_t)j, thr) ? scale : 0;
}

// The row loops run on vectors of the target's registers (GCC's generic vectors, target.h) over
// rows padded to 16 keys (round16). Left to the auto-vectoriser, a row's running max was a scalar loop
// (a max per element), and the logits row was filled by stores narrower than the loads that read it
// back, each load then waiting for those stores to retire. Rows of logits and softmax, T = 128, in
// ns a row, old → new: 49.7 → 36.6 (AVX-512), 65.5 → 51.8 (AVX2), 169 → 127 (SSE2); the tiny model's
// attention forward alone 1.63 → 1.42 ms (AVX-512, 1 thread). Sums go to partial j % VLANES of element
// j, added pairwise (vlanes_total): a fixed order, vectorised without -ffast-math (`omp simd
// reduction` had left the backward's dot product a scalar loop). Vectors go in and out of memory
// through lanes_u (target.h), and no function takes or returns one: its ABI would depend on the
// target's vector width.
enum { VLANES = TARGET_VEC_BYTES / sizeof(real) };  // at most 16: rows padded to 16 keys hold whole vectors
typedef real lanes __attribute__((vector_size(TARGET_VEC_BYTES)));
typedef real lanes_u __attribute__((vector_size(TARGET_VEC_BYTES))) TARGET_UNALIGNED(real);  // at any address
typedef __typeof__((lanes){0} < (lanes){0}) lanes_mask;  // a compare's result: all bits set where true
#define LANES_SELECT(m, a, b) ((lanes)(((lanes_mask)(a) & (m)) | ((lanes_mask)(b) & ~(m))))  // a where m

// The lanes of *v summed pairwise, and their max the same way.
static real vlanes_total(const lanes *v) {
    real acc[VLANES];
    memcpy(acc, v, sizeof acc);
#pragma GCC unroll 4
    for (int w = VLANES / 2; w > 0; w /= 2)
#pragma GCC unroll 8
        for (int l = 0; l < w; l++) acc[l] += acc[l + w];
    return acc[0];
}

static real vlanes_max(const lanes *v) {
    real acc[VLANES];
    memcpy(acc, v, sizeof acc);
#pragma GCC unroll 4
    for (int w = VLANES / 2; w > 0; w /= 2)
#pragma GCC unroll 8
        for (int l = 0; l < w; l++) acc[l] = acc[l + w] > acc[l] ? acc[l + w] : acc[l];
    return acc[0];
}

// x[0..round16(i + 1)) = s·S[j] for keys j <= i, -inf past them: the row's logits before the
// encodings add theirs. S may hold anything past i.
static void logits_row(real *restrict x, const real *restrict S, real s, int i) {
    lanes_mask key;
    for (int l = 0; l < VLANES; l++) key[l] = l;
    lanes ninf = (lanes){0} - INFINITY, y;
    for (int j = 0, np = (int)round16(i + 1); j < np; j += VLANES) {
        y = *(const lanes_u *)(S + j);
        y = LANES_SELECT(key + j <= i, s * y, ninf);
        *(lanes_u *)(x + j) = y;
    }
}

// The softmax of a block's rows, a[0..n) = softmax(x[0..n)) for each, in three passes over the
// rows: their maxima, then the exponentials and their sums, then the scaling. Each row's steps wait
// on each other (a sum of lanes before the next pass can start), another row's do not, so that the
// core overlaps rows (a row at a time, the tiny model's rows took 38 ns each, in passes 29).
// Masked entries hold -inf and come out exactly 0. x holds round16(n) entries, those past n -inf
// (logits_row), so the max and exp loops never run into a scalar tail (which, with rows of tens of
// keys, cost as much as the rest), and the probabilities row, a stream through the B·H·T² cache, is
// written once.
static real softmax_max(const real *x, int n) {
    lanes top, y;
    top = *(const lanes_u *)x;
    for (int j = VLANES, np = (int)round16(n); j < np; j += VLANES) {
        y = *(const lanes_u *)(x + j);
        top = LANES_SELECT(y > top, y, top);
    }
    return vlanes_max(&top);
}

// x = exp(x - mx) in place; returns 1 / their sum
static real softmax_exp(real *x, int n, real mx) {
    lanes y, sum = {0};
    for (int j = 0, np = (int)round16(n); j < np; j += VLANES) {
#pragma omp simd
        for (int l = 0; l < VLANES; l++) x[j + l] = pe_exp(x[j + l] - mx);
        y = *(const lanes_u *)(x + j);
        sum += y;
    }
    return 1 / vlanes_total(&sum);
}

static void softmax_scale(real *restrict a, const real *restrict x, int n, real inv) {
    lanes y;
    int j = 0;
    for (; j + VLANES <= n; j += VLANES) {
        y = *(const lanes_u *)(x + j);
        y *= inv;
        *(lanes_u *)(a + j) = y;
    }
    for (; j < n; j++) a[j] = x[j] * inv;
}

// The head's rows of an operand, x (T,dh) of row stride ld, copied into dst (T,dh): its products
// against blocks of rows read them there (as the head's dk and dv are summed in rows of their own).
// Read in place, rows ld apart (1-1.5 KB in the bench's models) use a quarter of the sets of L1,
// and every block of rows streamed them from L2 again: α·V at T = 2048, heads of 64, ran at 76
// GFLOP/s against 195 from the copy (1 thread, alone); attention at T = 512 / 1024 / 2048 1.08 /
// 1.20 / 1.32× faster (no PE, 1 thread). Where the head's rows fit in L1 (under HEAD_ROWS_BYTES:
// the tiny model's 128 × 16) the copies cost more than they save (5% slower) and are not made;
// nor where they are contiguous already (one head).
static real *head_rows(real *dst, const real *x, int T, int ld, int dh) {
    for (int t = 0; t < T; t++) memcpy(dst + (long)t * dh, x + (long)t * ld, sizeof(real) * dh);
    return dst;
}

// dst (T,dh) of row stride ld += src (T,dh): the gradients summed in the head's rows, added
static void add_rows(real *dst, int ld, const real *src, int T, int dh) {
    for (int t = 0; t < T; t++) {
        real *d = dst + (long)t * ld;
        const real *r = src + (long)t * dh;
#pragma omp simd
        for (int j = 0; j < dh; j++) d[j] += r[j];
    }
}

static void head_forward(const Call *c, real *out, long bh, real *thread) {
    int T = c->T, C = c->C, dh = c->dh;
    long off = (bh / c->H) * T * C + (bh % c->H) * dh;
    const real *q = c->q + off, *k = c->k + off, *v = c->v + off;
    const uint8_t *pad = sequence_pad(c, bh);
    real *probs = c->cache->probs + bh * (T - c->r0) * T;  // row i at probs + (i - r0)·T
    real *S = thread, *drop = thread + 2L * c->rows * T, *logits = thread + c->logits_off;
    long ldl = round16(T);
    real *row_max = logits + c->rows * ldl, *row_inv = row_max + c->rows;
    real *kt = c->transpose_keys ? thread + c->transposed_off : NULL;
    int ldv = C;
    if (kt) matmul_transpose(kt, c->ldt, k, C, T, dh);
    if (c->copy_rows) {
        v = head_rows(thread + c->rows_off, v, T, C, dh);
        ldv = dh;
    }
    PEHead hd[MAX_KERNELS];
    head_views(c, bh, thread, hd);
    for (int x = 0; x < c->nk; x++)
        if (c->ks[x]->head_forward) c->ks[x]->head_forward(&hd[x]);
    for (int i0 = c->r0; i0 < T; i0 += c->rows) {
        int i1 = i0 + c->rows < T ? i0 + c->rows : T, nr = i1 - i0;
        // S[rows][0:i1] = Q[rows]·K[0:i1]ᵀ  (raw q·k; the upper triangle is never read)
        if (kt)
            matmul(0, 0, nr, i1, dh, 1, q + (long)i0 * C, C, kt, c->ldt, 0, S, T);
        else
            matmul(0, 1, nr, i1, dh, 1, q + (long)i0 * C, C, k, C, 0, S, T);
        for (int x = 0; x < c->nk; x++) {
            hd[x].S = S;
            hd[x].i0 = i0, hd[x].i1 = i1;
            if (c->ks[x]->block_forward) c->ks[x]->block_forward(&hd[x]);
        }
        for (int i = i0; i < i1; i++) {
            real *row = logits + (i - i0) * ldl;
            logits_row(row, S + (long)(i - i0) * T, c->s, i);  // S has keys < i1: those past i are not read
            for (int x = 0; x < c->nk; x++)
                if (c->ks[x]->row_logits) c->ks[x]->row_logits(&hd[x], i, row);
            if (pad)  // M_ij: key j is not padding; the diagonal is always on
                for (int j = 0; j < i; j++)
                    if (pad[j]) row[j] = -INFINITY;
            row_max[i - i0] = softmax_max(row, i + 1);
        }
        for (int i = i0; i < i1; i++)
            row_inv[i - i0] = softmax_exp(logits + (i - i0) * ldl, i + 1, row_max[i - i0]);
        for (int i = i0; i < i1; i++) {
            real *a = probs + (long)(i - c->r0) * T;
            softmax_scale(a, logits + (i - i0) * ldl, i + 1, row_inv[i - i0]);
            memset(a + i + 1, 0, sizeof(real) * (i1 - i - 1));  // read by the product below; j >= i1 is not
            if (c->p_drop > 0) {
                real *d = drop + (long)(i - i0) * T;
                keep_row(d, c, bh, i, i + 1);
#pragma omp simd
                for (int j = 0; j <= i; j++) d[j] *= a[j];
                memset(d + i + 1, 0, sizeof(real) * (i1 - i - 1));
            }
        }
        // out[rows] = α'[rows][0:i1]·V[0:i1]
        matmul(0, 0, nr, dh, i1, 1, c->p_drop > 0 ? drop : probs + (long)(i0 - c->r0) * T, T, v, ldv, 0,
               out + off + (long)i0 * C, C);
    }
}

static void forward_rows(real *out, AttnCache *cache, const real *q, const real *k, const real *v,
                         const uint8_t *key_pad, const AttnPE *pe, real p_drop, uint64_t drop_key, int B, int T, int r0,
                         int C, int H) {
    Call c;
    call_setup(&c, cache, q, k, v, key_pad, pe, p_drop, drop_key, B, T, r0, C, H, 0);
    for (int x = 0; x < c.nk; x++)
        if (c.ks[x]->qk_forward) c.ks[x]->qk_forward(&c.q, &c.k, cache, q, k, pe, B, T, r0, C, H);
#pragma omp parallel num_threads(c.team)
    {
        real *thread = c.threads + (long)omp_get_thread_num() * c.thread_work;
#pragma omp for schedule(runtime)  // static or dynamic by contention (system.h)
        for (long bh = 0; bh < (long)B * H; bh++) head_forward(&c, out, bh, thread);
    }
}

void attention_forward(real *out, AttnCache *cache, const real *q, const real *k, const real *v,
                       const uint8_t *key_pad, const AttnPE *pe, real p_drop, uint64_t drop_key, int B, int T, int C,
                       int H) {
    forward_rows(out, cache, q, k, v, key_pad, pe, p_drop, drop_key, B, T, 0, C, H);
}

void attention_forward_rows(real *out, AttnCache *cache, const real *q, const real *k, const real *v,
                            const uint8_t *key_pad, const AttnPE *pe, int T, int r0, int C, int H) {
    forward_rows(out, cache, q, k, v, key_pad, pe, 0, 0, 1, T, r0, C, H);
}

// Σ a[j]·b[j] over j < n, element j summed into partial j % VLANES.
static real dot_lanes(const real *a, const real *b, int n) {
    lanes sum = {0}, x, y;
    int j = 0;
    for (; j + VLANES <= n; j += VLANES) {
        x = *(const lanes_u *)(a + j);
        y = *(const lanes_u *)(b + j);
        sum += x * y;
    }
    for (int l = 0; j + l < n; l++) sum[l] += a[j + l] * b[j + l];
    return vlanes_total(&sum);
}

static void head_backward(const Call *c, real *dq, real *dk, real *dv, const real *dout, long bh, real *thread) {
    int T = c->T, C = c->C, dh = c->dh;
    long off = (bh / c->H) * T * C + (bh % c->H) * dh;
    const real *q = c->q + off, *k = c->k + off, *v = c->v + off, *g = dout + off;
    const real *probs = c->cache->probs + bh * T * T;
    real *D = thread, *dS = thread + (long)c->rows * T, *drop = thread + 2L * c->rows * T;
    // the gradients w.r.t. the q, k attention used, and v's: in place, or summed from zero in the
    // head's rows of scratch where a kernel transformed q and k (rotated back at the end) or the
    // head's rows are copied, and added at the end. (Summed from the given rows instead, they cost a
    // read of those more, cold: attention's backward at T = 512 1.07× slower. The model's start at
    // zero, where both give the same bits.)
    real *dqt = dq + off, *dkt = dk + off, *dvt = dv + off;
    int ldd = C, ldv = C;
    if (c->transform || c->copy_rows) {
        dqt = thread + c->logits_off;
        dkt = dqt + (long)T * dh;
        ldd = dh;
        memset(dqt, 0, sizeof(real) * 2 * T * dh);
    }
    const real *kr = k, *qr = q, *gr = g;
    int ldr = C;
    if (c->copy_rows) {
        dvt = dkt + (long)T * dh;
        memset(dvt, 0, sizeof(real) * T * dh);
        ldv = dh;
        kr = head_rows(thread + c->rows_off, k, T, C, dh);
        qr = head_rows(thread + c->rows_off + (long)T * dh, q, T, C, dh);
        gr = head_rows(thread + c->rows_off + 2L * T * dh, g, T, C, dh);
        ldr = dh;
    }
    real *vt = thread + c->transposed_off;
    matmul_transpose(vt, c->ldt, v, C, T, dh);
    PEHead hd[MAX_KERNELS];
    head_views(c, bh, thread, hd);
    for (int x = 0; x < c->nk; x++) {
        hd[x].dq = dqt, hd[x].dk = dkt, hd[x].ldd = ldd;
        hd[x].dq_in = dq + off, hd[x].dk_in = dk + off;
        hd[x].dgate_keys = c->pe->dgate_keys ? c->pe->dgate_keys + off : NULL;
        if (hd[x].partial) memset(hd[x].partial, 0, sizeof(real) * c->partial_size[x]);
        if (c->ks[x]->head_backward) c->ks[x]->head_backward(&hd[x]);
    }
    for (int i0 = 0; i0 < T; i0 += c->rows) {
        int i1 = i0 + c->rows < T ? i0 + c->rows : T, nr = i1 - i0;
        // forward: out_i = Σ_j α'_ij v_j, so dα'_ij = G_i·v_j
        matmul(0, 0, nr, i1, dh, 1, g + (long)i0 * C, C, vt, c->ldt, 0, D, T);
        for (int x = 0; x < c->nk; x++) {
            hd[x].i0 = i0, hd[x].i1 = i1;
            if (c->ks[x]->block_backward) c->ks[x]->block_backward(&hd[x]);
        }
        for (int i = i0; i < i1; i++) {
            const real *a = probs + (long)i * T;
            real *d = D + (long)(i - i0) * T, *ds = dS + (long)(i - i0) * T;
            if (i + 2 < T)  // the rows of the (B,H,T,T) cache are not one stream: fetch ahead
                for (int j = 0; j <= i + 2; j += 64 / (int)sizeof(real)) __builtin_prefetch(a + 2L * T + j);
            if (c->p_drop > 0) {  // α' = α·keep/(1-p): dα = dα'·keep/(1-p)
                real *ad = drop + (long)(i - i0) * T;
                keep_row(ad, c, bh, i, i + 1);
#pragma omp simd
                for (int j = 0; j <= i; j++) {
                    d[j] *= ad[j];
                    ad[j] *= a[j];
                }
                memset(ad + i + 1, 0, sizeof(real) * (i1 - i - 1));
            }
            // softmax: dA_ij = α_ij (dα_ij - Σ_t α_it dα_it); direct path of A = s·S + ...: dS = s·dA.
            // The loops run on to a multiple of 16 keys where the block allows (no scalar tail): the
            // forward left α = 0 on the keys i < j < i1, which therefore add 0 and get dA = dS = 0.
            int np = (int)round16(i + 1) < i1 ? (int)round16(i + 1) : i1;
            real dot = dot_lanes(a, d, np);
#pragma omp simd
            for (int j = 0; j < np; j++) {
                d[j] = a[j] * (d[j] - dot);
                ds[j] = c->s * d[j];
            }
            memset(ds + np, 0, sizeof(real) * (i1 - np));
            for (int x = 0; x < c->nk; x++)
                if (c->ks[x]->row_backward) c->ks[x]->row_backward(&hd[x], i, d, ds);
        }
        // dV[0:i1] += α'[rows]ᵀ·G[rows] ;  dQ[rows] += dS·K[0:i1] ;  dK[0:i1] += dSᵀ·Q[rows]
        matmul(1, 0, i1, dh, nr, 1, c->p_drop > 0 ? drop : probs + (long)i0 * T, T, gr + (long)i0 * ldr, ldr, 1, dvt,
               ldv);
        matmul(0, 0, nr, dh, i1, 1, dS, T, kr, ldr, 1, dqt + (long)i0 * ldd, ldd);
        matmul(1, 0, i1, dh, nr, 1, dS, T, qr + (long)i0 * ldr, ldr, 1, dkt, ldd);
        for (int x = 0; x < c->nk; x++)
            if (c->ks[x]->block_backward_end) c->ks[x]->block_backward_end(&hd[x]);
    }
    for (int x = 0; x < c->nk; x++)
        if (c->ks[x]->head_backward_end) c->ks[x]->head_backward_end(&hd[x]);
    for (int x = 0; x < c->nk; x++)
        if (c->ks[x]->qk_backward) c->ks[x]->qk_backward(&hd[x]);
    if (c->copy_rows && !c->transform) {
        add_rows(dq + off, C, dqt, T, dh);
        add_rows(dk + off, C, dkt, T, dh);
    }
    if (c->copy_rows) add_rows(dv + off, C, dvt, T, dh);
}

void attention_backward(real *dq, real *dk, real *dv, const real *dout, const AttnCache *cache, const real *q,
                        const real *k, const real *v, const uint8_t *key_pad, const AttnPE *pe, real p_drop,
                        uint64_t drop_key, int B, int T, int C, int H) {
    Call c;
    // the backward only reads the cache
    call_setup(&c, (AttnCache *)cache, q, k, v, key_pad, pe, p_drop, drop_key, B, T, 0, C, H, 1);
    for (int x = 0; x < c.nk; x++)
        if (c.ks[x]->qk_saved) c.ks[x]->qk_saved(&c.q, &c.k, cache);
#pragma omp parallel num_threads(c.team)
    {
        real *thread = c.threads + (long)omp_get_thread_num() * c.thread_work;
#pragma omp for schedule(runtime)  // static or dynamic by contention (system.h)
        for (long bh = 0; bh < (long)B * H; bh++) head_backward(&c, dq, dk, dv, dout, bh, thread);
    }
    for (int x = 0; x < c.nk; x++)
        if (c.ks[x]->reduce) c.ks[x]->reduce(pe, c.partials[x], (long)B * H, c.dh);
}
