// Gradient checks of the layers in layers.c, built in double (real = double).
//
// Each backward is held to central finite differences of a scalar loss built from its forward:
// L = sum(out * G) with a fixed random G (so dL/dout = G), or, for the cross-entropy, its own
// scaled sum of masked losses. Each forward is also compared with a plain reference, since a
// forward and backward that share one wrong formula would agree with each other.
//
// Tolerances of the gradient checks: h = 1e-6 in double. The losses here are O(1..10), so the
// rounding error of (L(x+h) - L(x-h)) / 2h is about eps * |L| / h ~ 1e-16 * 10 / 1e-6 = 1e-9, and
// the truncation error h^2 * f''' / 6 ~ 1e-12 for these smooth functions (ReLU is sampled away
// from its kink). So atol 1e-8 (ten times the rounding noise) and rtol 1e-6 pass a correct
// backward with margin, while a wrong formula (a missing term, a transposed weight, a wrong scale)
// is off by O(0.01..1) in absolute terms and fails by orders of magnitude.
#include <stdint.h>

#include "check.h"
#include "layers.h"
#include "rng.h"

#define H 1e-6
#define ATOL 1e-8
#define RTOL 1e-6

static unsigned long long seed = 0x1234abcdULL;

static double *alloc_fill(long n, double scale) {
    double *x = malloc(sizeof(double) * n);
    check_fill(x, n, scale, &seed);
    return x;
}
static double *alloc_zero(long n) { return calloc(n, sizeof(double)); }

// Exact equality (check_close's mixed tolerance is 0/0 at zero tolerance); prints the first difference.
static void check_exact(const char *what, const double *got, const double *want, long n) {
    long first = -1;
    for (long i = 0; i < n && first < 0; i++)
        if (memcmp(&got[i], &want[i], sizeof(double)) != 0) first = i;
    if (first < 0)
        printf("     %-40s bit-identical (%ld values)\n", what, n);
    CHECK(first < 0, "%s: first difference at [%ld]: got %.17g, want %.17g", what, first, first < 0 ? 0.0 : got[first],
          first < 0 ? 0.0 : want[first]);
}

static double dot(const double *a, const double *b, long n) {
    double s = 0.0;
    for (long i = 0; i < n; i++) s += a[i] * b[i];
    return s;
}

// The accumulate contract: a backward into a buffer pre-filled with P must leave P + g, where g is
// what it gives from zero. `grad` is g; `acc` is what the backward left in a buffer that held `pre`.
static void check_accumulated(const char *what, const double *acc, const double *pre, const double *grad, long n) {
    double *want = malloc(sizeof(double) * n);
    for (long i = 0; i < n; i++) want[i] = pre[i] + grad[i];
    check_close(what, acc, want, n, 1e-13, 1e-13);
    free(want);
}

// ---------------------------------------------------------------------------------------------
// Embedding

typedef struct {
    int N, T, C, V, TP;  // TP: rows of wpe (>= T)
    int *tokens;
    double *wte, *wpe, *G, *out;
    int use_wpe;
} EmbCtx;

static double emb_loss(void *p) {
    EmbCtx *e = p;
    embedding_forward(e->out, e->tokens, e->wte, e->use_wpe ? e->wpe : NULL, e->N, e->T, e->C);
    return dot(e->out, e->G, (long)e->N * e->T * e->C);
}

static void embedding_case(int use_wpe) {
    EmbCtx e = {.N = 3, .T = 5, .C = 18, .V = 6, .TP = 8, .use_wpe = use_wpe};  // C > 16: two column blocks
    long rows = (long)e.N * e.T, n = rows * e.C;
    e.tokens = malloc(sizeof(int) * rows);
    // Repeated tokens, token 4 never used (its gradient must stay zero).
    const int toks[] = {0, 1, 2, 1, 1, 3, 5, 0, 0, 2, 5, 5, 1, 3, 0};
    memcpy(e.tokens, toks, sizeof toks);
    e.wte = alloc_fill((long)e.V * e.C, 1.0);
    e.wpe = alloc_fill((long)e.TP * e.C, 1.0);
    e.G = alloc_fill(n, 1.0);
    e.out = alloc_zero(n);

    // Forward against the definition.
    emb_loss(&e);
    double *want = alloc_zero(n);
    for (long r = 0; r < rows; r++)
        for (int c = 0; c < e.C; c++)
            want[r * e.C + c] = e.wte[e.tokens[r] * e.C + c] + (use_wpe ? e.wpe[(r % e.T) * e.C + c] : 0.0);
    check_exact(use_wpe ? "embedding forward (wte+wpe)" : "embedding forward (wte)", e.out, want, n);

    double *dwte = alloc_zero((long)e.V * e.C), *dwpe = alloc_zero((long)e.TP * e.C);
    embedding_backward(dwte, use_wpe ? dwpe : NULL, e.G, e.tokens, e.N, e.T, e.C);
    check_gradient("dwte", emb_loss, &e, e.wte, dwte, (long)e.V * e.C, H, ATOL, RTOL);
    if (use_wpe) check_gradient("dwpe (rows >= T must stay 0)", emb_loss, &e, e.wpe, dwpe, (long)e.TP * e.C, H, ATOL, RTOL);

    // Accumulate contract.
    double *pre_te = alloc_fill((long)e.V * e.C, 1.0), *pre_pe = alloc_fill((long)e.TP * e.C, 1.0);
    double *acc_te = malloc(sizeof(double) * e.V * e.C), *acc_pe = malloc(sizeof(double) * e.TP * e.C);
    memcpy(acc_te, pre_te, sizeof(double) * e.V * e.C);
    memcpy(acc_pe, pre_pe, sizeof(double) * e.TP * e.C);
    embedding_backward(acc_te, use_wpe ? acc_pe : NULL, e.G, e.tokens, e.N, e.T, e.C);
    check_accumulated("dwte accumulates", acc_te, pre_te, dwte, (long)e.V * e.C);
    if (use_wpe) check_accumulated("dwpe accumulates", acc_pe, pre_pe, dwpe, (long)e.TP * e.C);

    free(e.tokens), free(e.wte), free(e.wpe), free(e.G), free(e.out), free(want);
    free(dwte), free(dwpe), free(pre_te), free(pre_pe), free(acc_te), free(acc_pe);
}

static void test_embedding_with_wpe(void) { embedding_case(1); }
static void test_embedding_without_wpe(void) { embedding_case(0); }

// ---------------------------------------------------------------------------------------------
// LayerNorm

typedef struct {
    int N, C;
    double *inp, *w, *b, *G, *out, *mean, *rstd;
} LnCtx;

static double ln_loss(void *p) {
    LnCtx *l = p;
    layernorm_forward(l->out, l->mean, l->rstd, l->inp, l->w, l->b, l->N, l->C);
    return dot(l->out, l->G, (long)l->N * l->C);
}

static void test_layernorm(void) {
    LnCtx l = {.N = 35, .C = 21};  // N > 32: the weight gradients sum two row chunks, one partial
    long n = (long)l.N * l.C;
    l.inp = alloc_fill(n, 2.0);
    for (long i = 0; i < n; i++) l.inp[i] += 0.1 * (double)(i / l.C);  // rows with different means
    l.w = alloc_fill(l.C, 1.0);
    l.b = alloc_fill(l.C, 1.0);
    l.G = alloc_fill(n, 1.0);
    l.out = alloc_zero(n), l.mean = alloc_zero(l.N), l.rstd = alloc_zero(l.N);

    // Forward against the definition (two-pass mean and biased variance, eps 1e-5).
    ln_loss(&l);
    double *want = alloc_zero(n), *want_mean = alloc_zero(l.N), *want_rstd = alloc_zero(l.N);
    for (int r = 0; r < l.N; r++) {
        double m = 0, v = 0;
        for (int c = 0; c < l.C; c++) m += l.inp[r * l.C + c];
        m /= l.C;
        for (int c = 0; c < l.C; c++) v += (l.inp[r * l.C + c] - m) * (l.inp[r * l.C + c] - m);
        v /= l.C;
        want_mean[r] = m, want_rstd[r] = 1.0 / sqrt(v + 1e-5);
        for (int c = 0; c < l.C; c++) want[r * l.C + c] = (l.inp[r * l.C + c] - m) * want_rstd[r] * l.w[c] + l.b[c];
    }
    check_close("layernorm forward out", l.out, want, n, 1e-14, 1e-13);
    check_close("layernorm forward mean", l.mean, want_mean, l.N, 1e-14, 1e-13);
    check_close("layernorm forward rstd", l.rstd, want_rstd, l.N, 1e-14, 1e-13);

    double *dinp = alloc_zero(n), *dw = alloc_zero(l.C), *db = alloc_zero(l.C);
    layernorm_backward(dinp, dw, db, l.G, l.inp, l.w, l.mean, l.rstd, l.N, l.C);
    check_gradient("layernorm dinp", ln_loss, &l, l.inp, dinp, n, H, ATOL, RTOL);
    check_gradient("layernorm dweight", ln_loss, &l, l.w, dw, l.C, H, ATOL, RTOL);
    check_gradient("layernorm dbias", ln_loss, &l, l.b, db, l.C, H, ATOL, RTOL);

    // Accumulate contract, and each gradient alone (NULL for the others). check_gradient's last
    // evaluation left mean/rstd of a perturbed input: recompute them at the unperturbed one.
    ln_loss(&l);
    double *pre_i = alloc_fill(n, 1.0), *pre_w = alloc_fill(l.C, 1.0), *pre_b = alloc_fill(l.C, 1.0);
    double *acc_i = malloc(sizeof(double) * n), *acc_w = malloc(sizeof(double) * l.C), *acc_b = malloc(sizeof(double) * l.C);
    memcpy(acc_i, pre_i, sizeof(double) * n), memcpy(acc_w, pre_w, sizeof(double) * l.C), memcpy(acc_b, pre_b, sizeof(double) * l.C);
    layernorm_backward(acc_i, NULL, NULL, l.G, l.inp, l.w, l.mean, l.rstd, l.N, l.C);
    layernorm_backward(NULL, acc_w, NULL, l.G, l.inp, l.w, l.mean, l.rstd, l.N, l.C);
    layernorm_backward(NULL, NULL, acc_b, l.G, l.inp, l.w, l.mean, l.rstd, l.N, l.C);
    check_accumulated("layernorm dinp accumulates", acc_i, pre_i, dinp, n);
    check_accumulated("layernorm dweight accumulates", acc_w, pre_w, dw, l.C);
    check_accumulated("layernorm dbias accumulates", acc_b, pre_b, db, l.C);

    free(l.inp), free(l.w), free(l.b), free(l.G), free(l.out), free(l.mean), free(l.rstd);
    free(want), free(want_mean), free(want_rstd), free(dinp), free(dw), free(db);
    free(pre_i), free(pre_w), free(pre_b), free(acc_i), free(acc_w), free(acc_b);
}

// ---------------------------------------------------------------------------------------------
// Linear

typedef struct {
    int N, IC, OC;
    double *inp, *w, *b, *G, *out;
} LinCtx;

static double lin_loss(void *p) {
    LinCtx *l = p;
    linear_forward(l->out, l->inp, l->w, l->b, l->N, l->IC, l->OC);
    return dot(l->out, l->G, (long)l->N * l->OC);
}

static void linear_case(int use_bias) {
    LinCtx l = {.N = 37, .IC = 7, .OC = 19};  // all different (a transpose cannot pass); N > 32: two row chunks
    long ni = (long)l.N * l.IC, no = (long)l.N * l.OC, nw = (long)l.OC * l.IC;
    l.inp = alloc_fill(ni, 1.0), l.w = alloc_fill(nw, 1.0), l.b = use_bias ? alloc_fill(l.OC, 1.0) : NULL;
    l.G = alloc_fill(no, 1.0), l.out = alloc_fill(no, 100.0);  // garbage in out: forward must overwrite

    lin_loss(&l);
    double *want = alloc_zero(no);
    for (int n = 0; n < l.N; n++)
        for (int o = 0; o < l.OC; o++) {
            double s = use_bias ? l.b[o] : 0.0;
            for (int i = 0; i < l.IC; i++) s += l.inp[n * l.IC + i] * l.w[o * l.IC + i];
            want[n * l.OC + o] = s;
        }
    check_close(use_bias ? "linear forward (bias)" : "linear forward (no bias)", l.out, want, no, 1e-14, 1e-13);

    double *dinp = alloc_zero(ni), *dw = alloc_zero(nw), *db = alloc_zero(l.OC);
    linear_backward(dinp, dw, use_bias ? db : NULL, l.G, l.inp, l.w, l.N, l.IC, l.OC, GRAD_ADD);
    check_gradient("linear dinp", lin_loss, &l, l.inp, dinp, ni, H, ATOL, RTOL);
    check_gradient("linear dweight", lin_loss, &l, l.w, dw, nw, H, ATOL, RTOL);
    if (use_bias) check_gradient("linear dbias", lin_loss, &l, l.b, db, l.OC, H, ATOL, RTOL);

    double *pre_i = alloc_fill(ni, 1.0), *pre_w = alloc_fill(nw, 1.0), *pre_b = alloc_fill(l.OC, 1.0);
    double *acc_i = malloc(sizeof(double) * ni), *acc_w = malloc(sizeof(double) * nw), *acc_b = malloc(sizeof(double) * l.OC);
    memcpy(acc_i, pre_i, sizeof(double) * ni), memcpy(acc_w, pre_w, sizeof(double) * nw), memcpy(acc_b, pre_b, sizeof(double) * l.OC);
    linear_backward(acc_i, acc_w, use_bias ? acc_b : NULL, l.G, l.inp, l.w, l.N, l.IC, l.OC, GRAD_ADD);
    check_accumulated("linear dinp accumulates", acc_i, pre_i, dinp, ni);
    check_accumulated("linear dweight accumulates", acc_w, pre_w, dw, nw);
    if (use_bias) check_accumulated("linear dbias accumulates", acc_b, pre_b, db, l.OC);

    // GRAD_SET: dinp written whatever it held before, the weight gradients added to as ever
    double *set_i = alloc_fill(ni, 100.0);
    memcpy(acc_w, pre_w, sizeof(double) * nw), memcpy(acc_b, pre_b, sizeof(double) * l.OC);
    linear_backward(set_i, acc_w, use_bias ? acc_b : NULL, l.G, l.inp, l.w, l.N, l.IC, l.OC, GRAD_SET);
    check_close("linear dinp set (GRAD_SET)", set_i, dinp, ni, 0, 1e-15);
    check_accumulated("  ... dweight still accumulates", acc_w, pre_w, dw, nw);
    if (use_bias) check_accumulated("  ... dbias still accumulates", acc_b, pre_b, db, l.OC);
    free(set_i);

    free(l.inp), free(l.w), free(l.b), free(l.G), free(l.out), free(want), free(dinp), free(dw), free(db);
    free(pre_i), free(pre_w), free(pre_b), free(acc_i), free(acc_w), free(acc_b);
}

static void test_linear_with_bias(void) { linear_case(1); }
static void test_linear_without_bias(void) { linear_case(0); }

// ---------------------------------------------------------------------------------------------
// Elementwise: ReLU, GELU, dropout share one context.

typedef struct {
    long n;
    double *inp, *G, *out;
    void (*forward)(double *out, const double *inp, long n, void *extra);
    void *extra;
} EwCtx;

static double ew_loss(void *p) {
    EwCtx *e = p;
    e->forward(e->out, e->inp, e->n, e->extra);
    return dot(e->out, e->G, e->n);
}

static void relu_fw(double *out, const double *inp, long n, void *extra) {
    (void)extra;
    relu_forward(out, NULL, inp, n);
}
static void gelu_fw(double *out, const double *inp, long n, void *extra) {
    (void)extra;
    gelu_forward(out, NULL, inp, n);
}

typedef struct {
    double p;
    uint64_t key;
} DropArgs;
static void dropout_fw(double *out, const double *inp, long n, void *extra) {
    DropArgs *d = extra;
    dropout_forward(out, inp, d->p, d->key, n);
}

// Finite-difference check of one elementwise backward, and its accumulate contract.
typedef void (*ew_backward_fn)(double *dinp, const double *dout, const double *inp, long n, void *extra);
static void ew_check(const char *what, EwCtx *e, ew_backward_fn backward) {
    double *dinp = alloc_zero(e->n), *pre = alloc_fill(e->n, 1.0), *acc = malloc(sizeof(double) * e->n);
    backward(dinp, e->G, e->inp, e->n, e->extra);
    check_gradient(what, ew_loss, e, e->inp, dinp, e->n, H, ATOL, RTOL);
    memcpy(acc, pre, sizeof(double) * e->n);
    backward(acc, e->G, e->inp, e->n, e->extra);
    check_accumulated("  ... accumulates", acc, pre, dinp, e->n);
    free(dinp), free(pre), free(acc);
}

// The activations' backward from the derivative their forward writes (into a copy of the input: the
// model's call, in place of its input).
typedef void (*activation_fw_fn)(double *out, double *deriv, const double *inp, long n);
static void activation_bw(activation_fw_fn forward, double *dinp, const double *dout, const double *inp, long n) {
    double *out = malloc(sizeof(double) * n), *deriv = malloc(sizeof(double) * n);
    memcpy(deriv, inp, sizeof(double) * n);
    forward(out, deriv, deriv, n);
    activation_backward(dinp, dout, deriv, n);
    free(out), free(deriv);
}
// Called in place the backward overwrites: d = dout·deriv; and the forward writes the same values
// whether deriv is its own buffer or the input itself.
static void check_activation_in_place(const char *what, activation_fw_fn forward, const EwCtx *e) {
    long n = e->n;
    double *out = alloc_zero(n), *deriv = alloc_zero(n), *out2 = alloc_zero(n), *deriv2 = malloc(sizeof(double) * n);
    double *d = malloc(sizeof(double) * n), *want = alloc_zero(n);
    forward(out, deriv, e->inp, n);
    memcpy(deriv2, e->inp, sizeof(double) * n);
    forward(out2, deriv2, deriv2, n);
    int same = memcmp(out, out2, sizeof(double) * n) == 0 && memcmp(deriv, deriv2, sizeof(double) * n) == 0;
    CHECK(same, "%s: the forward with deriv in place of its input differs", what);
    // where the derivative is 0 (ReLU's inactive units) the gradient is 0, even from an infinite dout
    int zeros = 0;
    for (long i = 0; i < n; i++) {
        d[i] = deriv[i] == 0 ? INFINITY : e->G[i];
        want[i] = deriv[i] == 0 ? 0.0 : e->G[i] * deriv[i];
        zeros += deriv[i] == 0;
    }
    activation_backward(d, d, deriv, n);
    check_close("  ... in place, overwrites", d, want, n, 0, 0);
    if (zeros) printf("     (%d inactive units given an infinite dout)\n", zeros);
    free(out), free(deriv), free(out2), free(deriv2), free(d), free(want);
}

static void relu_bw(double *dinp, const double *dout, const double *inp, long n, void *extra) {
    (void)extra;
    activation_bw(relu_forward, dinp, dout, inp, n);
}
static void gelu_bw(double *dinp, const double *dout, const double *inp, long n, void *extra) {
    (void)extra;
    activation_bw(gelu_forward, dinp, dout, inp, n);
}
static void dropout_bw(double *dinp, const double *dout, const double *inp, long n, void *extra) {
    (void)inp;
    DropArgs *d = extra;
    dropout_backward(dinp, dout, d->p, d->key, n);
}

static void test_relu(void) {
    EwCtx e = {.n = 64, .forward = relu_fw};
    e.inp = alloc_fill(e.n, 1.0), e.G = alloc_fill(e.n, 1.0), e.out = alloc_zero(e.n);
    for (long i = 0; i < e.n; i++) e.inp[i] += e.inp[i] >= 0 ? 0.05 : -0.05;  // |x| >= 0.05 >> h: no kink
    ew_loss(&e);
    int ok = 1;
    for (long i = 0; i < e.n; i++) ok &= e.out[i] == (e.inp[i] > 0 ? e.inp[i] : 0.0);
    CHECK(ok, "relu forward differs from max(x, 0)");
    ew_check("relu dinp", &e, relu_bw);
    check_activation_in_place("relu", relu_forward, &e);
    free(e.inp), free(e.G), free(e.out);
}

static void test_gelu(void) {
    EwCtx e = {.n = 81, .forward = gelu_fw};
    e.inp = alloc_zero(e.n), e.G = alloc_fill(e.n, 1.0), e.out = alloc_zero(e.n);
    for (long i = 0; i < e.n; i++) e.inp[i] = -6.0 + 0.15 * (double)i + 0.01;  // [-6, 6]
    ew_loss(&e);
    // Forward against x * Phi(x) with erf, and two known values: gelu(1) = Phi(1), gelu(-1) = -Phi(-1).
    double *want = alloc_zero(e.n);
    for (long i = 0; i < e.n; i++) want[i] = 0.5 * e.inp[i] * (1.0 + erf(e.inp[i] / sqrt(2.0)));
    check_close("gelu forward vs x*(1+erf(x/sqrt2))/2", e.out, want, e.n, 1e-15, 1e-13);
    double x[2] = {1.0, -1.0}, y[2], known[2] = {0.8413447460685429, -0.15865525393145705};
    gelu_forward(y, NULL, x, 2);
    check_close("gelu(1), gelu(-1) known values", y, known, 2, 0, 1e-15);
    ew_check("gelu dinp", &e, gelu_bw);
    check_activation_in_place("gelu", gelu_forward, &e);
    free(e.inp), free(e.G), free(e.out), free(want);
}

static void test_dropout(void) {
    DropArgs d = {.p = 0.3, .key = rng_key(7, 1, 2, 3)};
    EwCtx e = {.n = 200, .forward = dropout_fw, .extra = &d};
    e.inp = alloc_fill(e.n, 1.0), e.G = alloc_fill(e.n, 1.0), e.out = alloc_zero(e.n);
    ew_loss(&e);
    long kept = 0;
    int ok = 1;
    for (long i = 0; i < e.n; i++) {
        int k = dropout_keep(d.p, d.key, i);
        kept += k;
        ok &= e.out[i] == (k ? e.inp[i] * (1.0 / (1.0 - d.p)) : 0.0);
    }
    CHECK(ok, "dropout forward is not keep(i) ? x / (1 - p) : 0");
    CHECK(kept > 100 && kept < e.n, "dropout kept %ld of %ld at p = 0.3: the check needs both kinds", kept, e.n);
    ew_check("dropout dinp (p = 0.3, fixed key)", &e, dropout_bw);
    free(e.inp), free(e.G), free(e.out);
}

// ---------------------------------------------------------------------------------------------
// Cross-entropy

typedef struct {
    int N, V;
    double scale;
    double *logits, *probs, *losses;
    int *targets;
    uint8_t *mask;
} CeCtx;

static double ce_loss(void *p) {
    CeCtx *c = p;
    crossentropy_forward(c->losses, c->probs, c->logits, c->targets, c->mask, c->N, c->V);
    double s = 0.0;
    for (int n = 0; n < c->N; n++) s += c->losses[n];
    return c->scale * s;
}

static void test_crossentropy(void) {
    CeCtx c = {.N = 6, .V = 11, .scale = 0.37};
    long nv = (long)c.N * c.V;
    c.logits = alloc_fill(nv, 3.0);
    c.logits[2 * c.V + 4] = 40.0;  // a dominant logit: exp(40) would lose precision without the max shift
    c.probs = alloc_zero(nv), c.losses = alloc_fill(c.N, 5.0);
    int targets[6] = {3, 0, 7, 10, 5, 1};
    uint8_t mask[6] = {1, 0, 1, 1, 0, 1};
    c.targets = targets, c.mask = mask;

    // Forward against -log softmax computed directly, and 0 on masked-out rows.
    ce_loss(&c);
    double want[6], *want_p = alloc_zero(nv);
    for (int n = 0; n < c.N; n++) {
        double mx = -INFINITY, s = 0;
        for (int v = 0; v < c.V; v++) mx = fmax(mx, c.logits[n * c.V + v]);
        for (int v = 0; v < c.V; v++) s += exp(c.logits[n * c.V + v] - mx);
        for (int v = 0; v < c.V; v++) want_p[n * c.V + v] = exp(c.logits[n * c.V + v] - mx) / s;
        want[n] = mask[n] ? -log(want_p[n * c.V + targets[n]]) : 0.0;
    }
    check_close("crossentropy forward losses", c.losses, want, c.N, 1e-14, 1e-12);
    check_close("crossentropy forward probs", c.probs, want_p, nv, 1e-16, 1e-13);

    double *dl = alloc_zero(nv);
    crossentropy_backward(dl, c.probs, c.targets, c.mask, c.scale, c.N, c.V);
    check_gradient("crossentropy dlogits (masked rows, scale 0.37)", ce_loss, &c, c.logits, dl, nv, H, ATOL, RTOL);

    ce_loss(&c);  // probs at the unperturbed logits again (check_gradient left them perturbed)
    double *pre = alloc_fill(nv, 1.0), *acc = malloc(sizeof(double) * nv);
    memcpy(acc, pre, sizeof(double) * nv);
    crossentropy_backward(acc, c.probs, c.targets, c.mask, c.scale, c.N, c.V);
    check_accumulated("crossentropy dlogits accumulates", acc, pre, dl, nv);

    // mask NULL means every row.
    uint8_t all[6] = {1, 1, 1, 1, 1, 1};
    double *with_all = alloc_zero(nv), *with_null = alloc_zero(nv), l_all[6], l_null[6];
    crossentropy_forward(l_all, c.probs, c.logits, c.targets, all, c.N, c.V);
    crossentropy_backward(with_all, c.probs, c.targets, all, c.scale, c.N, c.V);
    crossentropy_forward(l_null, c.probs, c.logits, c.targets, NULL, c.N, c.V);
    crossentropy_backward(with_null, c.probs, c.targets, NULL, c.scale, c.N, c.V);
    check_exact("crossentropy mask NULL = all rows (losses)", l_null, l_all, c.N);
    check_exact("crossentropy mask NULL = all rows (dlogits)", with_null, with_all, nv);

    free(c.logits), free(c.probs), free(c.losses), free(want_p), free(dl), free(pre), free(acc);
    free(with_all), free(with_null);
}

int main(void) {
    printf("layers gradient checks (real = %s, h %.0e, atol %.0e, rtol %.0e)\n", REAL_NAME, H, ATOL, RTOL);
    RUN(test_embedding_with_wpe);
    RUN(test_embedding_without_wpe);
    RUN(test_layernorm);
    RUN(test_linear_with_bias);
    RUN(test_linear_without_bias);
    RUN(test_relu);
    RUN(test_gelu);
    RUN(test_dropout);
    RUN(test_crossentropy);
    return check_summary("grad_layers");
}
