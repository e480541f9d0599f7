// The model as a whole, in the float build: swapping pe.type really swaps the encoding (no leftover
// parameters, different outputs), which encodings run past the training length, the same bits at a
// repeated forward, and micro-batches on replicas.
#include <math.h>
#include <omp.h>

#include "args.h"
#include "attention.h"
#include "budget.h"
#include "check.h"
#include "micro.h"
#include "model.h"

static const int V = 9, B = 2, T = 16;

// A small model's config through the production loader: `layers` pre-norm GELU layers of width 16 in
// 2 heads, FF 32, context T, dropout as given, pe.type `pe`; `pe_more` adds members to the pe section.
static Config config_for_layers(int layers, const char *pe, const char *pe_more, double dropout) {
    char text[1024], err[512];
    snprintf(text, sizeof text,
             "{\"run\": {\"name\": \"test_model\", \"seed\": 1}, \"model\": {\"n_layers\": %d, \"d_model\": 16, "
             "\"n_heads\": 2, \"d_ff\": 32, \"norm\": \"pre\", \"activation\": \"gelu\", \"block_size\": %d, "
             "\"dropout\": %g}, \"pe\": {\"type\": \"%s\"%s}, \"task\": {\"length\": %d}}",
             layers, T, dropout, pe, pe_more, T);
    Config c;
    CHECK(config_load_text(&c, text, "test_model config", NULL, 0, err, sizeof err) == 0, "%s", err);
    return c;
}
static Config config_for(const char *pe, const char *pe_more, double dropout) {
    return config_for_layers(2, pe, pe_more, dropout);
}

static void make_batch(Batch *b, int nt) {
    batch_alloc(b, B, nt);
    b->B = B;
    b->T = nt;
    for (int i = 0; i < B * nt; i++) {
        b->tokens[i] = (i * 7 + 3) % V;
        b->targets[i] = (i * 5 + 1) % V;
        b->loss_mask[i] = 1;
        b->metric_mask[i] = 0;
        b->key_pad[i] = 0;
    }
}

static int has_tensor(const Model *m, const char *part) {
    for (int k = 0; k < m->n_tensors; k++)
        if (strstr(m->tensors[k].name, part)) return 1;
    return 0;
}

// CoPE tables start at zero, so a CoPE model computes what "none" does until they move; give every
// encoding's tables values so outputs can differ.
static void perturb_tables(Model *m) {
    unsigned long long s = 3;
    for (int k = 0; k < m->n_tensors; k++)
        if (strstr(m->tensors[k].name, "cope_table"))
            for (long i = 0; i < m->tensors[k].size; i++) m->params[m->tensors[k].offset + i] = check_rand(&s);
}

static void test_swap_removes_the_old_encoding(void) {
    const char *types[] = {"none", "abs", "rel", "rope", "cope", "cope+rel", "cope+rope", "abs+rel"};
    const char *tables[] = {"wpe", "rel_table", "cope_table"};
    const int want[8][3] = {{0, 0, 0}, {1, 0, 0}, {0, 1, 0}, {0, 0, 0}, {0, 0, 1}, {0, 1, 1}, {0, 0, 1}, {1, 1, 0}};
    double losses[8];
    Batch b;
    make_batch(&b, T);
    for (int t = 0; t < 8; t++) {
        Config c = config_for(types[t], "", 0);
        Model m;
        char err[256];
        CHECK(model_create(&m, &c, V, err, sizeof err) == 0 && model_prepare(&m, B, T, err, sizeof err) == 0, "%s: %s",
              types[t], err);
        for (int k = 0; k < 3; k++)
            CHECK(has_tensor(&m, tables[k]) == want[t][k], "pe.type %s: parameter %s %s", types[t], tables[k],
                  want[t][k] ? "missing" : "left over");
        perturb_tables(&m);
        losses[t] = model_forward(&m, &b, 0);
        model_free(&m);
    }
    for (int t = 0; t < 8; t++)
        for (int u = t + 1; u < 8; u++)
            CHECK(losses[t] != losses[u], "pe.type %s and %s give the same loss %.9g", types[t], types[u], losses[t]);
    batch_free(&b);
}

// CoPE, capped relative, RoPE, sinusoidal and none run at 4× the training context with the same
// parameters; learned absolute and uncapped relative refuse with a message saying why.
static void test_longer_contexts(void) {
    const char *runs[] = {"cope", "rope", "none", "rel", "abs"};
    for (int t = 0; t < 5; t++) {
        Config c = config_for(runs[t], t == 3 ? ", \"rel_capped\": true" : t == 4 ? ", \"abs_kind\": \"sinusoidal\"" : "", 0);
        Model m;
        char err[256] = "";
        CHECK(model_create(&m, &c, V, err, sizeof err) == 0, "%s", err);
        long n_params = m.n_params;
        CHECK(model_prepare(&m, B, 4 * T, err, sizeof err) == 0, "%s at 4T: %s", runs[t], err);
        Batch b;
        make_batch(&b, 4 * T);
        double loss = model_forward(&m, &b, 0);
        CHECK(isfinite(loss) && m.n_params == n_params, "%s at 4T: loss %g", runs[t], loss);
        batch_free(&b);
        model_free(&m);
    }
    const char *refused[] = {"abs", "rel"};
    const char *reason[] = {"absolute", "relative"};
    for (int t = 0; t < 2; t++) {
        Config c = config_for(refused[t], "", 0);
        Model m;
        char err[256] = "";
        CHECK(model_create(&m, &c, V, err, sizeof err) == 0, "%s", err);
        CHECK(model_prepare(&m, B, T, err, sizeof err) == 0, "%s at T: %s", refused[t], err);
        CHECK(model_prepare(&m, B, T + 1, err, sizeof err) != 0 && strstr(err, reason[t]), "%s beyond T: \"%s\"",
              refused[t], err);
        printf("     %s beyond its length: %s\n", refused[t], err);
        model_free(&m);
    }
}

static void test_forward_repeats_bit_for_bit(void) {
    Config c = config_for("cope+rel", "", 0.2);
    Model m;
    char err[256];
    CHECK(model_create(&m, &c, V, err, sizeof err) == 0 && model_prepare(&m, B, T, err, sizeof err) == 0, "%s", err);
    perturb_tables(&m);
    Batch b;
    make_batch(&b, T);
    double first = model_forward(&m, &b, 42), again = model_forward(&m, &b, 42), other = model_forward(&m, &b, 43);
    CHECK(first == again, "same dropout key, different loss: %.17g vs %.17g", first, again);
    CHECK(first != other, "another dropout key gives the same loss");
    batch_free(&b);
    model_free(&m);
}

// model_init lays the model out without allocating it, so its memory can be budgeted first; the
// figures agree with what model_create and model_prepare then allocate.
static void test_memory_budget(void) {
    char err[1024];
    Config c = config_for("cope", "", 0);
    Model planned, built;
    CHECK(model_init(&planned, &c, V, err, sizeof err) == 0, "model_init: %s", err);
    CHECK(planned.params == NULL && planned.grads == NULL && planned.n_params > 0, "model_init allocated parameters");
    CHECK(model_create(&built, &c, V, err, sizeof err) == 0, "model_create: %s", err);
    CHECK(planned.n_params == built.n_params, "n_params %ld planned, %ld built", planned.n_params, built.n_params);
    CHECK(model_prepare(&built, B, T, err, sizeof err) == 0, "prepare: %s", err);
    CHECK(model_activation_bytes(&planned, B, T) == (double)built.act_size * sizeof(real),
          "activations %g bytes planned, %g allocated", model_activation_bytes(&planned, B, T),
          (double)built.act_size * sizeof(real));
    // A context no machine holds: a finite estimate past any memory, no overflow.
    double huge = model_activation_bytes(&planned, 1, 2147483647);
    CHECK(isfinite(huge) && huge > 1e18, "activations at T = 2^31-1: %g bytes", huge);

    Budget b = {0};
    budget_model(&b, &planned, 1, B, T, 2);
    double params = (double)planned.n_params * sizeof(real);
    CHECK(b.n == 5 && b.parts[0].bytes == params && b.parts[1].bytes == params && b.parts[2].bytes == 2 * params,
          "parameters, gradients, 2 moments: %d parts", b.n);
    double total = budget_total(&b);
    CHECK(budget_check(&b, total, err, sizeof err) == 0, "a budget that fits exactly is refused: %s", err);
    CHECK(budget_check(&b, 0, err, sizeof err) == 0, "an unknown limit refuses");
    CHECK(budget_check(&b, total - 1, err, sizeof err) != 0 && strstr(err, "needs") && strstr(err, "largest: activations") &&
              strstr(err, "train.batch_size"),
          "refusal names the largest part and its keys: %s", err);
    printf("     e.g.: %s\n", err);

    double v;
    CHECK(parse_size("8G", &v) == 0 && v == 8.0 * 1073741824, "8G = %g", v);
    CHECK(parse_size("1.5MiB", &v) == 0 && v == 1.5 * 1048576, "1.5MiB = %g", v);
    CHECK(parse_size("4096", &v) == 0 && v == 4096, "4096 = %g", v);
    CHECK(parse_size("8X", &v) != 0 && parse_size("G", &v) != 0 && parse_size("-1G", &v) != 0 &&
              parse_size("8Gb!", &v) != 0,
          "malformed sizes accepted");
    model_free(&planned);
    model_free(&built);
}

// model_check_finite names the tensor and the index of the first non-finite value.
static void test_finite_check(void) {
    char err[512];
    Config c = config_for("cope", "", 0);
    Model m;
    CHECK(model_create(&m, &c, V, err, sizeof err) == 0, "model_create: %s", err);
    CHECK(model_check_finite(&m, m.params, "params", err, sizeof err) == 0, "a fresh model is not finite: %s", err);
    const ParamTensor *t = &m.tensors[3];
    m.params[t->offset + 2] = INFINITY;
    char want[128];
    snprintf(want, sizeof want, "params: tensor %s holds +Inf at index 2", t->name);
    CHECK(model_check_finite(&m, m.params, "params", err, sizeof err) != 0 && strcmp(err, want) == 0, "got \"%s\", want \"%s\"",
          err, want);
    m.params[t->offset + 2] = NAN;
    CHECK(model_check_finite(&m, m.params, "params", err, sizeof err) != 0 && strstr(err, "NaN"), "NaN: %s", err);
    model_free(&m);
}

// Gives every parameter a random value (the CoPE tables start at zero), so all paths matter.
static void randomise(Model *m, unsigned long long seed) {
    unsigned long long s = seed;
    for (long i = 0; i < m->n_params; i++) m->params[i] = (real)(0.5 * check_rand(&s));
}

// Inference mode (attention in blocks of rows through one shared cache) computes the logits the
// training forward does, for every encoding, with key padding and several blocks; and decoding
// (model_forward_from one row at a time, keys and values kept) gives each row's logits of the whole
// forward. Agreement is to float rounding: the blocks group the products differently.
static void test_inference_and_decoding_match_the_forward(void) {
    const char *types[] = {"none", "abs", "rel", "rope", "cope", "cope+rel", "cope+rope", "abs+rel", "alibi"};
    const char *more[] = {"", "", "", "", ", \"sep_keys\": true", "", ", \"rope_gates\": \"unrotated\"", "", ""};
    for (int t = 0; t < 9; t++) {
        Config c = config_for_layers(5, types[t], more[t], 0);  // 5: inference reuses layers 0 and 1's buffers
        Model m;
        char err[256];
        CHECK(model_create(&m, &c, V, err, sizeof err) == 0 && model_prepare(&m, B, T, err, sizeof err) == 0, "%s", err);
        randomise(&m, 5 + t);
        Batch b;
        make_batch(&b, T);
        b.key_pad[T + 3] = b.key_pad[T + 7] = 1;  // sequence 1 has padding keys
        long n = (long)B * T * V;
        double *want = malloc(sizeof(double) * n), *got = malloc(sizeof(double) * n);
        double loss = model_forward(&m, &b, 0);
        for (long i = 0; i < n; i++) want[i] = m.logits[i];

        // blocks of 5 rows: 4 blocks over T = 16, the last partial; of 12: the first block's cache, 12
        // rows against 12 keys, is a forward of every row, which an inference cache keeps no more for.
        // The blocks of 12 and the decoding read the head's rows from copies (attention.h), as long
        // contexts do.
        char what[96];
        for (int rows = 5; rows <= 12; rows += 7) {
            attention_set_copy_rows(rows == 12);
            model_set_inference(&m, rows);
            CHECK(model_prepare(&m, B, T, err, sizeof err) == 0, "%s", err);
            double loss_inf = model_forward(&m, &b, 77);  // the dropout key is ignored in inference
            for (long i = 0; i < n; i++) got[i] = m.logits[i];
            snprintf(what, sizeof what, "%s: inference logits, blocks of %d rows", types[t], rows);
            check_close(what, got, want, n, 1e-5, 1e-5);
            CHECK(fabs(loss_inf - loss) <= 1e-5 * fabs(loss), "%s: loss %.9g vs %.9g", types[t], loss_inf, loss);
        }

        // decoding sequence 0 one token at a time
        Batch one = b;
        one.B = 1;
        for (int t1 = 1; t1 <= T; t1++) {
            one.T = t1;  // rows 0..t1-1 of sequence 0 with stride t1: only row t1-1 is new
            for (int i = 0; i < t1; i++) {
                one.tokens[i] = b.tokens[i], one.targets[i] = b.targets[i], one.loss_mask[i] = 1, one.key_pad[i] = 0;
            }
            model_forward_from(&m, &one, t1 - 1);
            for (int v = 0; v < V; v++) got[(long)(t1 - 1) * V + v] = m.logits[(long)(t1 - 1) * V + v];
        }
        attention_set_copy_rows(-1);
        snprintf(what, sizeof what, "%s: decoded logits", types[t]);
        check_close(what, got, want, (long)T * V, 1e-5, 1e-5);
        // memory at a long context: the rows × T' cache instead of every layer's B·H·T'² tables
        double infer = model_activation_bytes(&m, 1, 4096);
        model_set_inference(&m, 0);
        double train = model_activation_bytes(&m, 1, 4096);
        if (t == 4) printf("     cope at T' = 4096: inference %.1f MB, training layout %.1f MB\n", infer / 1e6, train / 1e6);
        CHECK(infer < train / 10, "%s: inference activations %.3g bytes vs %.3g", types[t], infer, train);
        free(want), free(got);
        batch_free(&b);
        model_free(&m);
    }
}

// A batch of 6 sequences in 3 micro-batches (micro.h) gives the gradient of the batch in one piece,
// to float rounding (the sums group differently), and the same bits whether 1, 2 or 3 replicas run
// them (2: a round of two, then one alone); the losses and statistics of all three are returned.
static void test_micro_batches(void) {
    enum { K = 3, SEQ = 6 };
    Config c = config_for("cope+rope", ", \"sep_keys\": true", 0.0);
    Model m;
    char err[256];
    CHECK(model_create(&m, &c, V, err, sizeof err) == 0 && model_prepare(&m, SEQ, T, err, sizeof err) == 0, "%s", err);
    randomise(&m, 11);
    Batch whole;
    batch_alloc(&whole, SEQ, T);
    whole.B = SEQ, whole.T = T;
    for (int i = 0; i < SEQ * T; i++) {
        whole.tokens[i] = (i * 7 + 3) % V;
        whole.targets[i] = (i * 5 + 1) % V;
        whole.loss_mask[i] = 1;
        whole.metric_mask[i] = i % 3 == 0;
        whole.key_pad[i] = 0;
    }
    real scale = (real)(1.0 / (SEQ * T));
    model_zero_grad(&m);
    double one_loss = model_forward(&m, &whole, 0);
    model_backward(&m, &whole, scale);
    double *one = malloc(sizeof(double) * m.n_params), *got = malloc(sizeof(double) * m.n_params);
    real *first = malloc(sizeof(real) * m.n_params);
    CHECK(one && got && first, "out of memory");
    for (long i = 0; i < m.n_params; i++) one[i] = m.grads[i];

    Batch micro[K];
    for (int a = 0; a < K; a++) micro[a] = batch_view(&whole, a * (SEQ / K), SEQ / K);
    uint64_t keys[K] = {0, 0, 0};
    int threads = omp_get_max_threads();
    for (int n = 1; n <= K; n++) {
        MicroRunner r;
        CHECK(micro_init(&r, &m, n, K, SEQ / K, T, err, sizeof err) == 0, "%s", err);
        omp_set_num_threads(n);
        double losses[K];
        EvalStats stats = {0};
        micro_gradients(&r, micro, K, keys, scale, losses, &stats);
        omp_set_num_threads(threads);
        CHECK(stats.n_loss == SEQ * T && stats.n_metric == SEQ * T / 3, "statistics of %ld and %ld positions",
              stats.n_loss, stats.n_metric);
        double sum = losses[0] + losses[1] + losses[2];
        CHECK(fabs(sum - one_loss) <= 1e-5 * fabs(one_loss), "%d replicas: loss %.9g, one batch %.9g", n, sum, one_loss);
        if (n == 1) {
            memcpy(first, m.grads, sizeof(real) * m.n_params);
            for (long i = 0; i < m.n_params; i++) got[i] = m.grads[i];
            // float32 sums of 32-96 products each, grouped differently: a few ulps of the larger terms
            CHECK(check_close("3 micro-batches against one batch", got, one, m.n_params, 1e-6, 1e-4), "see above");
        } else {
            CHECK(memcmp(first, m.grads, sizeof(real) * m.n_params) == 0, "%d replicas change the gradient's bits", n);
        }
        micro_free(&r);
    }
    free(one);
    free(got);
    free(first);
    batch_free(&whole);
    model_free(&m);
}

int main(void) {
    RUN(test_memory_budget);
    RUN(test_finite_check);
    RUN(test_swap_removes_the_old_encoding);
    RUN(test_longer_contexts);
    RUN(test_forward_repeats_bit_for_bit);
    RUN(test_inference_and_decoding_match_the_forward);
    RUN(test_micro_batches);
    return check_summary("model");
}
