// Semantic tests of attention and its position encodings (float build, what ./train runs): CoPE with a
// zero table is plain attention, gate patterns give the positions the paper describes, the relative
// and RoPE conventions, masking, running past the training length, and thread-count independence.
#include <omp.h>
#include <stdint.h>

#include "attention.h"
#include "check.h"
#include "layers.h"
#include "pe/pe.h"
#include "pe_fixture.h"

// A layer's attention on random inputs with all its buffers.
typedef struct {
    int B, T, C, H;
    AttnPE pe;
    PEFixture tables;
    long nE, nR;                // sizes of the CoPE and relative tables (0 when absent)
    real *q, *k, *v, *gk, *G, *out, *E, *R, *mem;
    real *dq, *dk, *dv, *dgk, *dE, *dR;
    uint8_t *pad;
    AttnCache cache;
    real p_drop;
} Layer;

static real *rnd(long n, double scale, unsigned long long *st) {
    real *x = malloc(sizeof(real) * (n > 0 ? n : 1));
    for (long i = 0; i < n; i++) x[i] = (real)(scale * check_rand(st));
    return x;
}
static real *zeros(long n) { return calloc(n > 0 ? n : 1, sizeof(real)); }

// pe_json: the config's "pe" section; tables (random), gate keys and gradients are allocated here.
static void layer_init(Layer *L, int B, int T, int C, int H, const char *pe_json, int pad, unsigned long long seed) {
    memset(L, 0, sizeof *L);
    L->B = B, L->T = T, L->C = C, L->H = H;
    unsigned long long st = seed, st_tables = seed + 1000;  // the inputs do not depend on the tables drawn
    long BTC = (long)B * T * C;
    L->pe = pe_fixture(&L->tables, pe_json, C / H, &st_tables, 1, 0);
    L->pe.keep_positions = 1;  // the tests read the CoPE positions
    L->E = fixture_table(&L->tables, "cope_table", &L->dE, &L->nE);
    L->R = fixture_table(&L->tables, "rel_table", &L->dR, &L->nR);
    L->q = rnd(BTC, 1.5, &st), L->k = rnd(BTC, 1.5, &st), L->v = rnd(BTC, 1, &st), L->G = rnd(BTC, 1, &st);
    L->out = zeros(BTC), L->dq = zeros(BTC), L->dk = zeros(BTC), L->dv = zeros(BTC);
    if (L->pe.own_keys) {
        L->gk = rnd(BTC, 1.5, &st), L->dgk = zeros(BTC);
        L->pe.gate_keys = L->gk, L->pe.dgate_keys = L->dgk;
    }
    if (pad) {
        L->pad = calloc((size_t)B * T, 1);
        for (int b = 0; b < B; b++)
            for (int t = 0; t < T; t++) L->pad[(long)b * T + t] = (t % 5 == 3) || t >= T - 1 - b;
    }
    L->mem = malloc(sizeof(real) * attention_cache_size(&L->pe, B, T, C, H));
    attention_cache_bind(&L->cache, L->mem, &L->pe, B, T, C, H);
}

static void layer_free(Layer *L) {
    free(L->q), free(L->k), free(L->v), free(L->gk), free(L->G), free(L->out), free(L->mem);
    free(L->dq), free(L->dk), free(L->dv), free(L->dgk), free(L->pad);
    fixture_free(&L->tables, &L->pe);
}

static void layer_forward(Layer *L) {
    attention_forward(L->out, &L->cache, L->q, L->k, L->v, L->pad, &L->pe, L->p_drop, 77, L->B, L->T, L->C, L->H);
}
static void layer_backward(Layer *L) {
    attention_backward(L->dq, L->dk, L->dv, L->G, &L->cache, L->q, L->k, L->v, L->pad, &L->pe, L->p_drop, 77, L->B,
                       L->T, L->C, L->H);
}

static double *to_double(const real *x, long n) {
    double *d = malloc(sizeof(double) * (n > 0 ? n : 1));
    for (long i = 0; i < n; i++) d[i] = x[i];
    return d;
}
static void close_f(const char *what, const real *got, const real *want, long n, double atol, double rtol) {
    double *g = to_double(got, n), *w = to_double(want, n);
    check_close(what, g, w, n, atol, rtol);
    free(g), free(w);
}
static double max_abs(const real *x, long n) {
    double m = 0;
    for (long i = 0; i < n; i++) m = fabs(x[i]) > m ? fabs(x[i]) : m;
    return m;
}
static int all_finite(const real *x, long n) {
    for (long i = 0; i < n; i++)
        if (!isfinite(x[i])) return 0;
    return 1;
}

// With E = 0 the CoPE term is 0 and so is the gate path (it carries Z[u] - Z[f]): CoPE attention is
// plain attention, while E itself gets a gradient (the reference's first-step test, §3.4).
static void test_cope_zero_table_is_plain(void) {
    Layer plain, cope;
    layer_init(&plain, 2, 13, 16, 2, "{\"type\": \"none\"}", 1, 1);
    layer_init(&cope, 2, 13, 16, 2, "{\"type\": \"cope\", \"npos\": 14}", 1, 1);
    memset(cope.E, 0, sizeof(real) * 8 * 14);
    layer_forward(&plain), layer_forward(&cope);
    layer_backward(&plain), layer_backward(&cope);
    long n = 2L * 13 * 16;
    close_f("out", cope.out, plain.out, n, 1e-6, 1e-5);
    close_f("dq", cope.dq, plain.dq, n, 1e-6, 1e-5);
    close_f("dk", cope.dk, plain.dk, n, 1e-6, 1e-5);
    close_f("dv", cope.dv, plain.dv, n, 1e-6, 1e-5);
    double dE = max_abs(cope.dE, 8 * 14);
    printf("     max |dE| = %.3g\n", dE);
    CHECK(dE > 1e-3, "dE should be non-zero with E = 0, max |dE| = %g", dE);
    layer_free(&plain), layer_free(&cope);
}

// Every gate 1 (q·k huge): p_ij = i - j + 1, token relative positions shifted by one.
static void test_all_gates_open_count_tokens(void) {
    enum { T = 11, C = 8 };
    Layer L;
    layer_init(&L, 1, T, C, 1, "{\"type\": \"cope\", \"npos\": 12}", 0, 2);  // T + 1
    for (long i = 0; i < T * C; i++) L.q[i] = L.k[i] = 10;  // s·q·k = 800/sqrt(8): σ = 1 in float
    layer_forward(&L);
    int bad = 0;
    for (int i = 0; i < T; i++)
        for (int j = 0; j <= i; j++)
            if (L.cache.pos[i * T + j] != (real)(i - j + 1)) {
                if (!bad) printf("     p[%d][%d] = %g, want %d\n", i, j, L.cache.pos[i * T + j], i - j + 1);
                bad++;
            }
    CHECK(bad == 0, "%d positions differ from i-j+1", bad);
    layer_free(&L);
}

// Paper Figure 1: gates 1 at the sentence ends '.' and 0 elsewhere count sentences. Keys carry
// +A at '.' and -A elsewhere in channel 0, every query A: s·q·k = ±A²/2 = ±50, σ = 1 or ~2e-22.
static void test_separator_counting_figure1(void) {
    static const char *tokens[] = {"Alice", "was", "tired", ".", "She", "tried", "reading", ".", "A", "rabb", "-it", "came"};
    enum { T = 12, C = 4 };
    const real want[T] = {2, 2, 2, 2, 1, 1, 1, 1, 0, 0, 0, 0};
    Layer L;
    layer_init(&L, 1, T, C, 1, "{\"type\": \"cope\", \"npos\": 13}", 0, 3);  // T + 1
    memset(L.q, 0, sizeof(real) * T * C), memset(L.k, 0, sizeof(real) * T * C);
    for (int t = 0; t < T; t++) {
        L.q[t * C] = 10;
        L.k[t * C] = strcmp(tokens[t], ".") == 0 ? 10 : -10;
    }
    layer_forward(&L);
    const real *p = L.cache.pos + (T - 1) * T;  // the query at "came"
    printf("     positions from \"came\":");
    for (int j = 0; j < T; j++) printf(" %s:%.0f", tokens[j], p[j]);
    printf("\n");
    double got[T], w[T];
    for (int j = 0; j < T; j++) got[j] = p[j], w[j] = want[j];
    check_close("separator positions", got, w, T, 1e-5, 0);
    layer_free(&L);
}

// Masking: rows sum to 1, padded keys get exactly 0, a pad query attends to itself (entries j > i
// are outside the row and not all written).
static void test_masking(void) {
    enum { B = 2, T = 12, C = 8, H = 2 };
    Layer L;
    layer_init(&L, B, T, C, H, "{\"type\": \"cope+rel\", \"npos\": 5, \"rel_max_distance\": 12}", 1, 4);
    layer_forward(&L);
    int bad = 0, pad_queries = 0;
    for (int b = 0; b < B; b++)
        for (int h = 0; h < H; h++)
            for (int i = 0; i < T; i++) {
                const real *a = L.cache.probs + (((long)b * H + h) * T + i) * T;
                double sum = 0;
                for (int j = 0; j <= i; j++) {
                    sum += a[j];
                    int masked = j != i && L.pad[b * T + j];
                    if (masked && a[j] != 0) bad++;
                    if (!masked && !(a[j] > 0)) bad++;
                }
                if (fabs(sum - 1) > 1e-5) bad++;
                if (L.pad[b * T + i]) pad_queries++;
            }
    CHECK(bad == 0, "%d probabilities break the mask or do not sum to 1", bad);
    CHECK(pad_queries > 0, "the test needs pad queries");
    layer_free(&L);
}

// Dropout on the probabilities: entry (i, j) of head h of sequence b is element ((b·H + h)·T + i)·T + j
// of the stream, kept iff dropout_keep says so, scaled by 1/(1-p): out_i = Σ_j α'_ij v_j.
static void test_dropout_mask(void) {
    enum { B = 2, T = 40, C = 8, H = 2, dh = 4 };
    const real p = 0.3f;
    Layer L;
    layer_init(&L, B, T, C, H, "{\"type\": \"cope\", \"npos\": 6}", 1, 11);
    L.p_drop = p;
    layer_forward(&L);
    double got[B * T * C], want[B * T * C];
    long kept = 0, total = 0;
    for (int b = 0; b < B; b++)
        for (int h = 0; h < H; h++)
            for (int i = 0; i < T; i++)
                for (int c = 0; c < dh; c++) {
                    double acc = 0;
                    for (int j = 0; j <= i; j++) {
                        long index = (((long)b * H + h) * T + i) * T + j;
                        int keep = dropout_keep(p, 77, index);
                        if (c == 0) kept += keep, total++;
                        acc += keep ? L.cache.probs[index] / (1 - p) * L.v[((long)b * T + j) * C + h * dh + c] : 0;
                    }
                    long o = ((long)b * T + i) * C + h * dh + c;
                    want[o] = acc, got[o] = L.out[o];
                }
    printf("     kept %ld of %ld (%.3f, p = %.1f)\n", kept, total, (double)kept / total, p);
    check_close("out with dropout_keep masks", got, want, B * T * C, 1e-5, 1e-4);
    layer_free(&L);
}

// Relative PE: logit term s·q_i·r_m with m = n-1-(i-j) (column n-1 is distance 0); distances beyond
// n-1 (pe.rel_beyond) use column 0 when capped and add nothing when zero. q = e_0, k = 0 and
// r_m = (0.3·(m+1), 0, ...) make the logits s·0.3·(m(i,j)+1), so each row of probabilities is known
// in closed form (and column 0's logit, s·0.3, is not the zero mode's 0).
static void test_relative_columns(void) {
    enum { T = 9, C = 4, N = 5 };
    const char *beyond[] = {"refuse", "cap", "zero"};
    for (int x = 0; x < 3; x++) {
        int Tr = x ? T : N;  // refuse: only up to the table's length
        char pe_json[128];
        snprintf(pe_json, sizeof pe_json, "{\"type\": \"rel\", \"rel_max_distance\": %d, \"rel_beyond\": \"%s\"}", N,
                 beyond[x]);
        Layer L;
        layer_init(&L, 1, Tr, C, 1, pe_json, 0, 5);
        memset(L.q, 0, sizeof(real) * Tr * C), memset(L.k, 0, sizeof(real) * Tr * C), memset(L.R, 0, sizeof(real) * C * N);
        for (int t = 0; t < Tr; t++) L.q[t * C] = 1;
        for (int m = 0; m < N; m++) L.R[m] = (real)(0.3 * (m + 1));
        layer_forward(&L);
        double got[T * T], want[T * T];
        for (int i = 0; i < Tr; i++) {
            double z = 0, e[T];
            for (int j = 0; j <= i; j++) {
                int m = N - 1 - (i - j);
                double logit = m >= 0 ? 0.5 * 0.3 * (m + 1) : x == 1 ? 0.5 * 0.3 /* column 0 */ : 0 /* no term */;
                e[j] = exp(logit);
                z += e[j];
            }
            for (int j = 0; j < Tr; j++) {  // entries j > i are outside the row
                want[i * Tr + j] = j <= i ? e[j] / z : 0;
                got[i * Tr + j] = j <= i ? L.cache.probs[i * Tr + j] : 0;
            }
        }
        char what[64];
        snprintf(what, sizeof what, "rel probabilities, beyond %s (T %d, table %d)", beyond[x], Tr, N);
        check_close(what, got, want, (long)Tr * Tr, 1e-6, 1e-5);
        layer_free(&L);
    }
}

// RoPE: the cache holds q, k rotated by t·base^(-2m/dh) in pairs (2m, 2m+1), and q·k after rotation
// depends on i - j only.
static void test_rope_rotation(void) {
    enum { T = 20, C = 8, H = 2, dh = 4 };
    Layer L;
    layer_init(&L, 1, T, C, H, "{\"type\": \"rope\", \"rope_base\": 100}", 0, 6);
    for (int t = 0; t < T; t++)  // the same q and k at every position
        for (int c = 0; c < C; c++) L.q[t * C + c] = L.q[c], L.k[t * C + c] = L.k[c];
    layer_forward(&L);
    double got[T * C], want[T * C];
    for (int t = 0; t < T; t++)
        for (int h = 0; h < H; h++)
            for (int m = 0; m < dh / 2; m++) {
                double a = t * pow(100.0, -2.0 * m / dh);
                int c = t * C + h * dh + 2 * m;
                double x0 = L.q[c], x1 = L.q[c + 1];
                want[c] = x0 * cos(a) - x1 * sin(a), want[c + 1] = x0 * sin(a) + x1 * cos(a);
                got[c] = L.cache.qrot[c], got[c + 1] = L.cache.qrot[c + 1];
            }
    check_close("rotated q", got, want, T * C, 1e-5, 1e-5);
    int bad = 0;  // rot(i)q · rot(j)k == rot(i+d)q · rot(j+d)k
    for (int i = 0; i + 5 < T; i++)
        for (int j = 0; j <= i; j++) {
            double d0 = 0, d1 = 0;
            for (int c = 0; c < dh; c++) {
                d0 += L.cache.qrot[i * C + c] * L.cache.krot[j * C + c];
                d1 += L.cache.qrot[(i + 5) * C + c] * L.cache.krot[(j + 5) * C + c];
            }
            if (fabs(d0 - d1) > 1e-4) bad++;
        }
    CHECK(bad == 0, "%d rotated dot products depend on more than i - j", bad);
    layer_free(&L);
}

// Trained at T = 8 (tables for 8 positions): CoPE, capped relative, RoPE and none run at T = 40 with
// the same tables; uncapped relative refuses with a message.
static void test_longer_than_training(void) {
    enum { Ttrain = 8, T = 40 };
    const char *pes[] = {
        "{\"type\": \"cope\", \"npos\": 9}",
        "{\"type\": \"rel\", \"rel_max_distance\": 8, \"rel_beyond\": \"cap\"}",
        "{\"type\": \"rope\"}",
        "{\"type\": \"none\"}",
        "{\"type\": \"cope+rel\", \"npos\": 9, \"rel_max_distance\": 8, \"rel_beyond\": \"cap\"}",
    };
    const char *names[] = {"cope", "rel capped", "rope", "none", "cope+rel capped"};
    char err[256];
    for (int x = 0; x < 5; x++) {
        Layer L;
        layer_init(&L, 2, T, 8, 2, pes[x], 0, 7);
        CHECK(attention_check_length(&L.pe, T, err, sizeof err) == 0, "%s refused T=%d: %s", names[x], T, err);
        layer_forward(&L);
        layer_backward(&L);
        long n = 2L * T * 8;
        CHECK(all_finite(L.out, n) && all_finite(L.dq, n) && all_finite(L.dk, n), "%s: non-finite at T=%d", names[x], T);
        printf("     %-16s runs at T=%d with tables for %d\n", names[x], T, Ttrain);
        layer_free(&L);
    }
    Layer rel;
    layer_init(&rel, 1, Ttrain, 8, 2, "{\"type\": \"rel\", \"rel_max_distance\": 8}", 0, 7);
    CHECK(attention_check_length(&rel.pe, Ttrain, err, sizeof err) == 0, "uncapped rel refused its own length: %s", err);
    err[0] = 0;
    int rc = attention_check_length(&rel.pe, T, err, sizeof err);
    printf("     uncapped rel at T=%d: \"%s\"\n", T, err);
    CHECK(rc == -1 && strstr(err, "40") && strlen(err) > 20, "uncapped rel must refuse T=%d with a message", T);
    layer_free(&rel);
}

// The vector instructions this build's element-wise loops were compiled for (-march of the build).
static const char *vector_isa(void) {
#if defined(__AVX512F__)
    return "AVX-512";
#elif defined(__AVX2__)
    return "AVX2";
#elif defined(__SSE4_2__)
    return "SSE4.2";
#else
    return "SSE2";
#endif
}

// Gated CoPE attention written plainly in double from its definition (docs/cope.md §3), one loop per
// formula, no vectors, blocks or scans: L = Σ G·out for the loss whose gradient the kernels compute.
static double plain_cope_loss(const Layer *L, const double *q, const double *k, const double *v, const double *E,
                              int P) {
    int T = L->T, C = L->C, H = L->H, dh = C / H;
    double s = 1 / sqrt(dh), loss = 0, x[64], g[64], a[64];
    for (int b = 0; b < L->B; b++)
        for (int h = 0; h < H; h++)
            for (int i = 0; i < T; i++) {
                const double *qi = q + ((long)b * T + i) * C + h * dh;
                for (int j = 0; j <= i; j++) {
                    const double *kj = k + ((long)b * T + j) * C + h * dh;
                    x[j] = 0;
                    for (int c = 0; c < dh; c++) x[j] += qi[c] * kj[c];
                    int on = j == i || !L->pad || !L->pad[(long)b * T + j];
                    g[j] = on ? 1 / (1 + exp(-s * x[j])) : 0;
                }
                double amax = -INFINITY;
                for (int j = 0; j <= i; j++) {
                    double p = 0;
                    for (int t = j; t <= i; t++) p += g[t];
                    double cl = p < P - 1 ? p : P - 1, lo = floor(cl), w = cl - lo;
                    int f = (int)lo, u = w > 0 ? f + 1 : f;
                    double zf = 0, zu = 0;
                    for (int c = 0; c < dh; c++) zf += qi[c] * E[c * P + f], zu += qi[c] * E[c * P + u];
                    int on = j == i || !L->pad || !L->pad[(long)b * T + j];
                    a[j] = on ? s * x[j] + s * ((1 - w) * zf + w * zu) : -INFINITY;
                    amax = a[j] > amax ? a[j] : amax;
                }
                double den = 0;
                for (int j = 0; j <= i; j++) den += exp(a[j] - amax);
                for (int c = 0; c < dh; c++) {
                    double out = 0;
                    for (int j = 0; j <= i; j++) out += exp(a[j] - amax) / den * v[((long)b * T + j) * C + h * dh + c];
                    loss += L->G[((long)b * T + i) * C + h * dh + c] * out;
                }
            }
    return loss;
}

// Central differences of plain_cope_loss in x[0..n) (double: an error near 1e-9, far below float's).
static void plain_gradient(const Layer *L, double *grad, double *x, long n, double **in, int P) {
    for (long i = 0; i < n; i++) {
        double keep = x[i], h = 1e-5 * (1 + fabs(keep));
        x[i] = keep + h;
        double up = plain_cope_loss(L, in[0], in[1], in[2], in[3], P);
        x[i] = keep - h;
        double down = plain_cope_loss(L, in[0], in[1], in[2], in[3], P);
        x[i] = keep;
        grad[i] = (up - down) / (2 * h);
    }
}

// This build's kernels (whatever vector width it was compiled for) against the plain reference above:
// the forward's output and every gradient, with and without padded keys, with the gates kept and
// recomputed, positions past the table's clamp (P = 9: the rows past 32 keys stop computing gates
// where their positions all clamp, as in training: no positions kept) and none (P = T + 1: every
// row one piece, its sigmoids stored in the scan's vectors), and row lengths that leave every
// vector remainder. Float against double: 2e-5 of the largest value (float rounding over sums of
// ~40 terms is near 1e-7 of it); a wrong formula is off by far more.
static void test_cope_matches_plain_reference(void) {
    enum { T = 37, C = 16, H = 2 };
    printf("     element-wise loops compiled for %s\n", vector_isa());
    for (int run = 0; run < 8; run++) {
        // recompute: pe.keep_gates never (auto keeps them at T = 37)
        int pad = run & 1, recompute = (run >> 1) & 1, P = run >> 2 ? T + 1 : 9;
        char config[128], plain_config[64];
        snprintf(config, sizeof config, "{\"type\": \"cope\", \"npos\": %d%s}", P,
                 recompute ? ", \"keep_gates\": \"never\"" : "");
        snprintf(plain_config, sizeof plain_config, "{\"type\": \"cope\", \"npos\": %d}", P);
        Layer L, pictures;  // the kernels as training runs them; the same with every position kept
        layer_init(&L, 1, T, C, H, config, pad, 21);
        layer_init(&pictures, 1, T, C, H, plain_config, pad, 21);
        L.pe.keep_positions = 0;
        free(L.mem);
        L.mem = malloc(sizeof(real) * (attention_cache_size(&L.pe, 1, T, C, H) + 1));
        attention_cache_bind(&L.cache, L.mem, &L.pe, 1, T, C, H);
        CHECK((L.cache.near_gates == NULL) == recompute, "keep_gates: the cache %s gates",
              L.cache.near_gates ? "keeps" : "keeps no");
        layer_forward(&L), layer_forward(&pictures);
        layer_backward(&L);
        long n = (long)T * C, nE = (long)(C / H) * P;
        double *q = to_double(L.q, n), *k = to_double(L.k, n), *v = to_double(L.v, n), *E = to_double(L.E, nE);
        double *in[4] = {q, k, v, E}, *want = malloc(sizeof(double) * n), *got = malloc(sizeof(double) * n);
        // the output: d loss / d G_ic = out_ic, by central differences in G
        double *G = to_double(L.G, n), *out = to_double(L.out, n);
        for (long i = 0; i < n; i++) {
            real keep = L.G[i];
            L.G[i] = 1, want[i] = plain_cope_loss(&L, q, k, v, E, P);
            L.G[i] = -1, want[i] = (want[i] - plain_cope_loss(&L, q, k, v, E, P)) / 2;
            L.G[i] = keep;
        }
        double scale = 0;
        for (long i = 0; i < n; i++) scale = fabs(want[i]) > scale ? fabs(want[i]) : scale;
        char what[112];
        char how[64];
        snprintf(how, sizeof how, "%s, npos %d", recompute ? ", gates recomputed" : "", P);
        snprintf(what, sizeof what, "out%s%s", pad ? ", padded keys" : "", how);
        check_close(what, out, want, n, 2e-5 * scale, 0);
        const real *grads[4] = {L.dq, L.dk, L.dv, L.dE};
        const char *names[4] = {"dq", "dk", "dv", "dE"};
        for (int t = 0; t < 4; t++) {
            long m = t == 3 ? nE : n;
            plain_gradient(&L, want, in[t], m, in, P);
            scale = 0;
            for (long i = 0; i < m; i++) scale = fabs(want[i]) > scale ? fabs(want[i]) : scale;
            for (long i = 0; i < m; i++) got[i] = grads[t][i];
            snprintf(what, sizeof what, "%s%s%s", names[t], pad ? ", padded keys" : "", how);
            check_close(what, got, want, m, 2e-5 * scale, 0);
        }
        int early = 0;  // rows whose first 32 keys reach the clamp: their far keys skip the gates
        for (int i = 32; i < T; i++) early += pictures.cache.pos[(long)i * T + i - 31] >= P - 1;
        printf("     npos %d: %d rows stop at the clamp early\n", P, early);
        CHECK(P > T || early > 0, "no row stops at the clamp at %d: the test would not cover it", P - 1);
        close_f("out, positions kept", pictures.out, L.out, n, 1e-6, 1e-5);
        free(q), free(k), free(v), free(E), free(G), free(out), free(want), free(got);
        layer_free(&L), layer_free(&pictures);
    }
}

// The model allocates a layer's cache once, for its longest context, and binds it for shorter ones:
// a cache's size must never fall as T grows (CoPE's keep_gates auto stops keeping gates past
// T = 1024 floats, but keeps their room reserved).
static void test_cache_size_grows_with_T(void) {
    const char *pes[] = {"{\"type\": \"cope\", \"npos\": 9}", "{\"type\": \"cope+rope\", \"npos\": 9}",
                         "{\"type\": \"cope+rel\", \"npos\": 9, \"rel_max_distance\": 8, \"rel_beyond\": \"cap\"}",
                         "{\"type\": \"none\"}"};
    for (int x = 0; x < 4; x++) {
        Layer L;
        layer_init(&L, 1, 8, 16, 2, pes[x], 0, 5);
        int falls = 0;
        for (int T = 400; T < 1200; T++) {
            long a = attention_cache_size(&L.pe, 2, T, 16, 2), b = attention_cache_size(&L.pe, 2, T + 1, 16, 2);
            if (b < a && !falls) printf("     %s: %ld reals at T = %d, %ld at %d\n", pes[x], a, T, b, T + 1);
            falls += b < a;
        }
        CHECK(!falls, "%s: the cache shrinks as T grows at %d contexts", pes[x], falls);
        layer_free(&L);
    }
}

// pe.keep_gates is honoured: auto keeps the gates while a row of probabilities fits a 4 KB page
// (1024 floats), always and never whatever the context.
static void test_keep_gates_choice(void) {
    const char *keeps[] = {"auto", "always", "never"};
    const int want[3][2] = {{1, 0}, {1, 1}, {0, 0}};  // kept at T = 1024, 1025
    for (int x = 0; x < 3; x++) {
        char pe[96];
        snprintf(pe, sizeof pe, "{\"type\": \"cope\", \"npos\": 9, \"keep_gates\": \"%s\"}", keeps[x]);
        Layer L;
        layer_init(&L, 1, 8, 16, 2, pe, 0, 5);
        for (int t = 0; t < 2; t++) {
            int T = 1024 + t;
            real *mem = malloc(sizeof(real) * attention_cache_size(&L.pe, 1, T, 16, 2));
            AttnCache cache;
            attention_cache_bind(&cache, mem, &L.pe, 1, T, 16, 2);
            CHECK((cache.near_gates != NULL) == want[x][t], "keep_gates %s at T = %d: gates %s", keeps[x], T,
                  cache.near_gates ? "kept" : "not kept");
            free(mem);
        }
        layer_free(&L);
    }
}

// Whether two layers of the same shape computed the same bits: outputs and every gradient.
static int same_bits(const Layer *a, const Layer *b) {
    long n = (long)a->B * a->T * a->C;
    int same = memcmp(a->out, b->out, sizeof(real) * n) == 0 && memcmp(a->dq, b->dq, sizeof(real) * n) == 0 &&
               memcmp(a->dk, b->dk, sizeof(real) * n) == 0 && memcmp(a->dv, b->dv, sizeof(real) * n) == 0;
    if (a->dE) same = same && memcmp(a->dE, b->dE, sizeof(real) * a->nE) == 0;
    if (a->dR) same = same && memcmp(a->dR, b->dR, sizeof(real) * a->nR) == 0;
    if (a->dgk) same = same && memcmp(a->dgk, b->dgk, sizeof(real) * n) == 0;
    return same;
}

// 1 and 2 threads (and an odd number of heads in all) give bit-identical outputs and gradients.
static void run_threads(const char *name, const char *pe_json, real p_drop) {
    Layer L[2];
    for (int x = 0; x < 2; x++) {
        layer_init(&L[x], 3, 37, 12, 3, pe_json, 1, 8);
        L[x].p_drop = p_drop;
        omp_set_num_threads(x + 1);
        layer_forward(&L[x]);
        layer_backward(&L[x]);
    }
    omp_set_num_threads(2);
    int same = same_bits(&L[0], &L[1]);
    printf("     %-28s 1 vs 2 threads: %s\n", name, same ? "bit-identical" : "DIFFERENT");
    CHECK(same, "%s: results depend on the thread count", name);
    layer_free(&L[0]), layer_free(&L[1]);
}
static void test_threads_bit_identical(void) {
    run_threads("none + dropout", "{\"type\": \"none\"}", 0.1f);
    run_threads("cope+rel, sep keys, dropout",
                "{\"type\": \"cope+rel\", \"npos\": 9, \"rel_max_distance\": 20, \"rel_beyond\": \"cap\", "
                "\"sep_keys\": true}",
                0.1f);
    run_threads("cope+rope unrotated gates", "{\"type\": \"cope+rope\", \"npos\": 38, \"rope_gates\": \"unrotated\"}",
                0);
    run_threads("cope, gates recomputed", "{\"type\": \"cope\", \"npos\": 6, \"keep_gates\": \"never\"}", 0);
}

// The products read the head's rows in place or from copies (attention_set_copy_rows; by default
// only heads whose rows outgrow L1, larger than these tests' shapes): the same bits either way,
// heads of 16, 32 and 64 (the own loop's widths), with padding, and with RoPE's rotated q and k.
static void run_copy_rows(const char *name, const char *pe_json, int C, int H, real p_drop) {
    Layer L[2];
    for (int x = 0; x < 2; x++) {
        attention_set_copy_rows(x);
        layer_init(&L[x], 3, 41, C, H, pe_json, 1, 12);
        L[x].p_drop = p_drop;
        layer_forward(&L[x]);
        layer_backward(&L[x]);
    }
    attention_set_copy_rows(-1);
    int same = same_bits(&L[0], &L[1]);
    printf("     %-28s heads of %2d, rows in place vs copied: %s\n", name, C / H, same ? "bit-identical" : "DIFFERENT");
    CHECK(same, "%s: the copies of the head's rows change the results", name);
    layer_free(&L[0]), layer_free(&L[1]);
}
static void test_copy_rows_bit_identical(void) {
    run_copy_rows("none + dropout", "{\"type\": \"none\"}", 64, 1, 0.1f);
    run_copy_rows("cope, sep keys", "{\"type\": \"cope\", \"npos\": 20, \"sep_keys\": true}", 64, 2, 0);
    run_copy_rows("cope+rope", "{\"type\": \"cope+rope\", \"npos\": 42}", 64, 4, 0);
    run_copy_rows("cope+rel + dropout",
                  "{\"type\": \"cope+rel\", \"npos\": 9, \"rel_max_distance\": 20, \"rel_beyond\": \"cap\"}", 64,
                  2, 0.1f);
    run_copy_rows("alibi", "{\"type\": \"alibi\"}", 64, 4, 0);
}

// The block height changes only the grouping of the products: results agree to float rounding. At
// T = 50, blocks of 5 rows, the default (32: a full block and a short one) and 64 (one block).
static void test_block_rows_agree(void) {
    static const int rows[3] = {5, 0, 64};
    Layer L[3];
    for (int x = 0; x < 3; x++) {
        attention_set_block_rows(rows[x]);
        layer_init(&L[x], 2, 50, 8, 2, "{\"type\": \"cope+rel\", \"npos\": 12, \"rel_max_distance\": 50}", 1, 9);
        layer_forward(&L[x]);
        layer_backward(&L[x]);
    }
    attention_set_block_rows(0);
    long n = 2L * 50 * 8;
    for (int x = 0; x < 3; x += 2) {
        char what[64];
        const char *other = x ? "64" : "5";
        snprintf(what, sizeof what, "out, blocks of %s vs the default", other);
        close_f(what, L[x].out, L[1].out, n, 1e-5, 1e-4);
        snprintf(what, sizeof what, "dq, blocks of %s vs the default", other);
        close_f(what, L[x].dq, L[1].dq, n, 1e-5, 1e-4);
        snprintf(what, sizeof what, "dk, blocks of %s vs the default", other);
        close_f(what, L[x].dk, L[1].dk, n, 1e-5, 1e-4);
        snprintf(what, sizeof what, "dE, blocks of %s vs the default", other);
        close_f(what, L[x].dE, L[1].dE, 4 * 12, 1e-5, 1e-4);
    }
    for (int x = 0; x < 3; x++) layer_free(&L[x]);
}

// The default block height by the length: 32 rows, 64 from T = 2048 on; a set height wins.
static void test_block_rows_by_length(void) {
    static const int lengths[3] = {1024, 2047, 2048}, want[3] = {32, 32, 64};
    unsigned long long st = 5;
    PEFixture f;
    AttnPE pe = pe_fixture(&f, "{\"type\": \"none\"}", 16, &st, 1, 0);
    for (int x = 0; x < 4; x++) {
        int T = lengths[x < 3 ? x : 2];
        if (x == 3) attention_set_block_rows(16);
        real *mem = malloc(sizeof(real) * attention_cache_size(&pe, 1, T, 16, 1));
        AttnCache cache;
        attention_cache_bind(&cache, mem, &pe, 1, T, 16, 1);
        CHECK(cache.rows == (x < 3 ? want[x] : 16), "T = %d: blocks of %d rows", T, cache.rows);
        free(mem);
    }
    attention_set_block_rows(0);
    fixture_free(&f, &pe);
}

// The vectorised exp of the float build against libm, and exactly 0 for masked (-inf) logits.
static void test_fast_exp(void) {
    double worst = 0, at = 0;
    for (double x = -87; x <= 88; x += 0.001) {
        double want = exp((double)(float)x), got = pe_exp((real)x);
        double rel = fabs(got - want) / want;
        if (rel > worst) worst = rel, at = x;
    }
    printf("     pe_exp: worst relative error %.2e at x = %.3f\n", worst, at);
    CHECK(worst < 3e-7, "pe_exp relative error %.2e", worst);
    CHECK(pe_exp(-INFINITY) == 0 && pe_exp(-100) == 0, "pe_exp must be 0 far below");
}

// pe_exp and pe_sigmoid far out and at non-finite inputs (a NaN logit or gate must stay NaN):
// 0 below -87, e^88 above 88, NaN for NaN. NaN once reached a float-to-int conversion of NaN and a
// left shift of a negative int (undefined behaviour, which `make sanitize` turns into a failure).
static void test_fast_exp_extreme_inputs(void) {
    const float e88 = pe_exp(88.0f);
    CHECK(fabs(e88 - exp(88.0)) <= 3e-7 * exp(88.0), "pe_exp(88) = %g", (double)e88);
    const float xs[] = {-INFINITY, -1e30f, -1e7f, -4200, -88, 89, 4200, 1e7f, 1e30f, INFINITY};
    const float want[] = {0, 0, 0, 0, 0, e88, e88, e88, e88, e88};
    int bad = 0;
    for (int i = 0; i < (int)(sizeof xs / sizeof xs[0]); i++) {
        float got = pe_exp(xs[i]);
        printf("     pe_exp(%g) = %g\n", (double)xs[i], (double)got);
        bad += got != want[i];
    }
    CHECK(bad == 0, "%d values of pe_exp far out differ from 0 below -87 and e^88 above 88", bad);
    CHECK(isnan(pe_exp(NAN)) && isnan(pe_exp(-NAN)), "pe_exp(NaN) = %g, pe_exp(-NaN) = %g", (double)pe_exp(NAN),
          (double)pe_exp(-NAN));
    float s_hi = pe_sigmoid(INFINITY), s_lo = pe_sigmoid(-INFINITY), s_nan = pe_sigmoid(NAN);
    printf("     pe_sigmoid(+inf) = %g, pe_sigmoid(-inf) = %g, pe_sigmoid(NaN) = %g\n", (double)s_hi, (double)s_lo,
           (double)s_nan);
    CHECK(s_hi == 1 && s_lo >= 0 && s_lo < 1e-38 && isnan(s_nan), "pe_sigmoid at +-inf, NaN");
}

static void test_sinusoidal_table(void) {
    enum { T = 6, C = 10 };
    real t[T * C];
    pe_sinusoidal_table(t, T, C);
    double got[T * C], want[T * C];
    for (int p = 0; p < T; p++)
        for (int i = 0; i < C / 2; i++) {
            double a = p / pow(10000.0, 2.0 * i / C);
            want[p * C + 2 * i] = sin(a), want[p * C + 2 * i + 1] = cos(a);
            got[p * C + 2 * i] = t[p * C + 2 * i], got[p * C + 2 * i + 1] = t[p * C + 2 * i + 1];
        }
    check_close("sinusoidal table", got, want, T * C, 1e-6, 0);
}

// ALiBi against its formula: with q·k = 0 the logits are the bias alone, -m_h·(i-j) with
// m_h = 2^(-8h/H), so out_i = Σ_j α_ij v_j has a closed form per head (computed here in double).
static void test_alibi_bias(void) {
    enum { T = 6, C = 4, H = 2 };
    real q[T * C] = {0}, k[T * C] = {0}, v[T * C], out[T * C];
    for (int t = 0; t < T; t++)
        for (int c = 0; c < C; c++) v[t * C + c] = (real)(t + 1);
    Layer L;  // its tables and random inputs are not used: q, k, v are set here
    layer_init(&L, 1, T, C, H, "{\"type\": \"alibi\"}", 0, 10);
    attention_forward(out, &L.cache, q, k, v, NULL, &L.pe, 0, 0, 1, T, C, H);
    double want[T * C];
    for (int h = 0; h < H; h++) {
        double m = pow(2.0, -8.0 * (h + 1) / H);
        for (int i = 0; i < T; i++) {
            double num = 0, den = 0;
            for (int j = 0; j <= i; j++) num += (j + 1) * exp(-m * (i - j)), den += exp(-m * (i - j));
            for (int c = 0; c < C / H; c++) want[i * C + h * (C / H) + c] = num / den;
        }
    }
    CHECK(want[5 * C] > 3.6, "head 1 must lean to the near keys: above the uniform 3.5 (got %g)", want[5 * C]);
    for (int n = 0; n < T * C; n++)
        CHECK(fabs(out[n] - want[n]) < 1e-5, "out[%d] = %g, want %g", n, (double)out[n], want[n]);
    layer_free(&L);
}

int main(void) {
    RUN(test_cope_zero_table_is_plain);
    RUN(test_cope_matches_plain_reference);
    RUN(test_cache_size_grows_with_T);
    RUN(test_keep_gates_choice);
    RUN(test_all_gates_open_count_tokens);
    RUN(test_separator_counting_figure1);
    RUN(test_masking);
    RUN(test_dropout_mask);
    RUN(test_relative_columns);
    RUN(test_rope_rotation);
    RUN(test_alibi_bias);
    RUN(test_longer_than_training);
    RUN(test_threads_bit_identical);
    RUN(test_copy_rows_bit_identical);
    RUN(test_block_rows_agree);
    RUN(test_block_rows_by_length);
    RUN(test_fast_exp);
    RUN(test_fast_exp_extreme_inputs);
    RUN(test_sinusoidal_table);
    return check_summary("test_attention");
}
