// The benchmark: times training steps of one model on synthetic flip-flop-shaped batches.
//
//   build/bench [--set section.key=value]... [--steps N] [--warmup N]
//
// Prints one line: forward, backward and optimizer time per step, tokens/s and the process's peak
// resident memory. scripts/bench.sh runs it over models, position encodings, lengths and thread
// counts (one process per line, so each peak memory is its own).
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>


#include "config.h"
#include "model.h"
#include "optim.h"
#include "rng.h"
#include "system.h"
#include "tasks/task.h"

static const char *bench_config =
    "{\"run\": {\"name\": \"bench\"},"
    " \"model\": {\"n_layers\": 4, \"d_model\": 256, \"n_heads\": 4, \"block_size\": 512, \"dropout\": 0.0},"
    " \"pe\": {\"type\": \"none\"},"
    " \"task\": {\"name\": \"flipflop\"},"
    " \"train\": {\"batch_size\": 16}}";

int main(int argc, char **argv) {
    const char *overrides[64];
    int n = 0, steps = 5, warmup = 1;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--set") == 0 && i + 1 < argc && n < 64)
            overrides[n++] = argv[++i];
        else if (strcmp(argv[i], "--steps") == 0 && i + 1 < argc)
            steps = atoi(argv[++i]);
        else if (strcmp(argv[i], "--warmup") == 0 && i + 1 < argc)
            warmup = atoi(argv[++i]);
        else {
            fprintf(stderr, "usage: bench [--set section.key=value]... [--steps N] [--warmup N]\n");
            return 2;
        }
    }
    char err[512];
    Config cfg;
    if (config_load_text(&cfg, bench_config, "(bench config)", overrides, n, err, sizeof err) != 0) {
        fprintf(stderr, "bench: %s\n", err);
        return 2;
    }
    int threads = set_threads(cfg.run.threads);

    int B = cfg.train.batch_size, T = cfg.model.block_size, V = 5;
    Model m;
    if (model_create(&m, &cfg, V, err, sizeof err) != 0 || model_prepare(&m, B, T, err, sizeof err) != 0) {
        fprintf(stderr, "bench: %s\n", err);
        return 2;
    }
    // Tensors that start at zero (CoPE's tables, whose zeros keep every position below 1) get values,
    // so the timed work is the general case.
    Rng rng;
    rng_seed(&rng, 1);
    for (int k = 0; k < m.n_tensors; k++)
        if (m.tensors[k].init == 'z')
            for (long i = 0; i < m.tensors[k].size; i++) m.params[m.tensors[k].offset + i] = 0.1 * rng_normal(&rng);

    Batch b;
    batch_alloc(&b, B, T);
    b.B = B;
    b.T = T;
    for (long i = 0; i < (long)B * T; i++) {
        b.tokens[i] = (int)rng_below(&rng, V);
        b.targets[i] = (int)rng_below(&rng, V);
        b.loss_mask[i] = 1;
        b.metric_mask[i] = 0;
        b.key_pad[i] = 0;
    }
    double t_fwd = 0, t_bwd = 0, t_opt = 0;
    Optimizer opt;
    optimizer_init(&opt, &cfg.train);
    for (int s = 0; s < warmup + steps; s++) {
        double t0 = now_seconds();
        model_zero_grad(&m);
        uint64_t key = cfg.model.dropout > 0 ? rng_key(7, s, 0, 1) : 0;
        model_forward(&m, &b, key);
        double t1 = now_seconds();
        model_backward(&m, &b, (real)(1.0 / ((double)B * T)));
        double t2 = now_seconds();
        clip_gradients(&m, cfg.train.grad_clip);
        adam_update(&m, &opt, s + 1, 1e-4);
        double t3 = now_seconds();
        if (s >= warmup) {
            t_fwd += t1 - t0;
            t_bwd += t2 - t1;
            t_opt += t3 - t2;
        }
    }
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    double step_ms = 1e3 * (t_fwd + t_bwd + t_opt) / steps;
    printf("%-10s L=%d d=%d H=%d T=%-5d B=%-3d threads=%d | fwd %8.1f ms | bwd %8.1f ms | opt %6.1f ms | step %8.1f ms "
           "| %8.0f tok/s | peak %6.0f MiB\n",
           cfg.pe.type, cfg.model.n_layers, cfg.model.d_model, cfg.model.n_heads, T, B, threads,
           1e3 * t_fwd / steps, 1e3 * t_bwd / steps, 1e3 * t_opt / steps, step_ms, (double)B * T / (step_ms / 1e3),
           ru.ru_maxrss / 1024.0);
    batch_free(&b);
    model_free(&m);
    return 0;
}
