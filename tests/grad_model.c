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
    batch_alloc(b, nb, nt);
    batch_begin(b, nb, nt);
    unsigned long long s = seed;
    for (int i = 0; i < nb * nt; i++) {
        b->tokens[i] = (int)((check_rand(&s) + 1) * 0.5 * V) % V;
        b->targets[i] = (int)((check_rand(&s) + 1) * 0.5 * V) % V;
        b->loss_mask[i] = check_rand(&s) > -0.6;
        b->metric_mask[i] = b->loss_mask[i];
        b->key_pad[i] = 0;
    }
    if (pad_tail) {  // the last position of the last sequence is padding: never a key, no loss
        b->key_pad[(nb - 1) * nt + nt - 1] = 1;
        b->loss_mask[(nb - 1) * nt + nt - 1] = 0;
    }
}

// A small model's config through the production loader: 2 layers of width 8 in 2 heads, FF 12, tied
// embeddings, context T; `model` adds members to the model section, `pe` is the pe section's.
static Config small_config(const char *norm, const char *act, double dropout, const char *model, const char *pe) {
    char text[1024], err[512];
    snprintf(text, sizeof text,
             "{\"run\": {\"name\": \"grad_model\", \"seed\": 3}, \"model\": {\"n_layers\": 2, \"d_model\": 8, "
             "\"n_heads\": 2, \"d_ff\": 12, \"block_size\": %d, \"norm\": \"%s\", "
             "\"activation\": \"%s\", \"dropout\": %g%s%s}, \"pe\": {%s}, \"task\": {\"length\": %d}}",
             T, norm, act, dropout, model[0] ? ", " : "", model, pe, T);
    Config c;
    CHECK(config_load_text(&c, text, "grad_model config", NULL, 0, err, sizeof err) == 0, "%s", err);
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
    batch_free(&b);
    model_free(&m);
}

#define PE(type) "\"type\": \"" type "\""
static void test_post_norm_relu_none(void) { check_model("post relu none", small_config("post", "relu", 0, "", PE("none")), 0); }
static void test_pre_norm_gelu_abs(void) { check_model("pre gelu abs", small_config("pre", "gelu", 0, "", PE("abs")), 1); }
static void test_post_norm_dropout_abs(void) {
    check_model("post dropout abs", small_config("post", "gelu", 0.2, "", PE("abs")), 1);
}
static void test_pre_norm_dropout_cope(void) {
    check_model("pre dropout cope", small_config("pre", "gelu", 0.2, "", PE("cope")), 1);
}
static void test_untied_sinusoidal(void) {
    check_model("pre untied sinusoidal",
                small_config("pre", "gelu", 0, "\"tie_embeddings\": false", PE("abs") ", \"abs_kind\": \"sinusoidal\""), 0);
}
static void test_cope_post(void) { check_model("post cope", small_config("post", "relu", 0, "", PE("cope")), 1); }
static void test_cope_options(void) {  // npos 3: clamped positions
    check_model("post cope npos3 nodiv sep_keys shared",
                small_config("post", "gelu", 0, "",
                             PE("cope") ", \"npos\": 3, \"nodiv\": true, \"sep_keys\": true, \"shared_table\": true"),
                1);
}
static void test_rel(void) { check_model("pre rel", small_config("pre", "gelu", 0, "", PE("rel")), 1); }
static void test_rope(void) { check_model("post rope", small_config("post", "gelu", 0, "", PE("rope")), 1); }
static void test_cope_rel_every2(void) {
    check_model("pre cope+rel every 2", small_config("pre", "gelu", 0, "", PE("cope+rel") ", \"every_k_layers\": 2"), 1);
}
static void test_cope_rope(void) { check_model("pre cope+rope", small_config("pre", "gelu", 0, "", PE("cope+rope")), 1); }
static void test_abs_rel(void) { check_model("post abs+rel", small_config("post", "gelu", 0, "", PE("abs+rel")), 0); }

// One batch of B with normaliser N equals two micro-batches of B/2 each scaled by 1/N (no
// dropout: masks are drawn per micro-batch, so with dropout the two runs draw different masks).
static void test_accumulation(void) {
    Config cfg = small_config("post", "gelu", 0.1, "", PE("cope"));
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
        Batch half = full;  // a view of rows 2h, 2h+1
        half.B = 2, half.tokens += o, half.targets += o, half.loss_mask += o, half.metric_mask += o, half.key_pad += o;
        loss_halves += model_forward(&m, &half, 0);
        model_backward(&m, &half, 1.0 / n);
    }
    CHECK(fabs(loss_full - loss_halves) < 1e-12 * fabs(loss_full), "loss %.17g vs %.17g", loss_full, loss_halves);
    check_close("accumulated gradient vs full batch", m.grads, g_full, m.n_params, 1e-14, 1e-10);
    free(g_full);
    batch_free(&full);
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
