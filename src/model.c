#include "model.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "layers.h"
#include "pe/pe.h"
#include "rng.h"

// The gradient (or Adam moment) slice that mirrors a parameter slice.
#define GRAD(m, p) ((p) ? (m)->grads + ((p) - (m)->params) : NULL)

// Dropout sites, part of each mask's stream key.
enum { SITE_EMBEDDING, SITE_ATTN_PROBS, SITE_ATTN_OUT, SITE_FF_HIDDEN, SITE_FF_OUT };

// ----------------------------------------------------------------------------------------------
// Parameter layout

typedef struct {
    PEParams pe;  // first: the position encodings declare their tensors through it (pe_add)
    Model *m;
    long used;
    int count;
    int assign;  // second pass: record tensors and hand out pointers
    int layer;   // the layer being laid out (-1: model-level tensors)
} Layout;

static real *slice(Layout *lo, const char *name, int layer, long size, int decay, char init, double scale) {
    long offset = lo->used;
    lo->used += size;
    if (lo->assign) {
        ParamTensor *t = &lo->m->tensors[lo->count];
        if (layer >= 0)
            snprintf(t->name, sizeof t->name, "layers.%d.%s", layer, name);
        else
            snprintf(t->name, sizeof t->name, "%s", name);
        t->offset = offset;
        t->size = size;
        t->decay = decay;
        t->init = init;
        t->scale = scale;
    }
    lo->count++;
    return lo->assign ? lo->m->params + offset : NULL;
}

static PETensor pe_add(PEParams *pp, const char *name, long size, int decay, char init, double scale) {
    Layout *lo = (Layout *)pp;
    real *w = slice(lo, name, lo->layer, size, decay, init, scale);
    return (PETensor){w, w && lo->m->grads ? GRAD(lo->m, w) : NULL};
}

// Lays out every tensor (official initialisation, docs/baselines.md §7.6): embeddings N(0, C^-1/2);
// linear weights and biases U(±1/sqrt(fan_in)) (PyTorch's nn.Linear default), with the attention
// output and fc2 weights divided by sqrt(2·L) under pre-norm; LayerNorm 1 and 0; the position
// encodings' tables as their kernels declare them (before the layers, and after each layer's
// attention projections).
static void layout(Layout *lo) {
    Model *m = lo->m;
    const Config *cfg = &m->cfg;
    int C = m->C, F = m->F, V = m->V, L = m->L;
    int pre = m->pre;
    int decay_emb = cfg->train.decay_embeddings;
    double lin_c = 1.0 / sqrt(C), lin_f = 1.0 / sqrt(F);
    double out_scale = pre ? 1.0 / sqrt(2.0 * L) : 1.0;
    lo->pe = (PEParams){.add = pe_add, .dh = m->C / m->H, .decay_tables = decay_emb};

    lo->layer = -1;
    m->wte = slice(lo, "wte", -1, (long)V * C, decay_emb, 'n', 1.0 / sqrt(C));
    m->wpe = NULL;
    if (m->abs_learned) m->wpe = slice(lo, "wpe", -1, (long)m->block_size * C, decay_emb, 'n', 1.0 / sqrt(C));
    pe_declare_global(m->pe, L, &lo->pe);
    for (int l = 0; l < L; l++) {
        LayerParams *p = &m->layers[l];
        lo->layer = l;
        p->ln1_w = slice(lo, "ln1_w", l, C, 0, 'o', 0);
        p->ln1_b = slice(lo, "ln1_b", l, C, 0, 'z', 0);
        p->wq = slice(lo, "wq", l, (long)C * C, 1, 'u', lin_c);
        p->bq = slice(lo, "bq", l, C, 0, 'u', lin_c);
        p->wk = slice(lo, "wk", l, (long)C * C, 1, 'u', lin_c);
        p->bk = slice(lo, "bk", l, C, 0, 'u', lin_c);
        p->wv = slice(lo, "wv", l, (long)C * C, 1, 'u', lin_c);
        p->bv = slice(lo, "bv", l, C, 0, 'u', lin_c);
        p->wo = slice(lo, "wo", l, (long)C * C, 1, 'u', lin_c * out_scale);
        p->bo = slice(lo, "bo", l, C, 0, 'u', lin_c);
        p->wkc = p->bkc = NULL;
        if (m->pe[l].own_keys) {
            p->wkc = slice(lo, "wkc", l, (long)C * C, 1, 'u', lin_c);
            p->bkc = slice(lo, "bkc", l, C, 0, 'u', lin_c);
        }
        pe_declare_layer(m->pe, l, &lo->pe);
        p->ln2_w = slice(lo, "ln2_w", l, C, 0, 'o', 0);
        p->ln2_b = slice(lo, "ln2_b", l, C, 0, 'z', 0);
        p->fc1_w = slice(lo, "fc1_w", l, (long)F * C, 1, 'u', lin_c);
        p->fc1_b = slice(lo, "fc1_b", l, F, 0, 'u', lin_c);
        p->fc2_w = slice(lo, "fc2_w", l, (long)C * F, 1, 'u', lin_f * out_scale);
        p->fc2_b = slice(lo, "fc2_b", l, C, 0, 'u', lin_f);
    }
    lo->layer = -1;
    m->lnf_w = m->lnf_b = NULL;
    if (pre) {
        m->lnf_w = slice(lo, "lnf_w", -1, C, 0, 'o', 0);
        m->lnf_b = slice(lo, "lnf_b", -1, C, 0, 'z', 0);
    }
    m->lm_head = cfg->model.tie_embeddings ? m->wte : slice(lo, "lm_head", -1, (long)V * C, 1, 'u', lin_c);
}

// Zeroed memory whose pages become resident as the passes first write them (the first step): pages
// they never write stay out of the peak, as do those of the attention probabilities past each row's
// block once a row spans pages (and CoPE's gates kept there only where they do not, cope.c). A
// memset here, meant to touch every page in advance, never ran: GCC drops a memset of 0 after
// calloc from -O2 on.
static void *alloc_zeroed(long count, size_t elem) { return calloc(count > 0 ? count : 1, elem); }

// The config's strings read once, into the numbers and flags the passes use: nothing after
// model_init compares config strings. Each layer's AttnPE gets its options here (from the kernels'
// setup), its tables in layout's second pass and its gate keys in carve.
static int resolve(Model *m, const Config *cfg, char *err, int errlen) {
    const PEConfig *pc = &cfg->pe;
    m->pre = strcmp(cfg->model.norm, "pre") == 0;
    m->gelu = strcmp(cfg->model.activation, "gelu") == 0;
    int abs = (pe_parse_type(pc->type) & pe_bit("abs")) != 0;
    m->abs_learned = abs && strcmp(pc->abs_kind, "learned") == 0;
    m->abs_sinusoidal = abs && strcmp(pc->abs_kind, "sinusoidal") == 0;
    for (int l = 0; l < m->L; l++)
        if (pe_layer_init(&m->pe[l], cfg, l, err, errlen) != 0) return -1;
    return 0;
}

int model_init(Model *m, const Config *cfg, int V, char *err, int errlen) {
    memset(m, 0, sizeof *m);
    m->cfg = *cfg;
    m->V = V;
    m->C = cfg->model.d_model;
    m->H = cfg->model.n_heads;
    m->F = cfg->model.d_ff > 0 ? cfg->model.d_ff : 4 * m->C;
    m->L = cfg->model.n_layers;
    m->block_size = cfg->model.block_size;
    if (m->C % m->H != 0) {
        snprintf(err, errlen, "model.d_model (%d) must be a multiple of model.n_heads (%d)", m->C, m->H);
        return -1;
    }
    m->layers = calloc(m->L, sizeof *m->layers);
    m->acts = calloc(m->L, sizeof *m->acts);
    m->pe = calloc(m->L, sizeof *m->pe);
    if (!m->layers || !m->acts || !m->pe) {
        snprintf(err, errlen, "out of memory for the layer tables of %d layers", m->L);
        return -1;
    }
    if (resolve(m, cfg, err, errlen) != 0) return -1;
    Layout lo = {.m = m};
    layout(&lo);
    m->n_params = lo.used;
    m->n_tensors = lo.count;
    return 0;
}

int model_alloc(Model *m, int training, char *err, int errlen) {
    m->tensors = calloc(m->n_tensors, sizeof *m->tensors);
    m->params = alloc_zeroed(m->n_params, sizeof(real));
    if (training) {
        m->grads = alloc_zeroed(m->n_params, sizeof(real));
        m->adam_m = alloc_zeroed(m->n_params, sizeof(real));
        m->adam_v = alloc_zeroed(m->n_params, sizeof(real));
    }
    if (!m->tensors || !m->params || (training && (!m->grads || !m->adam_m || !m->adam_v))) {
        snprintf(err, errlen, "out of memory allocating %ld parameters%s", m->n_params,
                 training ? " with their gradients and Adam moments" : "");
        return -1;
    }
    Layout lo = (Layout){.m = m, .assign = 1};
    layout(&lo);

    Rng rng;
    rng_seed(&rng, (uint64_t)m->cfg.run.seed);
    for (int t = 0; t < m->n_tensors; t++) {
        const ParamTensor *pt = &m->tensors[t];
        real *p = m->params + pt->offset;
        for (long i = 0; i < pt->size; i++) {
            switch (pt->init) {
            case 'z': p[i] = 0; break;
            case 'o': p[i] = 1; break;
            case 'n': p[i] = (real)(pt->scale * rng_normal(&rng)); break;
            default: p[i] = (real)(pt->scale * (2.0 * rng_uniform(&rng) - 1.0)); break;
            }
        }
    }
    return 0;
}

int model_replica(Model *r, const Model *m, char *err, int errlen) {
    if (model_init(r, &m->cfg, m->V, err, errlen) != 0) return -1;
    r->tensors = calloc(r->n_tensors, sizeof *r->tensors);
    r->grads = alloc_zeroed(r->n_params, sizeof(real));
    if (!r->tensors || !r->grads) {
        snprintf(err, errlen, "out of memory for the gradients of a model replica (%ld parameters)", r->n_params);
        return -1;
    }
    r->params = m->params;
    r->shares_params = 1;
    r->keep_positions = m->keep_positions;
    Layout lo = (Layout){.m = r, .assign = 1};
    layout(&lo);
    return 0;
}

int model_create(Model *m, const Config *cfg, int V, char *err, int errlen) {
    return model_init(m, cfg, V, err, errlen) == 0 && model_alloc(m, 1, err, errlen) == 0 ? 0 : -1;
}

int model_check_finite(const Model *m, const real *buf, const char *what, char *err, int errlen) {
    for (int t = 0; t < m->n_tensors; t++) {
        const ParamTensor *pt = &m->tensors[t];
        const real *p = buf + pt->offset;
        for (long i = 0; i < pt->size; i++)
            if (!isfinite(p[i])) {
                snprintf(err, errlen, "%s: tensor %s holds %s at index %ld", what, pt->name,
                         isnan(p[i]) ? "NaN" : p[i] > 0 ? "+Inf" : "-Inf", i);
                return -1;
            }
    }
    return 0;
}

void model_free(Model *m) {
    if (!m->shares_params) free(m->params);
    free(m->grads);
    free(m->adam_m);
    free(m->adam_v);
    free(m->tensors);
    free(m->layers);
    free(m->acts);
    for (int l = 0; m->pe && l < m->L; l++) pe_layer_free(&m->pe[l]);
    free(m->pe);
    free(m->act_mem);
    memset(m, 0, sizeof *m);
}

// ----------------------------------------------------------------------------------------------
// Activations

// Carves the activation buffers for B×T out of mem, or only counts them when mem is NULL (leaving the
// model's pointers as they are).
static long carve(Model *m, real *mem, int B, int T) {
    long used = 0;
    long BTC = (long)B * T * m->C, BTF = (long)B * T * m->F, BT = (long)B * T, BTV = (long)B * T * m->V;
#define TAKE(ptr, n)                          \
    do {                                      \
        if (mem) (ptr) = mem + used;          \
        used += (n);                          \
    } while (0)
    for (int l = 0; l < m->L; l++) {
        LayerActs *a = &m->acts[l];
        AttnPE *pe = &m->pe[l];
        pe->keep_positions = m->keep_positions;
        if (m->infer_rows && l >= 2) {
            // Inference keeps no activations for a backward: layer l works in the buffers of layer
            // l - 2, whose output was layer l - 1's input and is read no more. Only the keys and values
            // stay per layer (decoding reads the earlier rows' ones).
            if (mem) *a = m->acts[l - 2];
            TAKE(a->k, BTC);
            TAKE(a->v, BTC);
            if (mem) a->kc = NULL;
            if (pe->own_keys) TAKE(a->kc, BTC);
            continue;
        }
        TAKE(a->ln1, BTC);
        TAKE(a->ln1_mean, BT);
        TAKE(a->ln1_rstd, BT);
        TAKE(a->q, BTC);
        TAKE(a->k, BTC);
        TAKE(a->v, BTC);
        if (mem) a->kc = NULL;
        if (pe->own_keys) TAKE(a->kc, BTC);
        TAKE(a->att, BTC);
        if (mem) a->cache_mem = NULL;
        if (!m->infer_rows) TAKE(a->cache_mem, attention_cache_size(pe, B, T, m->C, m->H));
        TAKE(a->res1, BTC);
        TAKE(a->ln2, BTC);
        TAKE(a->ln2_mean, BT);
        TAKE(a->ln2_rstd, BT);
        TAKE(a->fc1, BTF);
        TAKE(a->act, BTF);
        TAKE(a->res2, BTC);
    }
    TAKE(m->emb, BTC);
    if (mem) m->sinusoid = NULL;
    if (m->abs_sinusoidal) TAKE(m->sinusoid, (long)T * m->C);
    TAKE(m->lnf, BTC);
    TAKE(m->lnf_mean, BT);
    TAKE(m->lnf_rstd, BT);
    TAKE(m->logits, BTV);
    TAKE(m->probs, BTV);
    TAKE(m->losses, BT);
    TAKE(m->scratch, BTC);
    if (m->infer_rows) {  // one attention cache for a block of rows of one sequence; no backward
        long cache = 0;
        for (int l = 0; l < m->L; l++) {
            long n = attention_cache_size_rows(&m->pe[l], 1, m->infer_rows < T ? m->infer_rows : T, T, m->C, m->H);
            cache = n > cache ? n : cache;
        }
        TAKE(m->infer_cache, cache);
    } else {
        TAKE(m->dx, BTC);
        TAKE(m->dtmp, BTC);
        TAKE(m->datt, BTC);
        TAKE(m->dwide, BTF);
        TAKE(m->dq, BTC);
        TAKE(m->dk, BTC);
        TAKE(m->dv, BTC);
        TAKE(m->dkc, BTC);
    }
#undef TAKE
    if (mem)
        for (int l = 0; l < m->L; l++) {
            m->pe[l].gate_keys = m->layers[l].wkc ? m->acts[l].kc : NULL;
            m->pe[l].dgate_keys = m->layers[l].wkc && !m->infer_rows ? m->dkc : NULL;
        }
    return used;
}

long model_activation_size(Model *m, int B, int T) { return carve(m, NULL, B, T); }

double model_activation_bytes(Model *m, int B, int T) {
    // The attention caches hold a few B·H·T² tables per layer; past 2^50 reals (which no machine
    // holds) carve's long arithmetic could overflow, and that lower bound is answer enough.
    double quadratic = m->infer_rows ? (double)m->H * T * (double)m->infer_rows : (double)B * m->H * T * (double)T * m->L;
    if (quadratic > 1125899906842624.0) return quadratic * sizeof(real);
    return (double)carve(m, NULL, B, T) * sizeof(real);
}

int model_check_length(const Model *m, int T, char *err, int errlen) {
    if (m->wpe && T > m->block_size) {
        snprintf(err, errlen,
                 "context %d is longer than the learned absolute position table (model.block_size %d); "
                 "learned absolute PE cannot run past its training length",
                 T, m->block_size);
        return -1;
    }
    for (int l = 0; l < m->L; l++)
        if (attention_check_length(&m->pe[l], T, err, errlen) != 0) return -1;
    return 0;
}

int model_prepare(Model *m, int B, int T, char *err, int errlen) {
    if (model_check_length(m, T, err, errlen) != 0) return -1;
    if (m->act_mem && B <= m->act_B && T <= m->act_T) return 0;
    // Keep the larger of the old and new dimension only where the new shape does not exceed the old
    // one in the other: evaluation at growing lengths with shrinking batches (8 × 128, then 1 × 2^20)
    // must not allocate 8 × 2^20.
    int nb = T <= m->act_T && m->act_B > B ? m->act_B : B, nt = B <= m->act_B && m->act_T > T ? m->act_T : T;
    long size = carve(m, NULL, nb, nt);
    free(m->act_mem);
    m->act_mem = alloc_zeroed(size, sizeof(real));
    if (!m->act_mem) {
        snprintf(err, errlen, "out of memory allocating activations for batch %d × context %d (%.1f GiB)", nb, nt,
                 size * sizeof(real) / 1073741824.0);
        m->act_B = m->act_T = 0;
        return -1;
    }
    carve(m, m->act_mem, nb, nt);
    m->act_B = nb;
    m->act_T = nt;
    m->act_size = size;
    return 0;
}

// ----------------------------------------------------------------------------------------------
// Forward and backward

static uint64_t site_key(const Model *m, int layer, int site) {
    return m->dropout_key ? rng_key(m->dropout_key, (uint64_t)layer + 1, (uint64_t)site, 0) : 0;
}

static real dropout_p(const Model *m) { return m->dropout_key ? (real)m->cfg.model.dropout : 0; }

// The layer's output: post-norm ends in LN2, pre-norm in the second residual sum.
static real *layer_output(const Model *m, int l) { return m->pre ? m->acts[l].res2 : m->acts[l].ln2; }
static const real *layer_input(const Model *m, int l) { return l == 0 ? m->emb : layer_output(m, l - 1); }

static void add_into(real *out, const real *a, const real *b, long n) {
#pragma omp parallel for schedule(static)
    for (long i = 0; i < n; i++) out[i] = a[i] + b[i];
}

// Inference attention: each sequence's query rows t0..T-1 in blocks of infer_rows rows, through the
// one shared cache (block [r0, r1) attends to keys 0..r1-1).
static void attention_blocks(Model *m, int l, const uint8_t *key_pad, int t0) {
    LayerActs *a = &m->acts[l];
    int T = m->T, C = m->C, H = m->H;
    for (int b = 0; b < m->B; b++) {
        long o = (long)b * T * C;
        AttnPE pe = m->pe[l];  // this sequence's gate keys
        if (pe.gate_keys) pe.gate_keys += o;
        for (int r0 = t0; r0 < T; r0 += m->infer_rows) {
            int r1 = r0 + m->infer_rows < T ? r0 + m->infer_rows : T;
            attention_cache_bind_rows(&a->cache, m->infer_cache, &pe, 1, r1 - r0, r1, C, H);
            attention_forward_rows(a->att + o, &a->cache, a->q + o, a->k + o, a->v + o,
                                   key_pad ? key_pad + (long)b * T : NULL, &pe, r1, r0, C, H);
        }
    }
}

// Rows t0..T-1 of the batch (t0 > 0 only for one sequence, whose earlier rows an earlier call left in
// the activations: the keys and values attention needs; and only in inference, so without dropout:
// the masks are indexed from row 0).
static void layer_forward(Model *m, int l, const uint8_t *key_pad, int t0) {
    const LayerParams *p = &m->layers[l];
    LayerActs *a = &m->acts[l];
    int B = m->B, T = m->T, C = m->C, F = m->F, H = m->H, N = B * T - t0;
    long BTC = (long)N * C, o = (long)t0 * C, of = (long)t0 * F;
    real pd = dropout_p(m);
    const real *x = layer_input(m, l) + o;
    int pre = m->pre;

    // attention block: pre-norm attends to LN1(x), post-norm to x
    const real *att_in = x;
    if (pre) {
        layernorm_forward(a->ln1 + o, a->ln1_mean + t0, a->ln1_rstd + t0, x, p->ln1_w, p->ln1_b, N, C);
        att_in = a->ln1 + o;
    }
    linear_forward(a->q + o, att_in, p->wq, p->bq, N, C, C);
    linear_forward(a->k + o, att_in, p->wk, p->bk, N, C, C);
    linear_forward(a->v + o, att_in, p->wv, p->bv, N, C, C);
    if (p->wkc) linear_forward(a->kc + o, att_in, p->wkc, p->bkc, N, C, C);
    const AttnPE *pe = &m->pe[l];
    if (m->infer_rows) {
        attention_blocks(m, l, key_pad, t0);
    } else {
        attention_cache_bind(&a->cache, a->cache_mem, pe, B, T, C, H);
        attention_forward(a->att, &a->cache, a->q, a->k, a->v, key_pad, pe, pd, site_key(m, l, SITE_ATTN_PROBS), B,
                          T, C, H);
    }
    linear_forward(m->scratch + o, a->att + o, p->wo, p->bo, N, C, C);
    dropout_forward(m->scratch + o, m->scratch + o, pd, site_key(m, l, SITE_ATTN_OUT), BTC);
    add_into(a->res1 + o, x, m->scratch + o, BTC);

    // feed-forward block: post-norm normalises the sum first, pre-norm normalises the FF input
    const real *ff_in, *ff_base;
    if (pre) {
        layernorm_forward(a->ln2 + o, a->ln2_mean + t0, a->ln2_rstd + t0, a->res1 + o, p->ln2_w, p->ln2_b, N, C);
        ff_in = a->ln2 + o;
        ff_base = a->res1 + o;
    } else {
        layernorm_forward(a->ln1 + o, a->ln1_mean + t0, a->ln1_rstd + t0, a->res1 + o, p->ln1_w, p->ln1_b, N, C);
        ff_in = ff_base = a->ln1 + o;
    }
    linear_forward(a->fc1 + of, ff_in, p->fc1_w, p->fc1_b, N, C, F);
    real *deriv = m->infer_rows ? NULL : a->fc1 + of;  // the activation's derivative replaces its input
    if (m->gelu)
        gelu_forward(a->act + of, deriv, a->fc1 + of, (long)N * F);
    else
        relu_forward(a->act + of, deriv, a->fc1 + of, (long)N * F);
    dropout_forward(a->act + of, a->act + of, pd, site_key(m, l, SITE_FF_HIDDEN), (long)N * F);
    linear_forward(m->scratch + o, a->act + of, p->fc2_w, p->fc2_b, N, F, C);
    dropout_forward(m->scratch + o, m->scratch + o, pd, site_key(m, l, SITE_FF_OUT), BTC);
    add_into(a->res2 + o, ff_base, m->scratch + o, BTC);
    if (!pre) layernorm_forward(a->ln2 + o, a->ln2_mean + t0, a->ln2_rstd + t0, a->res2 + o, p->ln2_w, p->ln2_b, N, C);
}

// The forward of rows t0..T-1 (all rows when t0 = 0; see model_forward_from).
static double forward_rows(Model *m, const Batch *b, uint64_t dropout_key, int t0) {
    m->B = b->B;
    m->T = b->T;
    m->dropout_key = dropout_key;
    int N = b->B * b->T - t0, C = m->C;
    long o = (long)t0 * C;
    const real *wpe = m->wpe;
    if (m->sinusoid) {
        pe_sinusoidal_table(m->sinusoid, b->T, C);
        wpe = m->sinusoid;
    }
    if (t0 == 0)
        embedding_forward(m->emb, b->tokens, m->wte, wpe, b->B, b->T, C);
    else  // one sequence's rows t0..T-1: positions t0.. of the table
        embedding_forward(m->emb + o, b->tokens + t0, m->wte, wpe ? wpe + o : NULL, 1, b->T - t0, C);
    dropout_forward(m->emb + o, m->emb + o, dropout_p(m), site_key(m, -1, SITE_EMBEDDING), (long)N * C);
    for (int l = 0; l < m->L; l++) layer_forward(m, l, b->key_pad, t0);
    const real *x = layer_output(m, m->L - 1) + o;
    if (m->pre) {
        layernorm_forward(m->lnf + o, m->lnf_mean + t0, m->lnf_rstd + t0, x, m->lnf_w, m->lnf_b, N, C);
        x = m->lnf + o;
    }
    linear_forward(m->logits + (long)t0 * m->V, x, m->lm_head, NULL, N, C, m->V);
    crossentropy_forward(m->losses + t0, m->probs + (long)t0 * m->V, m->logits + (long)t0 * m->V, b->targets + t0,
                         b->loss_mask + t0, N, m->V);
    double total = 0.0;
    for (int i = t0; i < t0 + N; i++) total += m->losses[i];
    return total;
}

double model_forward(Model *m, const Batch *b, uint64_t dropout_key) {
    return forward_rows(m, b, m->infer_rows ? 0 : dropout_key, 0);
}

double model_forward_from(Model *m, const Batch *b, int t0) {
    if (t0 > 0 && (b->B != 1 || !m->infer_rows || t0 >= b->T)) {
        fprintf(stderr, "model_forward_from: rows %d.. of a batch of %d × %d need inference mode and one sequence\n",
                t0, b->B, b->T);
        exit(1);
    }
    return forward_rows(m, b, 0, t0);
}

void model_set_inference(Model *m, int rows) {
    m->infer_rows = rows > 0 ? rows : 0;
    free(m->act_mem);  // model_prepare carves again for the new mode
    m->act_mem = NULL;
    m->act_B = m->act_T = 0;
}

// Zeroing and copying the backward's buffers (megabytes each) are split between the threads in
// fixed chunks: done by one thread, they left the others waiting, and the tiny model's 2-thread step
// spent a tenth of its time so.
enum { CHUNK = 16384 };
static void zero(real *p, long n) {
#pragma omp parallel for schedule(static) if (n > CHUNK)
    for (long i = 0; i < n; i += CHUNK) memset(p + i, 0, sizeof(real) * (n - i < CHUNK ? n - i : CHUNK));
}

static void copy(real *dst, const real *src, long n) {
#pragma omp parallel for schedule(static) if (n > CHUNK)
    for (long i = 0; i < n; i += CHUNK) memcpy(dst + i, src + i, sizeof(real) * (n - i < CHUNK ? n - i : CHUNK));
}

void model_zero_grad(Model *m) { zero(m->grads, m->n_params); }

// d(input of a dropout) from d(its output): dout itself when nothing is dropped (no pass over the data),
// else written into dst.
static const real *dropout_grad(real *dst, const real *dout, real p, uint64_t key, long n) {
    if (p == 0) return dout;
    zero(dst, n);
    dropout_backward(dst, dout, p, key, n);
    return dst;
}

// m->dx holds d(layer output) on entry and d(layer input) on exit.
static void layer_backward(Model *m, int l, const uint8_t *key_pad) {
    const LayerParams *p = &m->layers[l];
    LayerActs *a = &m->acts[l];
    int B = m->B, T = m->T, C = m->C, F = m->F, H = m->H, N = B * T;
    long BTC = (long)N * C, BTF = (long)N * F;
    real pd = dropout_p(m);
    const real *x = layer_input(m, l);
    int pre = m->pre;
    real *dx = m->dx, *dtmp = m->dtmp, *datt = m->datt, *dwide = m->dwide;

    // ---- feed-forward block
    // post: res2 = ln1 + drop(FF(ln1)), out = LN2(res2);  pre: out = res2 = res1 + drop(FF(LN2(res1)))
    if (!pre) {
        zero(dtmp, BTC);
        layernorm_backward(dtmp, GRAD(m, p->ln2_w), GRAD(m, p->ln2_b), dx, a->res2, p->ln2_w, a->ln2_mean,
                           a->ln2_rstd, N, C);
        copy(dx, dtmp, BTC);  // d res2, which is also the residual's share of d ln1
    }
    const real *dff_out = dropout_grad(datt, dx, pd, site_key(m, l, SITE_FF_OUT), BTC);
    linear_backward(dwide, GRAD(m, p->fc2_w), GRAD(m, p->fc2_b), dff_out, a->act, p->fc2_w, N, F, C, GRAD_SET);
    // d act, then d fc1, in place: neither is needed after
    real *dfc1 = dwide;
    dropout_backward(dfc1, dfc1, pd, site_key(m, l, SITE_FF_HIDDEN), BTF);
    activation_backward(dfc1, dfc1, a->fc1, BTF);
    if (pre) {
        linear_backward(dtmp, GRAD(m, p->fc1_w), GRAD(m, p->fc1_b), dfc1, a->ln2, p->fc1_w, N, C, F, GRAD_SET);
        layernorm_backward(dx, GRAD(m, p->ln2_w), GRAD(m, p->ln2_b), dtmp, a->res1, p->ln2_w, a->ln2_mean,
                           a->ln2_rstd, N, C);
    } else {
        linear_backward(dx, GRAD(m, p->fc1_w), GRAD(m, p->fc1_b), dfc1, a->ln1, p->fc1_w, N, C, F, GRAD_ADD);
        zero(dtmp, BTC);
        layernorm_backward(dtmp, GRAD(m, p->ln1_w), GRAD(m, p->ln1_b), dx, a->res1, p->ln1_w, a->ln1_mean,
                           a->ln1_rstd, N, C);
        copy(dx, dtmp, BTC);
    }
    // dx = d res1

    // ---- attention block: res1 = x + drop(Wo·att + bo), att = attention(q, k, v), q,k,v from att_in
    const real *dproj = dropout_grad(dtmp, dx, pd, site_key(m, l, SITE_ATTN_OUT), BTC);
    linear_backward(datt, GRAD(m, p->wo), GRAD(m, p->bo), dproj, a->att, p->wo, N, C, C, GRAD_SET);
    zero(m->dq, BTC);
    zero(m->dk, BTC);
    zero(m->dv, BTC);
    if (p->wkc) zero(m->dkc, BTC);
    attention_backward(m->dq, m->dk, m->dv, datt, &a->cache, a->q, a->k, a->v, key_pad, &m->pe[l], pd,
                       site_key(m, l, SITE_ATTN_PROBS), B, T, C, H);
    const real *att_in = pre ? a->ln1 : x;
    real *datt_in = pre ? dtmp : dx;  // pre-norm gathers d ln1 first, then LN1's backward adds into dx
    linear_backward(datt_in, GRAD(m, p->wq), GRAD(m, p->bq), m->dq, att_in, p->wq, N, C, C, pre ? GRAD_SET : GRAD_ADD);
    linear_backward(datt_in, GRAD(m, p->wk), GRAD(m, p->bk), m->dk, att_in, p->wk, N, C, C, GRAD_ADD);
    linear_backward(datt_in, GRAD(m, p->wv), GRAD(m, p->bv), m->dv, att_in, p->wv, N, C, C, GRAD_ADD);
    if (p->wkc)
        linear_backward(datt_in, GRAD(m, p->wkc), GRAD(m, p->bkc), m->dkc, att_in, p->wkc, N, C, C, GRAD_ADD);
    if (pre)
        layernorm_backward(dx, GRAD(m, p->ln1_w), GRAD(m, p->ln1_b), dtmp, x, p->ln1_w, a->ln1_mean, a->ln1_rstd,
                           N, C);
}

void model_backward(Model *m, const Batch *b, real loss_scale) {
    int N = b->B * b->T, C = m->C;
    long BTC = (long)N * C;
    real *dlogits = m->logits;  // the logits are not needed any more
    zero(dlogits, (long)N * m->V);
    crossentropy_backward(dlogits, m->probs, b->targets, b->loss_mask, loss_scale, N, m->V);
    const real *x = layer_output(m, m->L - 1);
    if (m->pre) {
        zero(m->dx, BTC);
        linear_backward(m->dtmp, GRAD(m, m->lm_head), NULL, dlogits, m->lnf, m->lm_head, N, C, m->V, GRAD_SET);
        layernorm_backward(m->dx, GRAD(m, m->lnf_w), GRAD(m, m->lnf_b), m->dtmp, x, m->lnf_w, m->lnf_mean,
                           m->lnf_rstd, N, C);
    } else {
        linear_backward(m->dx, GRAD(m, m->lm_head), NULL, dlogits, x, m->lm_head, N, C, m->V, GRAD_SET);
    }
    for (int l = m->L - 1; l >= 0; l--) layer_backward(m, l, b->key_pad);
    // forward: emb = dropout(wte[tokens] + wpe[t])
    const real *demb = dropout_grad(m->dtmp, m->dx, dropout_p(m), site_key(m, -1, SITE_EMBEDDING), BTC);
    embedding_backward(GRAD(m, m->wte), GRAD(m, m->wpe), demb, b->tokens, b->B, b->T, C);
}
