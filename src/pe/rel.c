// Relative PE as the official code implements it (Shaw-style key embeddings, docs/baselines.md §3):
// R_ij = q_i·r_m with m = n-1-(i-j), table (dh, n) shared by all heads and layers; the last column is
// distance 0, column 0 the farthest. The term joins the logits before the 1/sqrt(dh) scaling,
// A = s·(S + R), so this kernel adds s·R_ij. Distances beyond n-1 (pe.rel_beyond) are refused by
// check_length, add nothing (the official code's uncapped model: its table has no entry there, so the
// term is zero), or reuse column 0 (capped, the official --rel-pos-extend).
//
// Per block, Zr = Q·Rtable (rows of the block, the columns they reach) is one product; row i then reads
// the contiguous run Zr[i][n-1-i .. n-1]. Zr lives in per-thread work, not in the cache: the backward
// needs only dZr (scattered from s·dA), which gives dq += dZr·Rtableᵀ and dtable += Qᵀ·dZr.
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "error.h"
#include "matmul.h"
#include "pe.h"

extern const PEKernel pe_rel;

// A layer's relative PE (AttnPE.opts), from the config by rel_setup.
enum { BEYOND_REFUSE, BEYOND_ZERO, BEYOND_CAP };

typedef struct {
    int npos;        // table columns; distance δ = i-j uses column npos-1-δ
    int beyond;      // what distances beyond the table get (BEYOND_*)
    PETensor table;  // (dh, npos), one for all heads and layers
} Rel;

static const Rel *rel_of(const AttnPE *pe) { return pe_opts(pe, &pe_rel); }

static int rel_check_length(const AttnPE *pe, int T, char *err, int errlen) {
    const Rel *o = rel_of(pe);
    if (o->npos < 1) {
        snprintf(err, errlen, "relative PE needs a table of at least 1 column (rel_max_distance %d)", o->npos);
        return -1;
    }
    if (o->beyond == BEYOND_REFUSE && T > o->npos) {
        snprintf(err, errlen,
                 "context %d needs relative distances up to %d but the uncapped relative table has %d columns "
                 "(distances 0..%d); set pe.rel_beyond to \"cap\" (reuse the farthest entry) or \"zero\", or use a "
                 "context <= %d",
                 T, T - 1, o->npos, o->npos - 1, o->npos);
        return -1;
    }
    return 0;
}

// work: Zr and dZr of a block, (rows, n) each
static long rel_work_size(const AttnPE *pe, int T, int dh, int rows) {
    (void)T, (void)dh;
    return 2L * rows * rel_of(pe)->npos;
}

static long rel_partial_size(const AttnPE *pe, int dh) { return (long)dh * rel_of(pe)->npos; }

// The first table column the rows of the block reach: row i reaches n-1-i (or 0 beyond the table).
static int rel_first_column(const PEHead *hd) {
    int lo = ((const Rel *)hd->opts)->npos - hd->i1;
    return lo > 0 ? lo : 0;
}

static void rel_block_forward(PEHead *hd) {
    const Rel *o = hd->opts;
    int n = o->npos, lo = rel_first_column(hd);
    // Zr[rows][lo:n] = Q[rows]·Rtable[:, lo:n]
    matmul(0, 0, hd->i1 - hd->i0, n - lo, hd->dh, 1, hd->q + (long)hd->i0 * hd->C, hd->C, o->table.w + lo, n, 0,
           hd->work + lo, n);
}

static void rel_row_logits(PEHead *hd, int i, real *a) {
    int n = ((const Rel *)hd->opts)->npos;
    const real *z = hd->work + (long)(i - hd->i0) * n;
    real s = hd->s;
    int jlo = i - (n - 1);  // keys j >= jlo are within the table
    int j = jlo > 0 ? jlo : 0;
    if (jlo > 0 && ((const Rel *)hd->opts)->beyond == BEYOND_CAP)  // farther keys use column 0
        for (int jj = 0; jj < jlo; jj++) a[jj] += s * z[0];
    const real *zr = z + (n - 1 - i);  // zr[j] = z[n-1-(i-j)]
#pragma omp simd
    for (int jj = j; jj <= i; jj++) a[jj] += s * zr[jj];
}

static void rel_block_backward(PEHead *hd) {
    int n = ((const Rel *)hd->opts)->npos, lo = rel_first_column(hd);
    real *dz = hd->work + (long)(hd->i1 - hd->i0) * n;
    for (int i = hd->i0; i < hd->i1; i++)
        for (int m = lo; m < n; m++) dz[(long)(i - hd->i0) * n + m] = 0;
}

// forward: a_ij += s·Zr[i][m(i,j)], so dZr[i][m(i,j)] += s·dA_ij
static void rel_row_backward(PEHead *hd, int i, const real *dA, real *dS) {
    (void)dS;
    int n = ((const Rel *)hd->opts)->npos, rows = hd->i1 - hd->i0;
    real *dz = hd->work + (long)rows * n + (long)(i - hd->i0) * n;
    real s = hd->s;
    int jlo = i - (n - 1), j = jlo > 0 ? jlo : 0;
    if (jlo > 0 && ((const Rel *)hd->opts)->beyond == BEYOND_CAP) {
        real acc = 0;
        for (int jj = 0; jj < jlo; jj++) acc += dA[jj];
        dz[0] += s * acc;
    }
    real *dzr = dz + (n - 1 - i);
#pragma omp simd
    for (int jj = j; jj <= i; jj++) dzr[jj] += s * dA[jj];
}

static void rel_block_backward_end(PEHead *hd) {
    const Rel *o = hd->opts;
    int n = o->npos, lo = rel_first_column(hd), rows = hd->i1 - hd->i0;
    const real *dz = hd->work + (long)rows * n;
    // dq[rows] += dZr[rows][lo:n]·Rtable[:, lo:n]ᵀ ;  partial[:, lo:n] += Q[rows]ᵀ·dZr[rows][lo:n]
    matmul(0, 1, rows, hd->dh, n - lo, 1, dz + lo, n, o->table.w + lo, n, 1, hd->dq + (long)hd->i0 * hd->ldd,
           hd->ldd);
    matmul(1, 0, hd->dh, n - lo, rows, 1, hd->q + (long)hd->i0 * hd->C, hd->C, dz + lo, n, 1, hd->partial + lo, n);
}

static void rel_reduce(const AttnPE *pe, const real *partials, long nbh, int dh) {
    const Rel *o = rel_of(pe);
    if (o->table.dw) pe_reduce_partials(o->table.dw, partials, nbh, (long)dh * o->npos, 0);
}

static const ConfigKey rel_keys[] = {
    {"pe", "rel_max_distance", KEY_INT, offsetof(Config, pe.rel_max_distance), 0, 1048576, NULL, "0", 0, NULL,
     "Entries of the relative PE table (distances 0..n-1); 0 means block_size."},
    {"pe", "rel_beyond", KEY_CHOICE, offsetof(Config, pe.rel_beyond), 0, 0, "refuse|zero|cap", "\"refuse\"", KEY_EVAL_SAFE, NULL,
     "Relative distances beyond the table: refuse such contexts, add nothing for them (the official code's "
     "uncapped model), or reuse the farthest entry (relative-capped). ./eval may override it."},
    {"pe", "rel_capped", KEY_BOOL, offsetof(Config, pe.rel_capped), 0, 0, NULL, "false", KEY_EVAL_SAFE, NULL,
     "The old name of rel_beyond \"cap\" (configs and checkpoints that set it still load); true with "
     "rel_beyond \"zero\" is refused."},
};

static int rel_setup(void *opts, AttnPE *pe, const Config *c, int layer) {
    (void)pe, (void)layer;
    Rel *o = opts;
    o->npos = c->pe.rel_max_distance;
    const char *b = c->pe.rel_beyond;
    o->beyond = !strcmp(b, "cap") ? BEYOND_CAP : !strcmp(b, "zero") ? BEYOND_ZERO : BEYOND_REFUSE;
    return 1;
}

// One table for every layer, N(0, dh^-1/2) (docs/baselines.md §7.6), declared before the layers'.
static void rel_global_params(void *first, PEParams *pp) {
    Rel *o = first;
    o->table = pp->add(pp, "rel_table", (long)pp->dh * o->npos, pp->decay_tables, 'n', 1.0 / sqrt(pp->dh));
}

static void rel_layer_params(void *opts, const void *first, PEParams *pp) {
    (void)pp;
    ((Rel *)opts)->table = ((const Rel *)first)->table;
}

static void rel_resolve(Config *c, const Config *base) {
    if (c->pe.rel_max_distance == 0) c->pe.rel_max_distance = base->model.block_size;
    if (c->pe.rel_capped && !strcmp(c->pe.rel_beyond, "refuse")) {  // cleared first: Configs compare by bytes
        memset(c->pe.rel_beyond, 0, sizeof c->pe.rel_beyond);
        memcpy(c->pe.rel_beyond, "cap", 3);
    }
}

static int rel_check(const Config *c, const char *src, char *err, int errlen) {
    if (c->pe.rel_capped && strcmp(c->pe.rel_beyond, "cap") != 0)
        return errf(err, errlen, "%s: pe.rel_capped true (the old name of pe.rel_beyond \"cap\") contradicts pe.rel_beyond \"%s\"",
                    src, c->pe.rel_beyond);
    return 0;
}

const PEKernel pe_rel = {
    .name = "rel",
    .keys = rel_keys,
    .n_keys = (int)(sizeof rel_keys / sizeof rel_keys[0]),
    .resolve = rel_resolve,
    .check = rel_check,
    .opts_size = sizeof(Rel),
    .setup = rel_setup,
    .global_params = rel_global_params,
    .layer_params = rel_layer_params,
    .check_length = rel_check_length,
    .work_size = rel_work_size,
    .partial_size = rel_partial_size,
    .block_forward = rel_block_forward,
    .row_logits = rel_row_logits,
    .block_backward = rel_block_backward,
    .row_backward = rel_row_backward,
    .block_backward_end = rel_block_backward_end,
    .reduce = rel_reduce,
};
