// Whole-model gradient checks (double build): every parameter's gradient from model_backward
// against central differences of model_forward, for both norm placements, both activations, every
// position encoding and option, with dropout and key padding; and gradient accumulation: one batch
// of B equals two accumulated micro-batches of B/2.
#include "check.h"
#include "model.h"

static const int V = 7, B = 2, T = 6;

typedef struct {
    Model *m;
    Batch *b;
    uint64_t key;
    double scale;
} Ctx;

static double loss_of(void *p) {
    Ctx *c = p;
    return c->scale * model_forward(c->m, c->b, c->key);
}

static void fill_batch(Batch *b, int nb, int nt, unsigned long long seed, int pad_tail) {
    b->B = nb;
    b->T = nt;
    b->tokens = calloc(nb * nt, sizeof(int));
    b->targets = calloc(nb * nt, sizeof(int));
    b->loss_mask = calloc(nb * nt, 1);
    b->metric_mask = calloc(nb * nt, 1);
    b->key_pad = calloc(nb * nt, 1);
    unsigned long long s = seed;
    for (int i = 0; i < nb * nt; i++) {
        b->tokens[i] = (int)((check_rand(&s) + 1) * 0.5 * V) % V;
        b->targets[i] = (int)((check_rand(&s) + 1) * 0.5 * V) % V;
        b->loss_mask[i] = check_rand(&s) > -0.6;
        b->metric_mask[i] = b->loss_mask[i];
    }
    if (pad_tail)  // the last position of the last sequence is padding: never a key, no loss
        for (int i = 0; i < nb; i++)
            if (i == nb - 1) {
                b->key_pad[i * nt + nt - 1] = 1;
                b->loss_mask[i * nt + nt - 1] = 0;
            }
}

static void free_batch(Batch *b) {
    free(b->tokens);
    free(b->targets);
    free(b->loss_mask);
    free(b->metric_mask);
    free(b->key_pad);
}

static Config small_config(const char *norm, const char *act, const char *pe, double dropout) {
    Config c;
    memset(&c, 0, sizeof c);
    c.model.n_layers = 2;
    c.model.d_model = 8;
    c.model.n_heads = 2;
    c.model.d_ff = 12;
    snprintf(c.model.norm, sizeof c.model.norm, "%s", norm);
    snprintf(c.model.activation, sizeof c.model.activation, "%s", act);
    c.model.tie_embeddings = 1;
    c.model.dropout = dropout;
    c.model.block_size = T;
    snprintf(c.pe.type, sizeof c.pe.type, "%s", pe);
    snprintf(c.pe.abs_kind, sizeof c.pe.abs_kind, "learned");
    snprintf(c.pe.rope_gates, sizeof c.pe.rope_gates, "rotated");
    c.pe.npos = 0;
    c.pe.every_k_layers = 1;
    c.pe.rope_base = 10000;
    c.run.seed = 3;
    return c;
}

// Randomises the parameters that start at zero or one (CoPE tables, LayerNorm) so every path
// carries a gradient, runs the backward and checks all parameters.
static void check_model(const char *label, Config cfg, int pad) {
    Model m;
    char err[256];
    CHECK(model_create(&m, &cfg, V, err, sizeof err) == 0, "%s: %s", label, err);
    CHECK(model_prepare(&m, B, T, err, sizeof err) == 0, "%s: %s", label, err);
    unsigned long long s = 99;
    for (int k = 0; k < m.n_tensors; k++) {
        ParamTensor *t = &m.tensors[k];
        if (t->init == 'z' || t->init == 'o')
            for (long i = 0; i < t->size; i++) m.params[t->offset + i] = (t->init == 'o') + 0.5 * check_rand(&s);
    }
    Batch b;
    fill_batch(&b, B, T, 7, pad);
    uint64_t key = cfg.model.dropout > 0 ? 12345 : 0;
    double scale = 1.0 / 9;
    model_zero_grad(&m);
    model_forward(&m, &b, key);
    model_backward(&m, &b, scale);
    double *analytic = malloc(sizeof(double) * m.n_params);
    memcpy(analytic, m.grads, sizeof(double) * m.n_params);
    Ctx c = {&m, &b, key, scale};
    char what[128];
    snprintf(what, sizeof what, "%s (%ld params)", label, m.n_params);
    // Tolerance: double central differences at h=1e-5 on an O(1) loss are off by ~1e-10 (h² times
    // the third derivative, plus 1e-16/h rounding); gradients here are 1e-6..1e-2, so a wrong or
    // missing term shows up orders of magnitude above atol 1e-9. ReLU kinks are measure-zero for
    // random inputs.
    check_gradient(what, loss_of, &c, m.params, analytic, m.n_params, 1e-5, 1e-9, 1e-6);
    free(analytic);
    free_batch(&b);
    model_free(&m);
}

static void test_post_norm_relu_none(void) { check_model("post relu none", small_config("post", "relu", "none", 0), 0); }
static void test_pre_norm_gelu_abs(void) { check_model("pre gelu abs", small_config("pre", "gelu", "abs", 0), 1); }
static void test_post_norm_dropout_abs(void) { check_model("post dropout abs", small_config("post", "gelu", "abs", 0.2), 1); }
static void test_pre_norm_dropout_cope(void) { check_model("pre dropout cope", small_config("pre", "gelu", "cope", 0.2), 1); }
static void test_untied_sinusoidal(void) {
    Config c = small_config("pre", "gelu", "abs", 0);
    c.model.tie_embeddings = 0;
    snprintf(c.pe.abs_kind, sizeof c.pe.abs_kind, "sinusoidal");
    check_model("pre untied sinusoidal", c, 0);
}
static void test_cope_post(void) { check_model("post cope", small_config("post", "relu", "cope", 0), 1); }
static void test_cope_options(void) {
    Config c = small_config("post", "gelu", "cope", 0);
    c.pe.npos = 3;  // clamped positions
    c.pe.nodiv = 1;
    c.pe.sep_keys = 1;
    c.pe.shared_table = 1;
    check_model("post cope npos3 nodiv sep_keys shared", c, 1);
}
static void test_rel(void) { check_model("pre rel", small_config("pre", "gelu", "rel", 0), 1); }
static void test_rope(void) { check_model("post rope", small_config("post", "gelu", "rope", 0), 1); }
static void test_cope_rel_every2(void) {
    Config c = small_config("pre", "gelu", "cope+rel", 0);
    c.pe.every_k_layers = 2;
    check_model("pre cope+rel every 2", c, 1);
}
static void test_cope_rope(void) { check_model("pre cope+rope", small_config("pre", "gelu", "cope+rope", 0), 1); }
static void test_abs_rel(void) { check_model("post abs+rel", small_config("post", "gelu", "abs+rel", 0), 0); }

// One batch of B with normaliser N equals two micro-batches of B/2 each scaled by 1/N (no
// dropout: masks are drawn per micro-batch, so with dropout the two runs draw different masks).
static void test_accumulation(void) {
    Config cfg = small_config("post", "gelu", "cope", 0.1);
    Model m;
    char err[256];
    CHECK(model_create(&m, &cfg, V, err, sizeof err) == 0, "%s", err);
    CHECK(model_prepare(&m, 4, T, err, sizeof err) == 0, "%s", err);
    Batch full;
    fill_batch(&full, 4, T, 11, 1);
    double n = 0;
    for (int i = 0; i < 4 * T; i++) n += full.loss_mask[i];
    model_zero_grad(&m);
    double loss_full = model_forward(&m, &full, 0);
    model_backward(&m, &full, 1.0 / n);
    double *g_full = malloc(sizeof(double) * m.n_params);
    memcpy(g_full, m.grads, sizeof(double) * m.n_params);
    model_zero_grad(&m);
    double loss_halves = 0;
    for (int h = 0; h < 2; h++) {
        long o = (long)h * 2 * T;
        Batch half = {.B = 2, .T = T, .tokens = full.tokens + o, .targets = full.targets + o,
                      .loss_mask = full.loss_mask + o, .metric_mask = full.metric_mask + o, .key_pad = full.key_pad + o};
        loss_halves += model_forward(&m, &half, 0);
        model_backward(&m, &half, 1.0 / n);
    }
    CHECK(fabs(loss_full - loss_halves) < 1e-12 * fabs(loss_full), "loss %.17g vs %.17g", loss_full, loss_halves);
    check_close("accumulated gradient vs full batch", m.grads, g_full, m.n_params, 1e-14, 1e-10);
    free(g_full);
    free_batch(&full);
    model_free(&m);
}

int main(void) {
    RUN(test_post_norm_relu_none);
    RUN(test_pre_norm_gelu_abs);
    RUN(test_post_norm_dropout_abs);
    RUN(test_pre_norm_dropout_cope);
    RUN(test_untied_sinusoidal);
    RUN(test_cope_post);
    RUN(test_cope_options);
    RUN(test_rel);
    RUN(test_rope);
    RUN(test_cope_rel_every2);
    RUN(test_cope_rope);
    RUN(test_abs_rel);
    RUN(test_accumulation);
    return check_summary("grad_model");
}
