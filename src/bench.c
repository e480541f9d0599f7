// The benchmark: times training steps of one model on synthetic flip-flop-shaped batches, or measures
// the machine's dense-product ceiling.
//
//   build/bench --ceiling [--set run.threads=N]
//       prints the best product rate (GFLOP/s) over a few large shapes, the ceiling MFU is taken
//       against, and the OpenBLAS kernel family; then, on a second line, the rate of matmul.c's own
//       loop (which products it takes depends on the build's vector width and on OpenBLAS's kernel)
//   build/bench [--set section.key=value]... [--steps N] [--warmup N] [--vocab V] [--model NAME]
//               [--load NAME] [--ceiling-gflops G] [--torch-tok-s X] [--json FILE]
//       prints one row of the benchmark table (see bench_row) and appends it as one JSON object
//       (one line) to FILE
//   build/bench --attention [--set section.key=value]... [--steps N] [--warmup N]
//       prints the first layer's attention alone, forward and backward, in ms: the fastest of N calls
//       each (see time_attention)
//   build/bench --products [the row's arguments]
//       times the steps as a row does, every dense product timed too (matmul_profile), and prints
//       where the step's time goes (see products_row): the share in products, their FLOPs against
//       the model's, their rate, and the MFU the step would reach if it did nothing but them
//
// Model FLOPs, the numerator of MFU (model FLOP utilisation), count the dense products of the
// transformer only, forward + backward (= 3 × forward: the backward forms the gradients of both
// operands): per token and layer the q, k, v, o projections (and CoPE's separate gate keys where
// present), the two feed-forward products, the language-model head, and attention's QKᵀ and αV over
// the causal triangle (T(T+1)/2 query-key pairs per sequence and head, what the blocked attention
// computes up to its block granularity). A position encoding's own work (CoPE's q·table products,
// gates, interpolation) is not counted, so MFU shows what it costs. scripts/bench.sh runs the rows,
// one process each, so each peak memory is its own.
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>

#include <cblas.h>

#include "attention.h"
#include "config.h"
#include "matmul.h"
#include "micro.h"
#include "model.h"
#include "optim.h"
#include "rng.h"
#include "system.h"
#include "tasks/task.h"

// The PyTorch baseline (scripts/bench_torch.py) is this model: pre-norm, GELU, tied embeddings.
static const char *bench_config =
    "{\"run\": {\"name\": \"bench\"},"
    " \"model\": {\"n_layers\": 4, \"d_model\": 256, \"n_heads\": 4, \"block_size\": 512, \"dropout\": 0.0,"
    "             \"norm\": \"pre\", \"activation\": \"gelu\"},"
    " \"pe\": {\"type\": \"none\"},"
    " \"task\": {\"name\": \"flipflop\"},"
    " \"train\": {\"batch_size\": 16}}";

// The best rate (GFLOP/s) of one product shape, C = A·B, over repeated calls for about a second.
static double product_gflops(int M, int N, int K) {
    real *a = malloc(sizeof(real) * M * K), *b = malloc(sizeof(real) * K * N), *c = malloc(sizeof(real) * M * N);
    if (!a || !b || !c) {
        fprintf(stderr, "bench: out of memory for the product ceiling\n");
        exit(1);
    }
    for (long i = 0; i < (long)M * K; i++) a[i] = (real)((i % 7) - 3) / 8;
    for (long i = 0; i < (long)K * N; i++) b[i] = (real)((i % 5) - 2) / 8;
    memset(c, 0, sizeof(real) * M * N);
    double best = 0, flops = 2.0 * M * N * K, t_end = now_seconds() + 1.0;
    for (int rep = 0; rep < 3 || now_seconds() < t_end; rep++) {  // the first call pages and warms up
        double t0 = now_seconds();
        matmul(0, 0, M, N, K, 1, a, K, b, N, 0, c, N);
        double t = now_seconds() - t0;
        if (rep > 0 && flops / t / 1e9 > best) best = flops / t / 1e9;
    }
    free(a);
    free(b);
    free(c);
    return best;
}

// The best rate of single products over shapes large enough for OpenBLAS's kernels to reach their
// peak: the square one, and the (tokens × width) · (width × 4·width) of a feed-forward layer. They go
// through matmul like the model's: OpenBLAS's sgemm, or the own loop's panels where they run
// (matmul.h), so that the ceiling is the best this build reaches and MFU cannot pass 100%.
static double product_ceiling_gflops(void) {
    static const int shapes[][3] = {{1024, 1024, 1024}, {4096, 1024, 256}, {2048, 2048, 512}};
    double best = 0;
    for (size_t s = 0; s < sizeof shapes / sizeof shapes[0]; s++) {
        double g = product_gflops(shapes[s][0], shapes[s][1], shapes[s][2]);
        if (g > best) best = g;
    }
    return best;
}

// Forward + backward FLOPs of one training step's dense products (see the top of this file).
static double model_flops(const Model *m, int B, int T) {
    double C = m->C, F = m->F, V = m->V, tokens = (double)B * T, per_token = 2 * C * V;
    for (int l = 0; l < m->L; l++) {
        double proj = m->layers[l].wkc ? 5 : 4;
        per_token += 2 * (proj * C * C + 2 * C * F);
    }
    double attention = m->L * (double)B * 2.0 * 2.0 * C * T * (T + 1) / 2;  // QKᵀ and αV, causal
    return 3 * (tokens * per_token + attention);
}

typedef struct {
    double fwd, bwd, opt;  // seconds per step
    int threads_at_end;    // the count the thread governor ran the last step at
} StepTimes;

// Steps as ./train runs them, under the same thread governor (system.h): on a quiet machine it
// leaves the rows' steps at the count asked; with a busy process it may run steps on fewer threads.
// With k micro-batches (train.grad_accum) the passes run as ./train's do (micro.h), the forward and
// backward of each micro-batch together: their time is all in `fwd`.
// profile: the products of the timed steps are tallied (matmul_profile), from the first on.
static StepTimes time_steps(Model *m, MicroRunner *runner, const Config *cfg, const Batch *micro, int k, int warmup,
                            int steps, int profile) {
    StepTimes t = {0, 0, 0, 0};
    int B = micro->B * k, T = micro->T;
    Optimizer opt;
    optimizer_init(&opt, &cfg->train);
    ThreadGovernor gov;
    governor_init(&gov, omp_get_max_threads());
    uint64_t keys[k];
    double losses[k];
    for (int s = 0; s < warmup + steps; s++) {
        if (profile && s == warmup) matmul_profile(1);
        t.threads_at_end = omp_get_max_threads();
        governor_step_begin(&gov);
        double t0 = now_seconds(), t1;
        for (int a = 0; a < k; a++) keys[a] = cfg->model.dropout > 0 ? rng_key(7, s, a, 1) : 0;
        real scale = (real)(1.0 / ((double)B * T));
        if (k == 1) {
            model_zero_grad(m);
            model_forward(m, micro, keys[0]);
            t1 = now_seconds();
            model_backward(m, micro, scale);
        } else {
            micro_gradients(runner, micro, k, keys, scale, losses, NULL);
            t1 = now_seconds();
        }
        double t2 = now_seconds();
        clip_gradients(m, cfg->train.grad_clip);
        adam_update(m, &opt, s + 1, 1e-4);
        double t3 = now_seconds();
        governor_step_end(&gov, t3 - t0);
        if (s >= warmup) {
            t.fwd += (t1 - t0) / steps;
            t.bwd += (t2 - t1) / steps;
            t.opt += (t3 - t2) / steps;
        }
    }
    if (profile) matmul_profile(0);
    return t;
}

// Random tokens and targets over the whole batch; tensors that start at zero (CoPE's tables, whose
// zeros keep every position below 1) get values, so the timed work is the general case.
static void fill_inputs(Model *m, Batch *b, int V) {
    Rng rng;
    rng_seed(&rng, 1);
    for (int k = 0; k < m->n_tensors; k++)
        if (m->tensors[k].init == 'z')
            for (long i = 0; i < m->tensors[k].size; i++) m->params[m->tensors[k].offset + i] = 0.1 * rng_normal(&rng);
    for (long i = 0; i < (long)b->B * b->T; i++) {
        b->tokens[i] = (int)rng_below(&rng, V);
        b->targets[i] = (int)rng_below(&rng, V);
        b->loss_mask[i] = 1;
        b->metric_mask[i] = 0;
        b->key_pad[i] = 0;
    }
}

// Attention alone: the first layer's (its position encodings and tables, as the model built them) on
// random q, k, v and output gradients, forward (with the cache) then backward; the fastest of
// `steps` calls of each after `warmup`. A whole step's time moves by several percent from run to run
// on a shared machine; the fastest call of the part a position encoding changes shows its cost more
// steadily (scripts/bench.sh divides by no PE's). Prints forward and backward milliseconds.
static void time_attention(const Model *m, int B, int T, int warmup, int steps) {
    int C = m->C, H = m->H;
    AttnPE layer = m->pe[0];  // the gate keys (CoPE's sep_keys) are bound to this function's inputs below
    const AttnPE *pe = &layer;
    long n = (long)B * T * C, cache_n = attention_cache_size(pe, B, T, C, H);
    real *x = malloc(sizeof(real) * 10 * n), *cache_mem = malloc(sizeof(real) * cache_n);
    if (!x || !cache_mem) {
        fprintf(stderr, "bench: out of memory for attention at B %d T %d C %d\n", B, T, C);
        exit(1);
    }
    // inputs: q, k, v, output gradient, gate keys | outputs: out, dq, dk, dv, gate keys' gradient
    real *q = x, *k = x + n, *v = x + 2 * n, *dout = x + 3 * n, *out = x + 5 * n, *dq = x + 6 * n;
    real *dk = x + 7 * n, *dv = x + 8 * n;
    if (layer.own_keys) layer.gate_keys = x + 4 * n, layer.dgate_keys = x + 9 * n;
    Rng rng;
    rng_seed(&rng, 2);
    for (long i = 0; i < 5 * n; i++) x[i] = (real)rng_normal(&rng);
    AttnCache cache;
    attention_cache_bind(&cache, cache_mem, pe, B, T, C, H);
    double fwd = 1e30, bwd = 1e30;
    for (int s = 0; s < warmup + steps; s++) {
        memset(dq, 0, sizeof(real) * 4 * n);  // dq, dk, dv and the gate keys' gradient accumulate
        double t0 = now_seconds();
        attention_forward(out, &cache, q, k, v, NULL, pe, 0, 0, B, T, C, H);
        double t1 = now_seconds();
        attention_backward(dq, dk, dv, dout, &cache, q, k, v, NULL, pe, 0, 0, B, T, C, H);
        double t2 = now_seconds();
        if (s >= warmup) {
            fwd = t1 - t0 < fwd ? t1 - t0 : fwd;
            bwd = t2 - t1 < bwd ? t2 - t1 : bwd;
        }
    }
    printf("%.3f %.3f\n", 1e3 * fwd, 1e3 * bwd);
    free(x);
    free(cache_mem);
}

typedef struct {
    const char *model, *load, *json;
    double ceiling, torch_tok_s;
} RowArgs;

// The threads column of a row: the count asked, ", busy" under the script's load, and the count the
// governor ran the last step at where it differs.
static void threads_label(char *buf, size_t size, const RowArgs *r, int threads, StepTimes t) {
    int n = snprintf(buf, size, "%d%s", threads, r->load[0] ? ", busy" : "");
    if (t.threads_at_end != threads) snprintf(buf + n, size - n, " (last step %d)", t.threads_at_end);
}

// The JSON file of --json, opened to append a row's line.
static FILE *json_append(const char *path) {
    FILE *f = fopen(path, "a");
    if (!f) {
        fprintf(stderr, "bench: cannot append to %s\n", path);
        exit(1);
    }
    return f;
}

// One row of the table scripts/bench.sh prints (its header is there), and its JSON line.
static void bench_row(const RowArgs *r, const Config *cfg, const Model *m, int threads, int B, int T, StepTimes t) {
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    double step = t.fwd + t.bwd + t.opt, tok_s = (double)B * T / step, gflops = model_flops(m, B, T) / step / 1e9;
    double mfu = r->ceiling > 0 ? gflops / r->ceiling : 0, peak_mib = ru.ru_maxrss / 1024.0;
    char mfu_s[16] = "", torch_s[48] = "", label[48], passes[48];
    int k = cfg->train.grad_accum;  // micro-batches: their forwards and backwards are timed together
    if (k > 1)
        snprintf(passes, sizeof passes, "%.1f (both, %d micro-batches)", 1e3 * (t.fwd + t.bwd), k);
    else
        snprintf(passes, sizeof passes, "%.1f / %.1f", 1e3 * t.fwd, 1e3 * t.bwd);
    threads_label(label, sizeof label, r, threads, t);
    if (mfu > 0) snprintf(mfu_s, sizeof mfu_s, "%.0f%%", 100 * mfu);
    if (r->torch_tok_s > 0) snprintf(torch_s, sizeof torch_s, "%.0f | %.2f×", r->torch_tok_s, tok_s / r->torch_tok_s);
    printf("| %s L%d d%d H%d T%d B%d | %s | %s | %s / %.1f | %.1f | %.0f | %.1f | %s | %.0f | %s |\n", r->model, m->L,
           m->C, m->H, T, B, cfg->pe.type, label, passes, 1e3 * t.opt,
           1e3 * step, tok_s, gflops, mfu_s, peak_mib, torch_s[0] ? torch_s : "|");
    fflush(stdout);
    if (!r->json) return;
    FILE *f = json_append(r->json);
    fprintf(f,
            "{\"model\": \"%s\", \"L\": %d, \"d\": %d, \"H\": %d, \"T\": %d, \"B\": %d, \"micro_batches\": %d, "
            "\"pe\": \"%s\", \"threads\": %d, "
            "\"threads_at_end\": %d, \"load\": \"%s\", \"fwd_ms\": %.2f, \"bwd_ms\": %.2f, \"opt_ms\": %.2f, "
            "\"step_ms\": %.2f, "
            "\"tok_s\": %.1f, \"model_gflop_s\": %.2f, \"ceiling_gflop_s\": %.2f, \"mfu\": %.4f, \"peak_mib\": %.1f, "
            "\"torch_tok_s\": %.1f}\n",
            r->model, m->L, m->C, m->H, T, B, k, cfg->pe.type, threads, t.threads_at_end, r->load, 1e3 * t.fwd,
            1e3 * t.bwd, 1e3 * t.opt, 1e3 * step, tok_s, gflops, r->ceiling, mfu, peak_mib, r->torch_tok_s);
    fclose(f);
}

// Where a step's time goes, from the tally of its products over the timed steps (time_steps):
// | model | PE | threads | step ms | ms in dense products (share of the step) | their FLOPs over the
// model's | their GFLOP/s | model FLOPs over their time, as a share of the ceiling |
// The last is the MFU a step would reach if everything outside its products took no time: the
// bound its products alone set. The products' FLOPs count what they compute (2·M·N·K each): above
// the model's where attention's blocks cover more than the causal triangle or a position encoding
// has products of its own (CoPE's Q·E, and its backward's), so that ratio is what the PE adds.
static void products_row(const RowArgs *r, const Config *cfg, const Model *m, int threads, int B, int T,
                         StepTimes t, int steps) {
    MatmulProfile p = matmul_profile_read();
    double step = t.fwd + t.bwd + t.opt, in_products = p.seconds / steps, flops = model_flops(m, B, T);
    double mfu_bound = r->ceiling > 0 ? flops / in_products / 1e9 / r->ceiling : 0;
    char bound[16] = "", label[48];
    if (mfu_bound > 0) snprintf(bound, sizeof bound, "%.0f%%", 100 * mfu_bound);
    threads_label(label, sizeof label, r, threads, t);
    printf("| %s L%d d%d H%d T%d B%d | %s | %s | %.1f | %.1f (%.0f%%) | %.3f | %.1f | %s |\n", r->model, m->L, m->C,
           m->H, T, B, cfg->pe.type, label, 1e3 * step, 1e3 * in_products, 100 * in_products / step,
           p.flops / steps / flops, p.flops / p.seconds / 1e9, bound);
    fflush(stdout);
    if (!r->json) return;
    FILE *f = json_append(r->json);
    fprintf(f,
            "{\"model\": \"%s\", \"L\": %d, \"d\": %d, \"H\": %d, \"T\": %d, \"B\": %d, \"pe\": \"%s\", "
            "\"micro_batches\": %d, \"threads\": %d, \"threads_at_end\": %d, \"step_ms\": %.2f, "
            "\"products_ms\": %.2f, \"product_calls_per_step\": %lld, "
            "\"product_flops_over_model\": %.4f, \"product_gflop_s\": %.2f, \"ceiling_gflop_s\": %.2f, "
            "\"mfu_bound\": %.4f}\n",
            r->model, m->L, m->C, m->H, T, B, cfg->pe.type, cfg->train.grad_accum, threads, t.threads_at_end,
            1e3 * step, 1e3 * in_products, p.calls / steps,
            p.flops / steps / flops, p.flops / p.seconds / 1e9, r->ceiling, mfu_bound);
    fclose(f);
}

// What evaluating one sequence at T' = 1, 4 and 16 times the training context needs: activations
// in ./eval's inference mode (row blocks of 256) against the training layout, and the parameters;
// planned by model_init, nothing allocated.
static int print_eval_memory(const Config *cfg, int V) {
    char err[512];
    Model m;
    if (model_init(&m, cfg, V, err, sizeof err) != 0) {
        fprintf(stderr, "bench: %s\n", err);
        return 2;
    }
    int T = cfg->model.block_size;
    for (int k = 1; k <= 16; k *= 4) {
        model_set_inference(&m, 0);
        double training = model_activation_bytes(&m, 1, k * T);
        model_set_inference(&m, 256);
        double inference = model_activation_bytes(&m, 1, k * T);
        printf("| %d L d%d, pe %s | %d (%d×) | %.2f GB | %.2f GB | %.2f GB |\n", cfg->model.n_layers,
               cfg->model.d_model, cfg->pe.type, k * T, k, inference / 1e9, training / 1e9,
               m.n_params * sizeof(real) / 1e9);
    }
    model_free(&m);
    return 0;
}

static int usage(void) {
    fprintf(stderr,
            "usage: bench --ceiling [--set run.threads=N]\n"
            "       bench --eval-memory [--set section.key=value]... [--vocab V]\n"
            "       bench --attention [--set section.key=value]... [--steps N] [--warmup N]\n"
            "       bench [--products] [--set section.key=value]... [--steps N] [--warmup N] [--vocab V]\n"
            "             [--model NAME] [--load NAME] [--ceiling-gflops G] [--torch-tok-s X] [--json FILE]\n");
    return 2;
}

int main(int argc, char **argv) {
    const char *overrides[64];
    int n = 0, steps = 5, warmup = 1, V = 5;  // V: the flip-flop vocabulary
    int ceiling_only = 0, eval_memory = 0, attention_only = 0, products = 0;
    RowArgs row = {"model", "", NULL, 0, 0};
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (strcmp(a, "--ceiling") == 0) {
            ceiling_only = 1;
            continue;
        }
        if (strcmp(a, "--eval-memory") == 0) {
            eval_memory = 1;
            continue;
        }
        if (strcmp(a, "--attention") == 0) {
            attention_only = 1;
            continue;
        }
        if (strcmp(a, "--products") == 0) {
            products = 1;
            continue;
        }
        if (!v) return usage();
        i++;
        if (strcmp(a, "--set") == 0 && n < 64)
            overrides[n++] = v;
        else if (strcmp(a, "--steps") == 0)
            steps = atoi(v);
        else if (strcmp(a, "--warmup") == 0)
            warmup = atoi(v);
        else if (strcmp(a, "--vocab") == 0)
            V = atoi(v);
        else if (strcmp(a, "--model") == 0)
            row.model = v;
        else if (strcmp(a, "--load") == 0)
            row.load = v;
        else if (strcmp(a, "--json") == 0)
            row.json = v;
        else if (strcmp(a, "--ceiling-gflops") == 0)
            row.ceiling = atof(v);
        else if (strcmp(a, "--torch-tok-s") == 0)
            row.torch_tok_s = atof(v);
        else
            return usage();
    }
    // --products times a row's steps: not the ceiling, memory plan or attention alone
    if (steps < 1 || warmup < 0 || V < 2 || (products && (ceiling_only || eval_memory || attention_only)))
        return usage();
    char err[512];
    Config cfg;
    if (config_load_text(&cfg, bench_config, "(bench config)", overrides, n, err, sizeof err) != 0) {
        fprintf(stderr, "bench: %s\n", err);
        return 2;
    }
    int threads = set_threads(cfg.run.threads);
    if (ceiling_only) {
        printf("%.2f %s\n", product_ceiling_gflops(), openblas_get_corename());
        // matmul.c's own loop, on the tiny model's widest product it takes (feed-forward, backward)
        printf("own loop: %.2f GFLOP/s on (4096 × 256)·(256 × 64); %s\n", product_gflops(4096, 64, 256),
               matmul_narrow_path());
        return 0;
    }
    if (eval_memory) return print_eval_memory(&cfg, V);
    int B = cfg.train.batch_size, T = cfg.model.block_size, k = cfg.train.grad_accum;
    if (B % k != 0) {
        fprintf(stderr, "bench: train.batch_size %d does not split into train.grad_accum %d micro-batches\n", B, k);
        return 2;
    }
    Model m;
    MicroRunner runner;
    int replicas = attention_only ? 1 : k < threads ? k : threads;
    if (model_create(&m, &cfg, V, err, sizeof err) != 0 || model_prepare(&m, B / k, T, err, sizeof err) != 0 ||
        micro_init(&runner, &m, replicas, k, B / k, T, err, sizeof err) != 0) {
        fprintf(stderr, "bench: %s\n", err);
        return 2;
    }
    Batch b;
    batch_alloc(&b, B, T);
    b.B = B;
    b.T = T;
    fill_inputs(&m, &b, V);
    if (attention_only) {
        time_attention(&m, B, T, warmup, steps);
    } else {
        Batch micro[k];
        for (int a = 0; a < k; a++) micro[a] = batch_view(&b, a * (B / k), B / k);
        StepTimes t = time_steps(&m, &runner, &cfg, micro, k, warmup, steps, products);
        if (products)
            products_row(&row, &cfg, &m, threads, B, T, t, steps);
        else
            bench_row(&row, &cfg, &m, threads, B, T, t);
    }
    batch_free(&b);
    micro_free(&runner);
    model_free(&m);
    return 0;
}
