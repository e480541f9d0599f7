// CoPE, contextual position encoding (Golovneva et al. 2024), as the official code implements it
// (docs/cope.md §3, backward §5, the row algorithm §5.10). For one head, s = 1/sqrt(dh), P = npos:
//   σ_ij = sigmoid(s·q_i·kc_j)        kc = gate_keys (sep_keys) or k;  g = σ·M
//   p_ij = Σ_{t>=j} g_it              reverse cumsum over keys;  c = min(p, P-1)
//   Z = Q·E                           E is (dh,P), shared by the heads of a layer
//   b_ij = w·Z[i][u] + (1-w)·Z[i][f]  f = floor(c), u = ceil(c), w = c - f
//   logit term γ·b_ij                 γ = s (official default) or 1 (cope_nodiv, the paper's Appendix B)
// When another kernel transforms q and k (RoPE), Z uses the transformed q, and the gates use the
// transformed q and keys (separate gate keys are rotated like k), or the untransformed ones with
// pe.rope_gates "unrotated".
//
// Per block of rows: gates and their cumsum (vectorised: sigmoid by pe_exp, cumsum as an OpenMP simd
// scan), from the query down only until the positions reach the clamp; then Z only for the table
// columns the block reaches (u <= min(max p, P-1) + 1: with sparse gates most of a long table is
// never touched); then the interpolation per row inside attention's logit pass. Training keeps the
// gates for the backward (keep_gates; past T = 1024 floats the backward computes them again, keeps_gates),
// which recomputes the positions and Z from them per block
// (docs/cope.md §5.10); the cache keeps every σ (unmasked) and p (before the clamp) only for
// pictures (keep_positions), entries j > i unspecified.
//
// The hot loops (softmax, sigmoid gates) vectorise only when the compiler may assume floating-point
// compares do not trap (GCC otherwise keeps pe_exp's clamps as branches); nothing here relies on traps.
// Multiplies and adds fuse where the target has FMA (-std=c11 keeps them apart): pe_exp's
// polynomial then takes half the instructions (tiny model's CoPE attention alone 9.73 -> 9.44 ms, 1 thread).
// The last bits differ from a build without FMA, as matmul.c's do.
#pragma GCC optimize("no-trapping-math", "fp-contract=fast")
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "matmul.h"
#include "pe.h"
#include "target.h"

extern const PEKernel pe_cope;

// A layer's CoPE (AttnPE.opts), from the config by cope_setup.
typedef struct {
    int npos;             // integer positions 0..npos-1; positions clamp at npos-1
    int nodiv;            // 1: γ = 1 (the paper's Appendix B); 0: γ = s (official default)
    int transformed;      // another kernel transforms q and k (RoPE)
    int gates_unrotated;  // under that transform, the gates use the untransformed q·k
    int shared_table;     // the layers share the first CoPE layer's table
    int keep_gates;       // pe.keep_gates: 1 always, 0 never, -1 auto (keeps_gates)
    PETensor table;       // E (dh, npos), shared by the heads of the layer
    // Eᵀ (npos, dh), for the backward's dq += dZ·Eᵀ, transposed once per backward call by prepare:
    // a product with E transposed copies it for each row block (the tiny model's CoPE attention
    // spent 6% of its time in those copies). Its rows are those of E's columns, so the product sums
    // the same terms in the same order.
    real *table_t;
} Cope;

static const Cope *cope_of(const AttnPE *pe) { return pe_opts(pe, &pe_cope); }

static void cope_prepare(const AttnPE *pe, int T, int dh, int backward) {
    (void)T;
    if (!backward) return;  // the forward (and every decoding step) reads E as it is
    Cope *o = (Cope *)cope_of(pe);  // the layer's own tables are prepare's to write
    int P = o->npos;
    if (!o->table_t) o->table_t = malloc(sizeof(real) * (size_t)P * dh);  // P and dh are the layer's for good
    if (!o->table_t) {
        fprintf(stderr, "cope.c: out of memory for a %d x %d position table\n", P, dh);
        exit(1);
    }
    for (int d = 0; d < dh; d++)
        for (int m = 0; m < P; m++) o->table_t[(long)m * dh + d] = o->table.w[(long)d * P + m];
}

static void cope_release(void *opts) { free(((Cope *)opts)->table_t); }

static int cope_check_length(const AttnPE *pe, int T, char *err, int errlen) {
    (void)T;
    if (cope_of(pe)->npos < 1) {
        snprintf(err, errlen, "CoPE needs at least 1 position (npos %d)", cope_of(pe)->npos);
        return -1;
    }
    return 0;
}

// Whether a training cache keeps the gates for the backward (keep_gates below) or the backward
// recomputes them, from a gate-logit product of its own and their sigmoids. Kept, the older ones fill
// the probabilities' unused upper triangle, which attention's own writes leave partly untouched once
// a row of probabilities spans pages: untouched pages are never resident, and the gates would make
// them so. While a row fits in a page (T <= 1024 floats, 512 doubles) every page holds the start
// of a row, which attention writes, so keeping costs no resident memory and auto keeps. Past that it
// does: at T = 2048 no PE leaves a quarter of the probabilities' pages untouched, and kept gates
// made CoPE's peak 1.19× no PE's (1.01× recomputed) for a step 1-3% faster (flip-flop model, batch
// 4); auto recomputes there. T is the context the cache is bound for, which evaluation may make
// longer than training's.
enum { PAGE_BYTES = 4096 };
static int keeps_gates(const Cope *o, int T) {
    return o->keep_gates >= 0 ? o->keep_gates : (long)T * (long)sizeof(real) <= PAGE_BYTES;
}

// Per query row: its first unclamped key (B,H,R; sizeof(int) <= sizeof(real)); in a training cache
// (train_rows, the block height: a backward reads it), when it keeps gates, those of its train_rows
// newest keys (B,H,T,train_rows), the others going to the probabilities' unused columns
// (keep_gates); for pictures (keep_positions) also every gate (B,H,R,T) and position (B,H,R,T). The
// backward recomputes the positions and Z of each row block from the gates (a scan and a product
// Q·E, where B·H·T·npos Z would take more memory than the probabilities).
// A training cache reserves the near gates whether it keeps them or not: the model allocates its
// caches once, for its longest context, and binds them for shorter ones, so a cache's size must
// not fall as T grows (past T = 1024 it would have, by T·train_rows a head). Reserved and unused,
// they are never written, so never resident.

static long cope_cache_size(const AttnPE *pe, int B, int R, int T, int C, int H, int train_rows) {
    (void)C;
    long n = (long)B * H * R;
    return n + n * train_rows + (pe->keep_positions ? 2 * n * T : 0);
}

static void cope_cache_bind(AttnCache *cache, real *mem, const AttnPE *pe, int B, int R, int T, int C, int H,
                            int train_rows) {
    (void)C;
    long n = (long)B * H * R, near = n * train_rows;
    cache->unclamped = (int *)mem;
    cache->near_gates = near && keeps_gates(cope_of(pe), T) ? mem + n : NULL;
    cache->gates = pe->keep_positions ? mem + n + near : NULL;
    cache->pos = pe->keep_positions ? mem + n + near + n * T : NULL;
}

// The gates σ_ij of row i's keys j >= j0 (those not at the clamp), which the backward reads: newest
// first, r = i - j, the first `rows` (r < rows) in the row's near_gates, the others (rows <= r <= i)
// in row a = T-1-i of the head's probabilities, at column a + r. The forward of a block [i0, i1)
// writes row a's probabilities on columns below i1 <= a + rows only (those past the diagonal as 0),
// and the backward reads no others: columns a + rows .. T-1 are free, as many as row i's older gates.
// So the gates cost B·H·T·rows reals of cache instead of B·H·T²/2, and the backward reads them
// instead of recomputing them (a product for the gate logits and their sigmoids); its gates, and so
// its positions, are then the forward's bit for bit. CoPE's attention alone, 1 thread, forward /
// backward: flip-flop shape 29.5 / 66.3 -> 32.5 / 58.5 ms; tiny 2.84 / 5.57 -> 3.16 / 4.98 ms.
static real *gate_row(const PEHead *hd, int i, int far) {
    int a = hd->T - 1 - i;
    if (far) return hd->cache->probs + (hd->bh * hd->T + a) * hd->T + a;
    return hd->cache->near_gates + (hd->bh * hd->T + i) * hd->rows;
}

static void keep_gates(const PEHead *hd, int i, int j0, const real *sg) {
    real *restrict near = gate_row(hd, i, 0), *restrict far = gate_row(hd, i, 1);
    int n = i - j0 + 1, nn = n < hd->rows ? n : hd->rows;
    for (int r = 0; r < nn; r++) near[r] = sg[i - r];
    for (int r = hd->rows; r < n; r++) far[r] = sg[i - r];
}

static void load_gates(real *restrict sg, const PEHead *hd, int i, int j0) {
    const real *near = gate_row(hd, i, 0), *far = gate_row(hd, i, 1);
    int n = i - j0 + 1, nn = n < hd->rows ? n : hd->rows;
    for (int r = 0; r < nn; r++) sg[i - r] = near[r];
    for (int r = hd->rows; r < n; r++) sg[i - r] = far[r];
}

// The older gates of a row GATES_AHEAD rows on, fetched into the cache: one row's lie T reals before
// the last one's, a stride the hardware prefetcher missed (flip-flop shape backward 61.0 -> 58.2 ms).
enum { GATES_AHEAD = 4 };
static void fetch_gates(const PEHead *hd, int i, int j0) {
    const real *far = gate_row(hd, i, 1);
    for (int r = hd->rows; r < i - j0 + 1; r += 64 / (int)sizeof(real)) __builtin_prefetch(far + r);
}

// Which q and keys the gates see: attention's own (transformed under RoPE), or others (gate keys of
// their own, or the untransformed q and k), whose logits need a product of their own.
static int rotated_gates(const Cope *o) { return o->transformed && !o->gates_unrotated; }
static int separate_gates(const Cope *o, const AttnPE *pe) {
    return pe->own_keys || (o->transformed && !rotated_gates(o));
}
static int rotated_gate_keys(const Cope *o, const AttnPE *pe) { return pe->own_keys && rotated_gates(o); }

// The backward scatters into dZ[i][f] and dZ[i][f+1]; neighbouring keys mostly share f, so the adds
// would wait on each other through memory. Key j adds into copy j mod COPIES of the row instead, and
// the copies are summed over the columns the row touched.
enum { COPIES = 4 };

// The row loops read Z and the slopes by windows of two vectors of floats, up to 32 columns, where
// the build has vectors of 8 or 16 (window_pick); a window may start up to 31 columns before a row's
// end, so their blocks have Z_WINDOW reals more than their rows.
enum { Z_WINDOW = 32 };

// A thread's work for one head, carved from PEHead.work (sizeof(int) <= sizeof(real)).
typedef struct {
    real *pos;     // (rows, T) positions of the block
    real *dz;      // (rows, P) dZ of the block
    real *dp;      // (T) dp of a row
    real *pairs;   // (2T) (1-w)·db, w·db of a row's keys, interleaved: what each adds into dZ[f], dZ[f+1]
    int *f;        // (T) floor(c) of a row
    real *slope;   // (rows, P) Z[m+1] - Z[m] of the block (backward), 0 on Z's last column; Z_WINDOW after
    int *ncol;     // (rows) the columns each dZ row wrote
    int *clamped;  // (rows) keys j < clamped[r] are all at the clamp (c = P-1): no gate, no position kept
    real *copies;  // COPIES rows of P+1, kept zero between rows
    real *dsg;     // (rows, T) dS' of the gate logits, when the gates are separate
    real *keys, *dkeys;  // (T, dh) each: rotated gate keys and their gradient, when RoPE rotates them
    real *keys_t;  // (dh, matmul_copy_stride(T)) the gate keys transposed, for products of gate logits
    real *sg;      // (rows, T) the gates σ of the block (unmasked; entries j > i unspecified)
    real *z;       // (rows, P) Z = Q·E of the block, the columns its positions reach; Z_WINDOW reals after
} Work;

static long carve_work(Work *w, real *mem, const Cope *o, const AttnPE *pe, int T, int dh, int rows) {
    int P = o->npos;
    long n = 0;
#define TAKE(ptr, type, count)                     \
    do {                                           \
        if (mem) (ptr) = (type *)(mem + n);        \
        n += (count);                              \
    } while (0)
    TAKE(w->pos, real, (long)rows * T);
    TAKE(w->dz, real, (long)rows * P);
    TAKE(w->dp, real, T);
    TAKE(w->pairs, real, 2L * T);
    TAKE(w->f, int, T);
    TAKE(w->slope, real, (long)rows * P + Z_WINDOW);
    TAKE(w->ncol, int, rows);
    TAKE(w->clamped, int, rows);
    TAKE(w->copies, real, COPIES * (P + 1L));
    if (separate_gates(o, pe)) TAKE(w->dsg, real, (long)rows * T);
    if (rotated_gate_keys(o, pe)) {
        TAKE(w->keys, real, (long)T * dh);
        TAKE(w->dkeys, real, (long)T * dh);
    }
    TAKE(w->keys_t, real, (long)dh * matmul_copy_stride(T));
    TAKE(w->sg, real, (long)rows * T);
    TAKE(w->z, real, (long)rows * P + Z_WINDOW);
#undef TAKE
    return n;
}

// A head's Work is carved once, by the head hooks, and kept at the front of the thread's work, where
// the block and row hooks read it (carved again for every query row, it cost 2% of the tiny model's
// attention).
enum { WORK_HEADER = (sizeof(Work) + 63) / 64 * 64 / sizeof(real) };

static long cope_work_size(const AttnPE *pe, int T, int dh, int rows) {
    Work w;
    return WORK_HEADER + carve_work(&w, NULL, cope_of(pe), pe, T, dh, rows);
}

static Work carve_head(const PEHead *hd) {
    Work w = {0};
    carve_work(&w, hd->work + WORK_HEADER, hd->opts, hd->pe, hd->T, hd->dh, hd->rows);
    memcpy(hd->work, &w, sizeof w);
    return w;
}

// The head's Work where carve_head put it. Read in place: a copy on the stack, read back at once,
// waited on its own stores (store forwarding fails for a field of a wider store: the tiny model's
// CoPE logits rows ran 2× slower for it after a change of the struct's layout).
static const Work *work_of(const PEHead *hd) { return (const Work *)(const void *)hd->work; }

// A head's dE, transposed: (P, dh). Its product per block of rows, dZᵀ·Q, then has the head
// dimension's 16-64 columns, which the own loop of matmul.c sums straight onto it; as Qᵀ·dZ onto dE
// (dh, P) it took the transposed product, whose tiles are added onto C after (flip-flop shape, CoPE's
// attention backward 58.6 -> 56.8 ms, 1 thread).
static long cope_partial_size(const AttnPE *pe, int dh) { return (long)dh * cope_of(pe)->npos; }

// Where the gate logits come from (attention's own q·k, separate gate keys, or the unrotated q and k
// under RoPE), and for separate gates where their gradient dS' goes: gate logits = Qg·Kgᵀ,
// dQg += dS'·Kg, dKg += dS'ᵀ·Qg.
typedef struct {
    const real *q, *k;
    int ldq, ldk;
    real *dq, *dk;  // dk may be NULL (no gradient asked for the gate keys)
    int lddq, lddk;
} Gates;

static Gates gate_operands(const PEHead *hd, const Work *w) {
    const Cope *o = hd->opts;
    int unrot = o->transformed && !rotated_gates(o);
    Gates g;
    g.q = unrot ? hd->q_in : hd->q;
    g.ldq = hd->C;
    g.dq = unrot ? hd->dq_in : hd->dq;
    g.lddq = unrot ? hd->C : hd->ldd;
    if (!hd->pe->own_keys) {  // attention's keys, unrotated where the gates are
        g.k = unrot ? hd->k_in : hd->k;
        g.ldk = hd->C;
        g.dk = unrot ? hd->dk_in : hd->dk;
        g.lddk = unrot ? hd->C : hd->ldd;
    } else if (rotated_gate_keys(o, hd->pe)) {
        g.k = w->keys;
        g.ldk = hd->dh;
        g.dk = hd->dgate_keys ? w->dkeys : NULL;
        g.lddk = hd->dh;
    } else {
        g.k = hd->gate_keys;
        g.ldk = hd->C;
        g.dk = hd->dgate_keys;
        g.lddk = hd->C;
    }
    return g;
}

// p_ij = Σ_{t>=j} σ_it·M_it for j <= i: an inclusive scan from t = i down to 0, vectorised, carried on
// from carry (the sum of the gates above the piece). The backward recomputes the positions with this
// same function from its gates, into the same place of its work (same alignment, so the same vector
// grouping). noinline: one copy of the code, so forward and backward round alike.
__attribute__((noinline)) static void positions_piece(real *restrict p, const real *restrict g, const uint8_t *pad,
                                                     int i, int lo, int hi, real carry) {
    real acc = 0;
    if (pad) {
#pragma omp simd reduction(inscan, + : acc)
        for (int j = hi; j >= lo; j--) {
            acc += j < i && pad[j] ? 0 : g[j];
#pragma omp scan inclusive(acc)
            p[j] = carry + acc;
        }
    } else {
#pragma omp simd reduction(inscan, + : acc)
        for (int j = hi; j >= lo; j--) {
            acc += g[j];
#pragma omp scan inclusive(acc)
            p[j] = carry + acc;
        }
    }
}

// Keys far from the query are all at the clamp once the gates nearer it sum to P-1 or more: their
// logit term is γ·Z[P-1] and their gates get no gradient (docs/cope.md §5.10). So the gates
// σ = sigmoid(s·x) and positions of row i are computed from key i down in pieces of CLAMP_PIECE
// keys, stopping after the piece whose last position reaches P-1: every key below it is clamped too,
// since each later position is the carry plus non-negative gates (float rounding keeps that order).
// Returns that first unclamped key (0 when the row never clamps, or when all is asked for: pictures
// keep every gate and position). A row shorter than P-1 cannot clamp and is one piece, from carry 0.
// The backward passes the forward's answer as stop (-1: find it): the same pieces down to the same
// key, from the gates the forward kept (x NULL: sg holds them). x holds finite logits up to room - 1
// (the block's keys).
//
// The scan reads the gates in vectors of SCAN_LANES keys from its top key down, which is where the
// sigmoids' vectors must lie too: a vector read across two stores just made waits for both to leave
// for the cache (store forwarding fails), and the forward's scans, after sigmoids stored from key 0
// up, took 3.3× the backward's (tiny model's CoPE attention, 1 thread, in a profile). Pieces of
// CLAMP_PIECE keys end at a multiple of it below the row's top, so their vectors match (but for a
// last piece cut short at key 0, whose sigmoids are stored from key 0 up); a whole row
// longer than a vector has its sigmoids stored from (i + 1) mod SCAN_LANES up, and those of the keys
// below (which the scan's scalar end reads) copied from a vector of the first SCAN_LANES keys'
// sigmoids, computed first: x may be sg itself (the logits of a product of the gates' own, turned
// into gates in place). A row of at most one vector runs on to SCAN_LANES keys where room allows,
// so that no loop has a scalar tail.
enum { CLAMP_PIECE = 32, SCAN_LANES = TARGET_VEC_BYTES / sizeof(real) };

static void sigmoids(real *sg, const real *x, real s, int lo, int end) {
#pragma omp simd
    for (int j = lo; j < end; j++) sg[j] = pe_sigmoid(s * x[j]);
}

static int gates_and_positions(real *sg, real *p, const real *x, real s, const uint8_t *pad, int i, int room,
                               real top, int all, int stop) {
    int piece = all || i + 1 <= top ? i + 1 : CLAMP_PIECE;
    real carry = 0;
    for (int hi = i; hi >= 0; hi -= piece) {
        int lo = hi - piece + 1 > 0 ? hi - piece + 1 : 0;
        if (x && piece == i + 1 && i + 1 > SCAN_LANES) {
            int start = (i + 1) % SCAN_LANES;
            real first[SCAN_LANES];
            if (start) sigmoids(first, x, s, 0, SCAN_LANES);
            sigmoids(sg, x, s, start, i + 1);
            for (int j = 0; j < start; j++) sg[j] = first[j];
        } else if (x) {
            sigmoids(sg, x, s, lo, piece == i + 1 && SCAN_LANES <= room ? SCAN_LANES : hi + 1);
        }
        positions_piece(p, sg, pad, i, lo, hi, carry);
        carry = p[lo];
        if (stop >= 0 ? lo <= stop : carry >= top && !all) return lo;
    }
    return 0;
}

// Whether the blocks compute gate logits by a product of their own (separate gates in the forward,
// and the backward's where the forward kept no gates) against the gate keys transposed once per
// head: read in place (B transposed), those products ran at half the rate (T = 2048, 1 thread: 93
// against 148-185 GFLOP/s). A forward whose few rows read attention's keys in place (a decoding
// step: PEHead.transpose_keys) reads the gate keys in place too.
static int gate_products(const PEHead *hd, int backward) {
    if (backward) return !hd->cache->near_gates;
    return separate_gates(hd->opts, hd->pe) && hd->transpose_keys;
}

static void transpose_gate_keys(const PEHead *hd, const Work *w) {
    Gates g = gate_operands(hd, w);
    matmul_transpose(w->keys_t, matmul_copy_stride(hd->T), g.k, g.ldk, hd->T, hd->dh);
}

static void cope_head_forward(PEHead *hd) {
    Work w = carve_head(hd);
    if (rotated_gate_keys(hd->opts, hd->pe)) pe_rope_rotate(hd->pe, w.keys, hd->dh, hd->gate_keys, hd->C, hd->T, hd->dh);
    if (gate_products(hd, 0)) transpose_gate_keys(hd, &w);
}

// The block's first key that is not clamped in every row, from each row's first unclamped key: the
// backward's gate gradients start there.
static int block_unclamped(const int *first, int rows) {
    int from = first[0];
    for (int r = 1; r < rows; r++) from = first[r] < from ? first[r] : from;
    return from;
}

// n columns widened to 16, 32 or 64 when at most 64: the narrow widths the own loop of matmul.c takes
// (OpenBLAS ran the narrow odd widths at a fraction of its rate).
static int loop_width(int n) { return n <= 16 ? 16 : n <= 32 ? 32 : n <= 64 ? 64 : n; }

// The columns of Z and dZ a block's products take: the n it needs, widened as loop_width and past 64
// to a multiple of 16 (the own loop's panels), at most all P.
static int product_width(int n, int P) {
    n = (loop_width(n) + 15) / 16 * 16;
    return n < P ? n : P;
}

// The gates, positions and Z of the rows of block [i0, i1), into work (and into the cache for the
// backward and for pictures). The forward computes the gates from the block's raw q·k S, which
// attention has, or from a product of their own (separate gates). The backward reads those the
// forward kept and recomputes the positions and Z with the same functions on the same values, so
// they are the forward's bit for bit; or, where the forward kept none (keeps_gates), computes them
// again from a product of its own over the keys from the block's first unclamped one on (with a
// short table at a long context, most keys are clamped), whose elements a BLAS kernel may round
// otherwise than the forward's wider product: gates and positions then match to float rounding.
static int block_gates(PEHead *hd, const Work *w, const real *S, int backward) {
    const Cope *o = hd->opts;
    int T = hd->T, P = o->npos, i0 = hd->i0, i1 = hd->i1, nr = i1 - i0;
    int *unclamped = hd->cache->unclamped + pe_cache_row(hd, i0);
    int kept = backward && hd->cache->near_gates;
    if (backward ? !kept : separate_gates(o, hd->pe)) {  // gate logits into the gates rows, sigmoids in place below
        Gates g = gate_operands(hd, w);
        int from = backward ? block_unclamped(unclamped, nr) : 0;
        int transposed = gate_products(hd, backward);
        const real *keys = transposed ? w->keys_t + from : g.k + (long)from * g.ldk;
        matmul(0, !transposed, nr, i1 - from, hd->dh, 1, g.q + (long)i0 * g.ldq, g.ldq, keys,
               transposed ? matmul_copy_stride(T) : g.ldk, 0, w->sg + from, T);
        S = w->sg;
    }
    real maxp = 0, s = hd->s, top = (real)(P - 1);
    int pictures = hd->cache->gates != NULL;
    for (int i = i0; i < i1; i++) {
        int r = i - i0;
        real *sg = w->sg + (long)r * T, *p = w->pos + (long)r * T;
        if (kept && i + GATES_AHEAD < i1) fetch_gates(hd, i + GATES_AHEAD, unclamped[r + GATES_AHEAD]);
        if (kept) load_gates(sg, hd, i, unclamped[r]);
        w->clamped[r] = gates_and_positions(sg, p, kept ? NULL : S + (long)r * T, s, hd->pad, i, i1, top,
                                            pictures, backward ? unclamped[r] : -1);
        if (!backward) {
            unclamped[r] = w->clamped[r];
            if (hd->cache->near_gates) keep_gates(hd, i, w->clamped[r], sg);
        }
        if (pictures && !backward) {  // the forward's: gates the backward recomputes may differ in the last bit
            memcpy(hd->cache->gates + pe_cache_row(hd, i) * T, sg, sizeof(real) * (i + 1));
            memcpy(hd->cache->pos + pe_cache_row(hd, i) * T, p, sizeof(real) * (i + 1));
        }
        real pmax = w->clamped[r] > 0 ? top : p[0];
        if (pmax > maxp) maxp = pmax;
    }
    // The table columns the rows of the block reach: u <= floor(min(max p, P-1)) + 1. p_i0 is the
    // largest position of row i up to rounding (the vectorised scan rounds each entry its own way, a
    // relative 1e-4 at most), which the one extra column covers: the backward never reads a column
    // this product did not write.
    int ncol = product_width((maxp < top ? (int)maxp : P - 1) + 3, P);
    // Z[rows][0:ncol] = Q[rows]·E[:, 0:ncol]
    matmul(0, 0, nr, ncol, hd->dh, 1, hd->q + (long)i0 * hd->C, hd->C, o->table.w, P, 0, w->z, P);
    return ncol;
}

static void cope_block_forward(PEHead *hd) {
    const Work *w = work_of(hd);
    block_gates(hd, w, hd->S, 0);
}

#if TARGET_VEC_BYTES >= 32 && !defined(REAL_DOUBLE) && defined(__GNUC__) && !defined(__clang__)
// Keys j..j+ZL-1 at once (ZL: the floats of the target's vector, 16 with AVX-512, 8 with AVX2), in
// the row loops below (logits and their backward): the floors f of their clamped positions lie
// within ZL + 1 of the last key's, as positions fall by at most 1 a key (each gate is at most 1),
// rounding may lower a floor by 1, and u is f or f + 1. So what the element loops gather at f and u
// (Z, the slopes) lies in the 2·ZL columns from one below the last key's f, which two loads and a
// permute pick per ZL keys, for a gather (the gathers took a sixth of the flip-flop model's CoPE
// attention forward: 33.4 -> 29.0 ms with the windows, AVX-512, 1 thread, the tiny model's 3.10 ->
// 2.68; the backward 66.6 -> 65.1 ms and 5.67 -> 5.43; the AVX2 build's forward 63.0 -> 60.3 ms and
// 4.94 -> 4.57). The same values, so the same bits. GCC's __builtin_shuffle; other compilers and
// targets keep the element loops (test-portable runs them against the plain reference).
#define Z_WINDOWS 1
typedef float zvec __attribute__((vector_size(TARGET_VEC_BYTES)));
typedef int32_t zidx __attribute__((vector_size(TARGET_VEC_BYTES)));
typedef float zvec_u __attribute__((vector_size(TARGET_VEC_BYTES))) TARGET_UNALIGNED(float);  // at any address
typedef int32_t zidx_u __attribute__((vector_size(TARGET_VEC_BYTES))) TARGET_UNALIGNED(int32_t);
enum { ZL = TARGET_VEC_BYTES / sizeof(float) };

// The fractions w = c - f and floors f of the clamped positions c = min(p, top) of keys j..j+ZL-1, and
// the first column of their window.
static int window_positions(zvec *w, zidx *f, const real *p, int j, real top) {
    zvec x, c, tops = (zvec){0} + top;
    x = *(const zvec_u *)(p + j);
    zidx below = x < tops;
    c = (zvec)(((zidx)x & below) | ((zidx)tops & ~below));
    *f = __builtin_convertvector(c, zidx);  // truncation: c >= 0
    *w = c - __builtin_convertvector(*f, zvec);
    return (*f)[ZL - 1] > 0 ? (*f)[ZL - 1] - 1 : 0;
}

// v[m] for the ZL columns m = idx of a row v, read as the window of 2·ZL columns from `from` on
static void window_pick(zvec *out, const real *v, int from, const zidx *idx) {
    zvec lo, hi;
    lo = *(const zvec_u *)(v + from);
    hi = *(const zvec_u *)(v + from + ZL);
    *out = __builtin_shuffle(lo, hi, *idx - from);
}

// a[j+l] += γ·(w·Z[u] + (1-w)·Z[f]) for the lanes l >= skip of keys j..j+ZL-1, the element loop of
// cope_row_logits; the lanes below skip keep a as it is (a row's last window overlaps keys done).
// Inlined, so that the calls with skip 0 (all but a row's last) drop the select.
static inline __attribute__((always_inline)) void window_logits(real *a, const real *p, const real *z, real gamma,
                                                                real top, int j, int skip) {
    zvec w, zf, zu, old, sum;
    zidx f, lane;
    for (int l = 0; l < ZL; l++) lane[l] = l;
    int from = window_positions(&w, &f, p, j, top);
    zidx u = f - (w > 0);  // a true compare is -1
    window_pick(&zf, z, from, &f);
    window_pick(&zu, z, from, &u);
    old = *(const zvec_u *)(a + j);
    sum = old + gamma * (w * zu + (1 - w) * zf);
    zidx keep = lane >= skip;
    *(zvec_u *)(a + j) = (zvec)(((zidx)sum & keep) | ((zidx)old & ~keep));
}

// dp, the (da, dw) pairs and f of keys j..j+ZL-1, the element loop of cope_row_backward; the running
// lane-wise min and max of f in *fmin, *fmax.
static void window_slopes(real *dp, real *pairs, int *fj, zidx *fmin, zidx *fmax, const real *dA,
                          const real *p, const real *slope, real gamma, real top, int j) {
    zvec w, db, sl, x;
    zidx f;
    int from = window_positions(&w, &f, p, j, top);
    window_pick(&sl, slope, from, &f);
    db = *(const zvec_u *)(dA + j);
    db *= gamma;
    x = (zvec)((zidx)db & (w > 0)) * sl;  // (w > 0 ? db : 0) * slope[f]
    *(zvec_u *)(dp + j) = x;
    zvec da = (1 - w) * db, dw = w * db, lo, hi;
    zidx even, odd;  // lanes l of (da, dw) pairs: da[l / 2] or dw[l / 2], the first half, then the second
    for (int l = 0; l < ZL; l++) {
        even[l] = l / 2 + (l % 2) * ZL;
        odd[l] = ZL / 2 + l / 2 + (l % 2) * ZL;
    }
    lo = __builtin_shuffle(da, dw, even);
    hi = __builtin_shuffle(da, dw, odd);
    *(zvec_u *)(pairs + 2 * j) = lo;
    *(zvec_u *)(pairs + 2 * j + ZL) = hi;
    *(zidx_u *)(fj + j) = f;
    zidx lt = f < *fmin, gt = f > *fmax;
    *fmin = (f & lt) | (*fmin & ~lt);
    *fmax = (f & gt) | (*fmax & ~gt);
}
#else
#define Z_WINDOWS 0
#endif

static void cope_row_logits(PEHead *hd, int i, real *a) {
    const Cope *o = hd->opts;
    int T = hd->T, P = o->npos;
    const Work *w = work_of(hd);
    int r = i - hd->i0, j0 = w->clamped[r];
    const real *p = w->pos + (long)r * T, *z = w->z + (long)r * P;
    real gamma = o->nodiv ? 1 : hd->s, top = (real)(P - 1), at_clamp = gamma * z[P - 1];
#pragma omp simd
    for (int j = 0; j < j0; j++) a[j] += at_clamp;
    int from = j0;
#if Z_WINDOWS
    for (; from + ZL <= i + 1; from += ZL) window_logits(a, p, z, gamma, top, from, 0);
    // the last keys, fewer than ZL, in the window that ends at key i, its lanes before them left out
    // (the element loop below runs them one by one: 4% of the tiny model's CoPE attention in a profile)
    if (from <= i && i + 1 - ZL >= j0) {
        window_logits(a, p, z, gamma, top, i + 1 - ZL, from - (i + 1 - ZL));
        from = i + 1;
    }
#endif
#pragma omp simd
    for (int j = from; j <= i; j++) {
        real c = p[j] < top ? p[j] : top;
        int f = (int)c;
        real w = c - f;
        int u = f + (w > 0);
        a[j] += gamma * (w * z[u] + (1 - w) * z[f]);
    }
}

static void cope_head_backward(PEHead *hd) {
    const Cope *o = hd->opts;
    Work w = carve_head(hd);
    memset(w.copies, 0, sizeof(real) * COPIES * (o->npos + 1));
    if (rotated_gate_keys(o, hd->pe)) {
        pe_rope_rotate(hd->pe, w.keys, hd->dh, hd->gate_keys, hd->C, hd->T, hd->dh);
        memset(w.dkeys, 0, sizeof(real) * hd->T * hd->dh);
    }
    if (gate_products(hd, 1)) transpose_gate_keys(hd, &w);
}

static void cope_block_backward(PEHead *hd) {
    const Work *w = work_of(hd);
    int rows = hd->i1 - hd->i0, P = ((const Cope *)hd->opts)->npos;
    int ncol = block_gates(hd, w, NULL, 1);
    // The slopes Z[m+1] - Z[m] of the block's rows, which the rows' backward reads by gathers: here,
    // long before, rather than in each row just ahead of its gathers, which waited for those stores.
    // Z's last column gets 0: positions reach it only at the clamp, where no slope is used (w = 0).
    for (int r = 0; r < rows; r++) {
        const real *z = w->z + (long)r * P;
        real *slope = w->slope + (long)r * P;
#pragma omp simd
        for (int m = 0; m < ncol - 1; m++) slope[m] = z[m + 1] - z[m];
        slope[ncol - 1] = 0;
    }
    if (separate_gates(hd->opts, hd->pe)) {
        int from = block_unclamped(w->clamped, rows);
        for (int r = 0; r < rows; r++) memset(w->dsg + (long)r * hd->T + from, 0, sizeof(real) * (hd->i1 - from));
    }
}

// c[0] += ab[0], c[1] += ab[1], as one load, add and store of the pair (the backward's scatter:
// 1% faster than two scalar adds). The pairs lie interleaved in memory, as the rows' loops store
// them, so that each is one load (the scatter took 11% less time than building each pair from two
// arrays: tiny model's CoPE attention, 1 thread, in a profile).
typedef real real_pair __attribute__((vector_size(2 * sizeof(real))));
static inline void add_pair(real *c, const real *ab) {
    real_pair x, d;
    memcpy(&x, c, sizeof x);
    memcpy(&d, ab, sizeof d);
    x += d;
    memcpy(c, &x, sizeof x);
}

// Quoting the forward:  a_ij += γ·(w·Z[i][u] + (1-w)·Z[i][f]),  c = min(p, P-1),  p_ij = Σ_{t>=j} g_it,
// g = σ(s·x)·M. Hence db = γ·dA; dZ[u] += w·db, dZ[f] += (1-w)·db; dp = db·(Z[u] - Z[f]) below the
// clamp (0 above it, and 0 at integer c where u = f: the official code's choice at the kink,
// docs/cope.md §5.4-§5.5); the reverse cumsum turns into a prefix sum dg_it = Σ_{j<=t} dp_ij;
// dx = s·σ(1-σ)·M·dg.
// Z[u] - Z[f] is the slope Z[f+1] - Z[f] whenever it is used (w > 0).
// Keys j < j0 = clamped[r] are all at the clamp: each adds γ·dA_ij to dZ[P-1] and nothing to dp, so
// the gates below j0 get no gradient (dg_it is a prefix sum of dp, 0 up to j0).
static void cope_row_backward(PEHead *hd, int i, const real *dA, real *dS) {
    const Cope *o = hd->opts;
    const Work *w = work_of(hd);
    int T = hd->T, P = o->npos, r = i - hd->i0, j0 = w->clamped[r];
    const real *slope = w->slope + (long)r * P, *sg = w->sg + (long)r * T, *p = w->pos + (long)r * T;
    real gamma = o->nodiv ? 1 : hd->s, top = (real)(P - 1), s = hd->s;
    real *restrict dp = w->dp, *restrict pairs = w->pairs;
    int *restrict fj = w->f;
    real at_clamp = 0;
#pragma omp simd reduction(+ : at_clamp)
    for (int j = 0; j < j0; j++) at_clamp += dA[j];
    // vectorised arithmetic; the scatters (slow as vector ops on some CPUs) come after
    int fmin = P, fmax = j0 > 0 ? P - 1 : 0, from = j0;
#if Z_WINDOWS
    if (from + ZL <= i + 1) {
        zidx vmin = (zidx){0} + fmin, vmax = (zidx){0} + fmax;
        for (; from + ZL <= i + 1; from += ZL)
            window_slopes(dp, pairs, fj, &vmin, &vmax, dA, p, slope, gamma, top, from);
        if (from <= i) {  // the last keys, in the window that ends at key i: its others get the same values again
            window_slopes(dp, pairs, fj, &vmin, &vmax, dA, p, slope, gamma, top, i + 1 - ZL);
            from = i + 1;
        }
        for (int l = 0; l < ZL; l++) {
            fmin = vmin[l] < fmin ? vmin[l] : fmin;
            fmax = vmax[l] > fmax ? vmax[l] : fmax;
        }
    }
#endif
#pragma omp simd reduction(min : fmin) reduction(max : fmax)
    for (int j = from; j <= i; j++) {
        real db = gamma * dA[j];
        real c = p[j] < top ? p[j] : top;
        int f = (int)c;
        real w = c - f;
        dp[j] = (w > 0 ? db : 0) * slope[f];  // w = 0 above the clamp (c = P-1) and at integers
        pairs[2 * j] = (1 - w) * db;           // into dZ[f]
        pairs[2 * j + 1] = w * db;             // into dZ[f+1] (0 when u = f; column P of the copies is spare)
        fj[j] = f;
        fmin = f < fmin ? f : fmin;
        fmax = f > fmax ? f : fmax;
    }
    real *c0 = w->copies, *c1 = c0 + (P + 1), *c2 = c1 + (P + 1), *c3 = c2 + (P + 1);
    c0[P - 1] += gamma * at_clamp;
    int j = j0;
    for (; j + COPIES - 1 <= i; j += COPIES) {
        add_pair(c0 + fj[j], pairs + 2 * j);
        add_pair(c1 + fj[j + 1], pairs + 2 * j + 2);
        add_pair(c2 + fj[j + 2], pairs + 2 * j + 4);
        add_pair(c3 + fj[j + 3], pairs + 2 * j + 6);
    }
    for (; j <= i; j++) add_pair(c0 + fj[j], pairs + 2 * j);
    // dZ row = the copies on [fmin, fmax+1], 0 below; the block's products use its widest row, and
    // block_backward_end zero-fills the narrower rows up to it. The copies are zeroed again in the
    // same pass, the spare column P after it (instead of four memsets per row: tiny model's CoPE
    // attention 9.50 -> 9.40 ms).
    real *dz = w->dz + (long)r * P;
    int mhi = fmax + 1 < P ? fmax + 1 : P - 1;
    memset(dz, 0, sizeof(real) * fmin);
#pragma omp simd
    for (int m = fmin; m <= mhi; m++) {
        dz[m] = (c0[m] + c1[m]) + (c2[m] + c3[m]);
        c0[m] = c1[m] = c2[m] = c3[m] = 0;
    }
    if (fmax + 1 > mhi) c0[P] = c1[P] = c2[P] = c3[P] = 0;
    w->ncol[r] = mhi + 1;

    real *dx = separate_gates(o, hd->pe) ? w->dsg + (long)r * T : dS;
    const uint8_t *pad = hd->pad;
    real acc = 0;
    if (pad) {
#pragma omp simd reduction(inscan, + : acc)
        for (int t = j0; t <= i; t++) {
            acc += dp[t];
#pragma omp scan inclusive(acc)
            dx[t] += t < i && pad[t] ? 0 : s * sg[t] * (1 - sg[t]) * acc;
        }
    } else {
#pragma omp simd reduction(inscan, + : acc)
        for (int t = j0; t <= i; t++) {
            acc += dp[t];
#pragma omp scan inclusive(acc)
            dx[t] += s * sg[t] * (1 - sg[t]) * acc;
        }
    }
}

static void cope_block_backward_end(PEHead *hd) {
    const Cope *o = hd->opts;
    const Work *w = work_of(hd);
    int P = o->npos, T = hd->T, i0 = hd->i0, i1 = hd->i1, rows = i1 - i0, dh = hd->dh;
    real *dz = w->dz;
    const int *row_ncol = w->ncol;
    int ncol = 0;  // the widest dZ row of the block
    for (int r = 0; r < rows; r++) ncol = row_ncol[r] > ncol ? row_ncol[r] : ncol;
    ncol = product_width(ncol, P);
    for (int r = 0; r < rows; r++) memset(dz + (long)r * P + row_ncol[r], 0, sizeof(real) * (ncol - row_ncol[r]));
    // dq[rows] += dZ[rows][0:ncol]·Eᵀ[0:ncol] ;  partial[0:ncol] += dZ[rows][0:ncol]ᵀ·Q[rows]
    matmul(0, 0, rows, dh, ncol, 1, dz, P, o->table_t, dh, 1, hd->dq + (long)i0 * hd->ldd, hd->ldd);
    matmul(1, 0, ncol, dh, rows, 1, dz, P, hd->q + (long)i0 * hd->C, hd->C, 1, hd->partial, dh);
    if (separate_gates(o, hd->pe)) {  // dS' of the keys [from, i1), the others' gates have none
        Gates g = gate_operands(hd, w);
        int from = block_unclamped(w->clamped, rows);
        const real *dsg = w->dsg + from;
        matmul(0, 0, rows, dh, i1 - from, 1, dsg, T, g.k + (long)from * g.ldk, g.ldk, 1, g.dq + (long)i0 * g.lddq,
               g.lddq);
        if (g.dk)
            matmul(1, 0, i1 - from, dh, rows, 1, dsg, T, g.q + (long)i0 * g.ldq, g.ldq, 1, g.dk + (long)from * g.lddk,
                   g.lddk);
    }
}

static void cope_head_backward_end(PEHead *hd) {
    if (rotated_gate_keys(hd->opts, hd->pe) && hd->dgate_keys)
        pe_rope_unrotate_add(hd->pe, hd->dgate_keys, hd->C, work_of(hd)->dkeys, hd->dh, hd->T, hd->dh);
}

static void cope_reduce(const AttnPE *pe, const real *partials, long nbh, int dh) {
    const Cope *o = cope_of(pe);
    if (o->table.dw) pe_reduce_partials(o->table.dw, partials, nbh, (long)dh * o->npos, dh);
}

static const ConfigKey cope_keys[] = {
    {"pe", "npos", KEY_INT, offsetof(Config, pe.npos), 0, 1048576, NULL, "0", 0, NULL,
     "CoPE positions 0..npos-1 (larger ones are clamped to npos-1); 0 means block_size + 1; at least 2."},
    {"pe", "nodiv", KEY_BOOL, offsetof(Config, pe.nodiv), 0, 0, NULL, "false", 0, NULL,
     "The CoPE logit term is not divided by sqrt(head dim) (the paper's Appendix B)."},
    {"pe", "sep_keys", KEY_BOOL, offsetof(Config, pe.sep_keys), 0, 0, NULL, "false", 0, NULL,
     "The gates use their own key projection instead of the attention keys."},
    {"pe", "every_k_layers", KEY_INT, offsetof(Config, pe.every_k_layers), 1, 1024, NULL, "1", 0, NULL,
     "CoPE on layers l with (l+1) % k == 0 (0-based l), relative PE only on the others; values above 1 "
     "need pe.type cope+rel and at most model.n_layers."},
    {"pe", "shared_table", KEY_BOOL, offsetof(Config, pe.shared_table), 0, 0, NULL, "false", 0, NULL,
     "The CoPE layers share one position table (the first CoPE layer's)."},
    {"pe", "rope_gates", KEY_CHOICE, offsetof(Config, pe.rope_gates), 0, 0, "rotated|unrotated", "\"rotated\"", 0,
     "rope", "What the CoPE gates see: the RoPE-rotated queries and keys, or the unrotated ones."},
    {"pe", "keep_gates", KEY_CHOICE, offsetof(Config, pe.keep_gates), 0, 0, "auto|always|never", "\"auto\"", 0, NULL,
     "Training keeps the CoPE gates for the backward (faster) or recomputes them there (less memory at "
     "contexts past 1024); auto keeps them while they cost no resident memory (contexts up to 1024, "
     "512 in double builds)."},
};

static int cope_setup(void *opts, AttnPE *pe, const Config *c, int layer) {
    const PEConfig *pc = &c->pe;
    int every = pc->every_k_layers > 0 ? pc->every_k_layers : 1;
    if ((layer + 1) % every != 0) return 0;  // the other layers keep only the relative term
    Cope *o = opts;
    o->npos = pc->npos;
    o->nodiv = pc->nodiv;
    o->transformed = pe_transforms_qk(pe_parse_type(pc->type));
    o->gates_unrotated = strcmp(pc->rope_gates, "unrotated") == 0;
    o->shared_table = pc->shared_table;
    o->keep_gates = strcmp(pc->keep_gates, "always") == 0 ? 1 : strcmp(pc->keep_gates, "never") == 0 ? 0 : -1;
    pe->own_keys = pc->sep_keys;
    return 1;
}

// The table E, zeros at the start (docs/baselines.md §7.6): each layer's own, or the first CoPE
// layer's with shared_table.
static void cope_layer_params(void *opts, const void *first, PEParams *pp) {
    Cope *o = opts;
    const Cope *f = first;
    if (o->shared_table && f != o)
        o->table = f->table;
    else
        o->table = pp->add(pp, "cope_table", (long)pp->dh * o->npos, pp->decay_tables, 'z', 0);
}

static void cope_resolve(Config *c, const Config *base) {
    if (c->pe.npos == 0) c->pe.npos = base->model.block_size + 1;
}

static int cope_check(const Config *c, const char *src, char *err, int errlen) {
    const PEConfig *pe = &c->pe;
    if (pe->npos < 2) {
        snprintf(err, errlen, "%s: pe.npos must be at least 2 (or 0 for block_size + 1), got %d", src, pe->npos);
        return -1;
    }
    if (pe->every_k_layers > 1 && !(pe_parse_type(pe->type) & pe_bit("rel"))) {
        snprintf(err, errlen, "%s: pe.every_k_layers %d needs pe.type cope+rel (\"%s\" puts CoPE on every layer)", src,
                 pe->every_k_layers, pe->type);
        return -1;
    }
    if (pe->every_k_layers > c->model.n_layers) {
        snprintf(err, errlen, "%s: pe.every_k_layers %d exceeds model.n_layers %d, leaving no CoPE layer", src,
                 pe->every_k_layers, c->model.n_layers);
        return -1;
    }
    return 0;
}

const PEKernel pe_cope = {
    .name = "cope",
    .combines = "rel|rope",
    .keys = cope_keys,
    .n_keys = (int)(sizeof cope_keys / sizeof cope_keys[0]),
    .resolve = cope_resolve,
    .check = cope_check,
    .opts_size = sizeof(Cope),
    .setup = cope_setup,
    .layer_params = cope_layer_params,
    .check_length = cope_check_length,
    .prepare = cope_prepare,
    .release = cope_release,
    .cache_size = cope_cache_size,
    .cache_bind = cope_cache_bind,
    .work_size = cope_work_size,
    .partial_size = cope_partial_size,
    .head_forward = cope_head_forward,
    .block_forward = cope_block_forward,
    .row_logits = cope_row_logits,
    .head_backward = cope_head_backward,
    .block_backward = cope_block_backward,
    .row_backward = cope_row_backward,
    .block_backward_end = cope_block_backward_end,
    .head_backward_end = cope_head_backward_end,
    .reduce = cope_reduce,
};
