// Dumps one forward and backward of the model (double build) for the cross-check against the
// independent PyTorch reference (scripts/torch_crosscheck.py, scripts/torch_reference.py).
//
//   tool_crosscheck_dump OUT.bin [--config JSON] [--set section.key=value]... [--vocab V] [--batch B]
//
// The config is JSON text (default: a small 2-layer model, see DEFAULT_CONFIG) with --set overrides,
// loaded by config_load_text like ./train loads its file. The batch has T = model.block_size
// positions and covers what the reference must agree on: loss-masked positions, right padding in
// one sequence and left padding in another (padding keys are masked out, a padding query still
// sees itself). Parameters that start at zero or one (CoPE tables, LayerNorm) are randomised so
// that every path carries gradient. Dropout is off.
//
// OUT is a checkpoint-format file (src/checkpoint.h) with sections
//   config (resolved JSON), batch (JSON {"B", "T", "V", "scale"}), tensors (JSON [{name, offset, size}]),
//   params, logits (B·T·V), loss (scalar: summed loss × scale), grads: float64;
//   tokens, targets: int32 (B,T); loss_mask, key_pad: uint8 (B,T).
// The gradient is that of loss = scale × summed loss, scale = 1 / (number of loss positions).
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "checkpoint.h"
#include "config.h"
#include "model.h"
#include "rng.h"

#ifndef REAL_DOUBLE
#error "tool_crosscheck_dump compares float64 results: build it against the double core"
#endif

static const char *DEFAULT_CONFIG =
    "{\"model\": {\"n_layers\": 2, \"d_model\": 16, \"n_heads\": 2, \"d_ff\": 24, \"block_size\": 8,"
    " \"dropout\": 0},"
    " \"pe\": {\"type\": \"cope\"},"
    " \"task\": {\"name\": \"flipflop\"},"
    " \"run\": {\"name\": \"crosscheck\", \"seed\": 5}}";

#define MAX_SETS 64

static void die(const char *msg) {
    fprintf(stderr, "tool_crosscheck_dump: %s\n", msg);
    exit(1);
}

static void usage(void) {
    fprintf(stderr,
            "usage: tool_crosscheck_dump OUT.bin [--config JSON] [--set section.key=value]... [--vocab V] "
            "[--batch B]\n");
    exit(2);
}

static int parse_int(const char *s, const char *what, int lo, int hi) {
    char *end;
    long v = strtol(s, &end, 10);
    if (*s == 0 || *end != 0 || v < lo || v > hi) {
        fprintf(stderr, "tool_crosscheck_dump: %s must be an integer in [%d, %d], got \"%s\"\n", what, lo, hi, s);
        exit(2);
    }
    return (int)v;
}

// Tokens and targets uniform over the vocabulary, about 70 % of positions in the loss; sequence 1
// (if any) ends in 2 padding positions, sequence 2 (if any) starts with 1. Padding is never in the
// loss; sequence 0 always has a loss position so the scale is finite.
static void fill_batch(Batch *b, int B, int T, int V) {
    Rng r;
    rng_seed(&r, 20240529);
    b->B = B;
    b->T = T;
    for (int i = 0; i < B * T; i++) {
        b->tokens[i] = (int)rng_below(&r, (uint64_t)V);
        b->targets[i] = (int)rng_below(&r, (uint64_t)V);
        b->loss_mask[i] = rng_uniform(&r) < 0.7;
        b->metric_mask[i] = b->loss_mask[i];
        b->key_pad[i] = 0;
    }
    b->loss_mask[T - 1] = 1;
    if (B > 1 && T > 3)
        for (int t = T - 2; t < T; t++) b->key_pad[T + t] = 1;
    if (B > 2 && T > 2) b->key_pad[2 * T] = 1;
    for (int i = 0; i < B * T; i++)
        if (b->key_pad[i]) b->loss_mask[i] = b->metric_mask[i] = 0;
}

// The tensor table as JSON text (malloc'd).
static char *tensors_json(const Model *m) {
    size_t cap = 128 + (size_t)m->n_tensors * 128, len = 0;
    char *s = malloc(cap);
    if (!s) die("out of memory");
    len += snprintf(s + len, cap - len, "[");
    for (int i = 0; i < m->n_tensors; i++) {
        const ParamTensor *t = &m->tensors[i];
        len += snprintf(s + len, cap - len, "%s{\"name\": \"%s\", \"offset\": %ld, \"size\": %ld}", i ? ", " : "",
                        t->name, t->offset, t->size);
    }
    snprintf(s + len, cap - len, "]");
    return s;
}

int main(int argc, char **argv) {
    if (argc < 2 || argv[1][0] == '-') usage();
    const char *out = argv[1];
    const char *json = DEFAULT_CONFIG;
    const char *sets[MAX_SETS];
    int n_sets = 0, V = 11, B = 3;
    for (int i = 2; i < argc; i++) {
        if (i + 1 >= argc) usage();
        if (!strcmp(argv[i], "--config"))
            json = argv[++i];
        else if (!strcmp(argv[i], "--set")) {
            if (n_sets == MAX_SETS) die("too many --set overrides");
            sets[n_sets++] = argv[++i];
        } else if (!strcmp(argv[i], "--vocab"))
            V = parse_int(argv[++i], "--vocab", 2, 1 << 20);
        else if (!strcmp(argv[i], "--batch"))
            B = parse_int(argv[++i], "--batch", 1, 1024);
        else
            usage();
    }

    char err[512];
    Config cfg;
    if (config_load_text(&cfg, json, "crosscheck config", sets, n_sets, err, sizeof err) != 0) die(err);
    if (cfg.model.dropout != 0) die("model.dropout must be 0: the reference has no dropout");
    int T = cfg.model.block_size;

    Model m;
    if (model_create(&m, &cfg, V, err, sizeof err) != 0) die(err);
    if (model_prepare(&m, B, T, err, sizeof err) != 0) die(err);
    // Zero- and one-initialised tensors get small random values, as in tests/grad_model.c; the
    // others keep their (seeded) initialisation.
    Rng r;
    rng_seed(&r, 777);
    for (int k = 0; k < m.n_tensors; k++) {
        const ParamTensor *t = &m.tensors[k];
        if (t->init == 'z' || t->init == 'o')
            for (long i = 0; i < t->size; i++) m.params[t->offset + i] = (t->init == 'o') + (rng_uniform(&r) - 0.5);
    }

    Batch b;
    batch_alloc(&b, B, T);
    fill_batch(&b, B, T, V);
    int n_loss = 0;
    for (int i = 0; i < B * T; i++) n_loss += b.loss_mask[i];
    double scale = 1.0 / n_loss;

    model_zero_grad(&m);
    double total = model_forward(&m, &b, 0);
    long nlogits = (long)B * T * V;
    double *logits = malloc(sizeof(double) * nlogits);
    if (!logits) die("out of memory");
    memcpy(logits, m.logits, sizeof(double) * nlogits);  // model_backward reuses the buffer
    model_backward(&m, &b, scale);
    double loss = total * scale;

    int32_t *tokens = malloc(sizeof(int32_t) * B * T), *targets = malloc(sizeof(int32_t) * B * T);
    if (!tokens || !targets) die("out of memory");
    for (int i = 0; i < B * T; i++) tokens[i] = b.tokens[i], targets[i] = b.targets[i];
    char *cfg_json = config_to_json(&cfg);
    char *tens_json = tensors_json(&m);
    char batch_json[256];
    snprintf(batch_json, sizeof batch_json, "{\"B\": %d, \"T\": %d, \"V\": %d, \"scale\": %.17g}", B, T, V, scale);
    if (!cfg_json) die("config_to_json failed");
    CkptSection sec[] = {
        {"config", cfg_json, strlen(cfg_json)},
        {"batch", batch_json, strlen(batch_json)},
        {"tensors", tens_json, strlen(tens_json)},
        {"params", m.params, sizeof(double) * m.n_params},
        {"tokens", tokens, sizeof(int32_t) * B * T},
        {"targets", targets, sizeof(int32_t) * B * T},
        {"loss_mask", b.loss_mask, (size_t)B * T},
        {"key_pad", b.key_pad, (size_t)B * T},
        {"logits", logits, sizeof(double) * nlogits},
        {"loss", &loss, sizeof loss},
        {"grads", m.grads, sizeof(double) * m.n_params},
    };
    if (checkpoint_write(out, sec, (int)(sizeof sec / sizeof sec[0]), err, sizeof err) != 0) die(err);
    printf("%s: %ld parameters in %d tensors, batch %d x %d, %d loss positions, loss %.17g\n", out, m.n_params,
           m.n_tensors, B, T, n_loss, loss);
    free(cfg_json);
    free(tens_json);
    free(tokens);
    free(targets);
    free(logits);
    batch_free(&b);
    model_free(&m);
    return 0;
}
