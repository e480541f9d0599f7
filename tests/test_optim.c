// The optimizer: learning-rate schedules, global-norm clipping, Adam and AdamW against values worked
// out by hand from PyTorch's update rules, weight-decay flags, and thread-count independence.
#include <omp.h>

#include "check.h"
#include "optim.h"

// A train section with the schedule `kind`, the optimizer and weight decay wd, resolved as ./train
// resolves it.
static Optimizer schedule(const char *kind, int warmup, double lr_min, const char *optimizer, double wd) {
    TrainConfig t;
    memset(&t, 0, sizeof t);
    snprintf(t.schedule, sizeof t.schedule, "%s", kind);
    snprintf(t.optimizer, sizeof t.optimizer, "%s", optimizer);
    t.weight_decay = wd;
    t.lr = 1e-3;
    t.lr_min = lr_min;
    t.warmup_steps = warmup;
    t.steps = 110;
    t.beta1 = 0.9;
    t.beta2 = 0.999;
    t.eps = 1e-8;
    Optimizer o;
    optimizer_init(&o, &t);
    return o;
}

static void test_schedules(void) {
    Optimizer c = schedule("constant", 10, 0, "adamw", 0);
    CHECK(fabs(lr_at(&c, 0) - 1e-4) < 1e-15, "warm-up starts at lr/warmup: %g", lr_at(&c, 0));
    CHECK(fabs(lr_at(&c, 4) - 5e-4) < 1e-15, "warm-up is linear: %g", lr_at(&c, 4));
    CHECK(lr_at(&c, 9) == 1e-3 && lr_at(&c, 100) == 1e-3, "constant after warm-up");
    Optimizer l = schedule("linear", 10, 1e-4, "adamw", 0);
    CHECK(lr_at(&l, 10) == 1e-3, "linear starts at lr: %g", lr_at(&l, 10));
    CHECK(fabs(lr_at(&l, 60) - (1e-4 + 0.9e-3 * 0.5)) < 1e-15, "linear halfway: %g", lr_at(&l, 60));
    CHECK(fabs(lr_at(&l, 110) - 1e-4) < 1e-15 && fabs(lr_at(&l, 500) - 1e-4) < 1e-15, "linear ends at the floor");
    Optimizer k = schedule("cosine", 10, 1e-4, "adamw", 0);
    CHECK(fabs(lr_at(&k, 60) - (1e-4 + 0.9e-3 * 0.5)) < 1e-15, "cosine halfway: %g", lr_at(&k, 60));
    CHECK(fabs(lr_at(&k, 35) - (1e-4 + 0.9e-3 * 0.5 * (1 + cos(3.14159265358979323846 / 4)))) < 1e-15, "cosine quarter: %g",
          lr_at(&k, 35));
    CHECK(fabs(lr_at(&k, 110) - 1e-4) < 1e-15, "cosine ends at the floor");
}

// A model-shaped container with two tensors: "w" (decayed) and "b" (not).
static Model two_tensors(real *params, real *grads, real *m, real *v) {
    static ParamTensor tensors[2] = {{"w", 0, 2, 1, 'u', 0}, {"b", 2, 1, 0, 'z', 0}};
    Model model;
    memset(&model, 0, sizeof model);
    model.n_params = 3;
    model.params = params;
    model.grads = grads;
    model.adam_m = m;
    model.adam_v = v;
    model.tensors = tensors;
    model.n_tensors = 2;
    return model;
}

// PyTorch's AdamW on p = 1, g = 0.5, lr 0.1, wd 0.1: p ← p(1 − lr·wd) = 0.99, m̂ = 0.5, v̂ = 0.25,
// p ← 0.99 − 0.1·0.5/(0.5 + 1e-8). Adam with L2 adds wd·p to the gradient instead: g = 0.6,
// m̂ = 0.6, v̂ = 0.36, p ← 1 − 0.1·0.6/(0.6 + 1e-8). The bias "b" is never decayed.
static void test_adam_first_step(void) {
    real p[3] = {1, 1, 1}, g[3] = {0.5f, 0.5f, 0.5f}, m[3] = {0}, v[3] = {0};
    Model model = two_tensors(p, g, m, v);
    Optimizer t = schedule("constant", 0, 0, "adamw", 0.1);
    adam_update(&model, &t, 1, 0.1);
    double want_w = 0.99 - 0.1 * 0.5 / (0.5 + 1e-8), want_b = 1 - 0.1 * 0.5 / (0.5 + 1e-8);
    CHECK(fabs(p[0] - want_w) < 1e-6 && fabs(p[1] - want_w) < 1e-6, "adamw w: %.9g want %.9g", p[0], want_w);
    CHECK(fabs(p[2] - want_b) < 1e-6, "adamw never decays b: %.9g want %.9g", p[2], want_b);
    CHECK(fabs(m[0] - 0.05) < 1e-7 && fabs(v[0] - 0.00025) < 1e-9, "moments m %.9g v %.9g", m[0], v[0]);

    real p2[3] = {1, 1, 1}, m2[3] = {0}, v2[3] = {0};
    Model adam = two_tensors(p2, g, m2, v2);
    Optimizer l2 = schedule("constant", 0, 0, "adam", 0.1);
    adam_update(&adam, &l2, 1, 0.1);
    double want_adam = 1 - 0.1 * 0.6 / (0.6 + 1e-8);
    CHECK(fabs(p2[0] - want_adam) < 1e-6, "adam (L2) w: %.9g want %.9g", p2[0], want_adam);
    CHECK(fabs(p2[2] - want_b) < 1e-6, "adam never decays b: %.9g", p2[2]);
}

// Second step with a new gradient: the bias corrections use step 2.
static void test_adam_second_step(void) {
    real p[3] = {1, 1, 1}, g[3] = {0.5f, 0.5f, 0.5f}, m[3] = {0}, v[3] = {0};
    Model model = two_tensors(p, g, m, v);
    Optimizer t = schedule("constant", 0, 0, "adamw", 0);
    adam_update(&model, &t, 1, 0.1);
    g[2] = -1;
    double p1 = p[2];
    adam_update(&model, &t, 2, 0.1);
    double mm = 0.9 * 0.05 + 0.1 * -1, vv = 0.999 * 0.00025 + 0.001 * 1;
    double want = p1 - 0.1 * (mm / (1 - 0.81)) / (sqrt(vv / (1 - 0.998001)) + 1e-8);
    CHECK(fabs(p[2] - want) < 1e-6, "step 2: %.9g want %.9g", p[2], want);
}

static void test_clipping(void) {
    real p[3] = {0}, g[3] = {3, 4, 0}, m[3] = {0}, v[3] = {0};
    Model model = two_tensors(p, g, m, v);
    double norm = clip_gradients(&model, 0);
    CHECK(fabs(norm - 5) < 1e-6 && g[0] == 3, "clip 0 is off, norm %g", norm);
    norm = clip_gradients(&model, 10);
    CHECK(fabs(norm - 5) < 1e-6 && g[0] == 3, "below the threshold nothing changes");
    norm = clip_gradients(&model, 1);
    CHECK(fabs(norm - 5) < 1e-6, "the norm before clipping is returned: %g", norm);
    CHECK(fabs(g[0] - 0.6) < 1e-6 && fabs(g[1] - 0.8) < 1e-6, "scaled to norm 1: %g %g", g[0], g[1]);
}

// A large buffer: the norm and the update are the same bits at 1 and 2 threads.
static void test_threads(void) {
    long n = 300000;
    real *p[2], *g[2], *m[2], *v[2];
    double norms[2];
    ParamTensor tensor = {"w", 0, n, 1, 'u', 0};
    for (int r = 0; r < 2; r++) {
        p[r] = malloc(sizeof(real) * n);
        g[r] = malloc(sizeof(real) * n);
        m[r] = calloc(n, sizeof(real));
        v[r] = calloc(n, sizeof(real));
        unsigned long long s = 5;
        for (long i = 0; i < n; i++) {
            p[r][i] = (real)check_rand(&s);
            g[r][i] = (real)check_rand(&s);
        }
        Model model = {.n_params = n, .params = p[r], .grads = g[r], .adam_m = m[r], .adam_v = v[r],
                       .tensors = &tensor, .n_tensors = 1};
        omp_set_num_threads(r + 1);
        Optimizer t = schedule("constant", 0, 0, "adamw", 0.1);
        norms[r] = clip_gradients(&model, 1.0);
        adam_update(&model, &t, 1, 1e-3);
    }
    omp_set_num_threads(2);
    CHECK(norms[0] == norms[1], "norm differs across thread counts: %.17g vs %.17g", norms[0], norms[1]);
    CHECK(memcmp(p[0], p[1], sizeof(real) * n) == 0, "parameters differ across thread counts");
    for (int r = 0; r < 2; r++) {
        free(p[r]);
        free(g[r]);
        free(m[r]);
        free(v[r]);
    }
}

int main(void) {
    RUN(test_schedules);
    RUN(test_adam_first_step);
    RUN(test_adam_second_step);
    RUN(test_clipping);
    RUN(test_threads);
    return check_summary("optim");
}
