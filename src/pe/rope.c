// RoPE (Su et al.): rotate each head's q and k by their position t, pairs (2m, 2m+1) by the angle
// t·base^(-2m/dh), so q_i·k_j depends on i - j only. The rotated copies go to the cache and everything
// downstream in attention (logits, the relative term, CoPE's gates by default and CoPE's Z = q·E) uses
// them; the backward rotates dq and dk back.
#include <math.h>
#include <stdio.h>
#include <stdlib.h>

#include "pe.h"

// A layer's RoPE (AttnPE.opts): the frequency base, and the cos and sin of every (t, m) for the
// T, dh of the last prepare (rebuilt only when T grows or dh changes).
typedef struct {
    double base;
    real *cs;  // (cs_T, dh/2, 2)
    int cs_T, cs_dh;
} Rope;

static const Rope *rope_of(const AttnPE *pe) { return pe_opts(pe, &pe_rope); }
static double base_of(const AttnPE *pe) { return rope_of(pe)->base; }

static int rope_check_length(const AttnPE *pe, int T, char *err, int errlen) {
    (void)T;
    if (!(base_of(pe) > 1)) {
        snprintf(err, errlen, "RoPE base %g must be > 1", base_of(pe));
        return -1;
    }
    return 0;
}

// qrot, krot (B,T,C) each (qrot's rows below r0 unused)
static long rope_cache_size(const AttnPE *pe, int B, int R, int T, int C, int H, int train_rows) {
    (void)pe, (void)R, (void)H, (void)train_rows;
    return 2L * B * T * C;
}

static void rope_cache_bind(AttnCache *cache, real *mem, const AttnPE *pe, int B, int R, int T, int C, int H,
                            int train_rows) {
    (void)pe, (void)R, (void)H, (void)train_rows;
    cache->qrot = mem;
    cache->krot = mem + (long)B * T * C;
}

static void rope_prepare(const AttnPE *pe, int T, int dh, int backward) {
    (void)backward;
    if (dh % 2 != 0) {
        fprintf(stderr, "rope.c: RoPE rotates pairs of channels, but the head dim %d is odd\n", dh);
        exit(1);
    }
    Rope *o = (Rope *)rope_of(pe);  // the layer's own tables are prepare's to write
    if (o->cs && T <= o->cs_T && dh == o->cs_dh) return;
    free(o->cs);
    o->cs = malloc(sizeof(real) * (size_t)T * dh);
    if (!o->cs) {
        fprintf(stderr, "rope.c: out of memory for a %d x %d rotation table\n", T, dh);
        exit(1);
    }
    for (int t = 0; t < T; t++) {
        for (int m = 0; m < dh / 2; m++) {
            double angle = t * pow(o->base, -2.0 * m / dh);
            o->cs[((long)t * (dh / 2) + m) * 2] = (real)cos(angle);
            o->cs[((long)t * (dh / 2) + m) * 2 + 1] = (real)sin(angle);
        }
    }
    o->cs_T = T, o->cs_dh = dh;
}

static void rope_release(void *opts) { free(((Rope *)opts)->cs); }

void pe_rope_rotate(const AttnPE *pe, real *dst, int ldd, const real *src, int lds, int T, int dh) {
    pe_rope_rotate_from(pe, dst, ldd, src, lds, 0, T, dh);
}

void pe_rope_rotate_from(const AttnPE *pe, real *dst, int ldd, const real *src, int lds, int t0, int T, int dh) {
    const real *table = rope_of(pe)->cs;
    for (int t = t0; t < T; t++) {
        const real *cs = table + (long)t * dh, *x = src + (long)(t - t0) * lds;
        real *y = dst + (long)(t - t0) * ldd;
        for (int m = 0; m < dh / 2; m++) {
            real c = cs[2 * m], s = cs[2 * m + 1], x0 = x[2 * m], x1 = x[2 * m + 1];
            y[2 * m] = c * x0 - s * x1;
            y[2 * m + 1] = s * x0 + c * x1;
        }
    }
}

// The rotation is orthogonal: its backward applies the transpose, the rotation by -angle.
void pe_rope_unrotate_add(const AttnPE *pe, real *dst, int ldd, const real *src, int lds, int T, int dh) {
    const real *table = rope_of(pe)->cs;
    for (int t = 0; t < T; t++) {
        const real *cs = table + (long)t * dh, *y = src + (long)t * lds;
        real *x = dst + (long)t * ldd;
        for (int m = 0; m < dh / 2; m++) {
            real c = cs[2 * m], s = cs[2 * m + 1], y0 = y[2 * m], y1 = y[2 * m + 1];
            x[2 * m] += c * y0 + s * y1;
            x[2 * m + 1] += -s * y0 + c * y1;
        }
    }
}

static void rope_qk_forward(const real **qa, const real **ka, AttnCache *cache, const real *q, const real *k,
                            const AttnPE *pe, int B, int T, int r0, int C, int H) {
    int dh = C / H;
#pragma omp parallel for schedule(static)
    for (long bh = 0; bh < (long)B * H; bh++) {
        long off = (bh / H) * T * C + (bh % H) * dh, qoff = off + (long)r0 * C;
        pe_rope_rotate_from(pe, cache->qrot + qoff, C, q + qoff, C, r0, T, dh);
        pe_rope_rotate(pe, cache->krot + off, C, k + off, C, T, dh);
    }
    *qa = cache->qrot;
    *ka = cache->krot;
}

static void rope_qk_saved(const real **qa, const real **ka, const AttnCache *cache) {
    *qa = cache->qrot;
    *ka = cache->krot;
}

static void rope_qk_backward(PEHead *hd) {
    pe_rope_unrotate_add(hd->pe, hd->dq_in, hd->C, hd->dq, hd->ldd, hd->T, hd->dh);
    pe_rope_unrotate_add(hd->pe, hd->dk_in, hd->C, hd->dk, hd->ldd, hd->T, hd->dh);
}

static const ConfigKey rope_keys[] = {
    {"pe", "rope_base", KEY_REAL, offsetof(Config, pe.rope_base), 1, 1e12, NULL, "10000", 0, NULL,
     "RoPE frequency base: pair i of a head rotates by position * base^(-2i/head_dim)."},
};

static int rope_setup(void *opts, AttnPE *pe, const Config *c, int layer) {
    (void)pe, (void)layer;
    ((Rope *)opts)->base = c->pe.rope_base;
    return 1;
}

static int rope_check(const Config *c, const char *src, char *err, int errlen) {
    int dh = c->model.d_model / c->model.n_heads;
    if (dh % 2) {
        snprintf(err, errlen, "%s: pe.type %s needs an even head dimension, but model.d_model / model.n_heads = %d",
                 src, c->pe.type, dh);
        return -1;
    }
    return 0;
}

const PEKernel pe_rope = {
    .name = "rope",
    .keys = rope_keys,
    .n_keys = (int)(sizeof rope_keys / sizeof rope_keys[0]),
    .check = rope_check,
    .opts_size = sizeof(Rope),
    .setup = rope_setup,
    .check_length = rope_check_length,
    .cache_size = rope_cache_size,
    .cache_bind = rope_cache_bind,
    .prepare = rope_prepare,
    .release = rope_release,
    .qk_forward = rope_qk_forward,
    .qk_saved = rope_qk_saved,
    .qk_backward = rope_qk_backward,
};
