// ./sample runs/<name> --prompt "..." [options]: text from a trained language-model run.
//
// Each new token recomputes the whole forward pass over the context (contexts are small; no KV
// cache), a window of the last model.block_size tokens once the text is longer. The prompt is
// tokenized as the run's task does: bytes (byte tokenizer) or the training vocabulary's words
// with <unk> for unknown ones and <eos> at line ends (word tokenizer). Temperature 0 is greedy
// (argmax, the lowest id on ties); otherwise the logits are divided by the temperature, cut to the
// top k (k > 0) and sampled with a seeded generator, so the same arguments give the same text.
// The text goes to stdout (prompt and continuation, nothing else); the header goes to stderr.
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>


#include "config.h"
#include "model.h"
#include "run.h"
#include "system.h"
#include "rng.h"
#include "tasks/task.h"
#include "tasks/tokenizer.h"

static void usage(void) {
    fprintf(stderr,
            "usage: ./sample runs/<name> --prompt \"...\" [--tokens N] [--temperature t] [--top-k k] [--seed s]\n"
            "                [--checkpoint FILE] [--threads N]\n"
            "  --prompt TEXT      the start of the text (empty: start after a line end)\n"
            "  --tokens N         tokens to generate (default 200)\n"
            "  --temperature t    0 = greedy; default 1\n"
            "  --top-k k          sample among the k most likely tokens (default 0 = all)\n"
            "  --seed s           the sampler's seed (default 0)\n"
            "  --checkpoint FILE  a checkpoint of the run (default: the one `latest` names)\n"
            "  --threads N        threads (default: the run's run.threads, 0 = all cores)\n"
            "For language-model runs (task.name lm), byte or word tokenizer. Deterministic for the\n"
            "same arguments and thread count.\n");
}

static int parse_long(const char *s, long *out) {
    char *end;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (errno || end == s || *end) return -1;
    *out = v;
    return 0;
}

// The prompt's tokens (malloc'd, *n of them).
static int *encode_prompt(const Task *task, int word, const char *prompt, long *n) {
    size_t len = strlen(prompt);
    if (!word) {
        int *ids = malloc(sizeof(int) * (len + 1));
        for (size_t i = 0; i < len; i++) ids[i] = (unsigned char)prompt[i];
        *n = (long)len;
        return ids;
    }
    // The training vocabulary rebuilt from the task's token strings: ids are kept in order, so
    // word_encode gives the ids the model knows.
    Vocab *v = vocab_new();
    for (int id = 0; id < task_vocab_size(task); id++) {
        const char *w = task_token_str(task, id);
        vocab_add(v, w, strlen(w));
    }
    long count = word_encode(v, prompt, len, NULL);
    int *ids = malloc(sizeof(int) * (size_t)(count + 1));
    word_encode(v, prompt, len, ids);
    // word_encode closes a final line without '\n' with <eos>; a prompt continues its last line
    if (count > 0 && len > 0 && prompt[len - 1] != '\n' && ids[count - 1] == WORD_EOS) count--;
    vocab_free(v);
    *n = count;
    return ids;
}

// Words are separated by spaces, except at the start of a line.
static void print_token(const Task *task, int word, int id, int *line_start) {
    if (!word) {
        putchar(id);
        return;
    }
    if (id == WORD_EOS) {
        putchar('\n');
        *line_start = 1;
        return;
    }
    if (!*line_start) putchar(' ');
    fputs(task_token_str(task, id), stdout);
    *line_start = 0;
}

// The next token from a row of logits.
static int choose(const real *logits, int V, double temperature, int top_k, Rng *rng, double *p) {
    int best = 0;
    for (int v = 1; v < V; v++)
        if (logits[v] > logits[best]) best = v;
    if (temperature <= 0) return best;
    // keep the top k: a threshold at the k-th largest logit (ties at the threshold are kept)
    double cut = -INFINITY;
    if (top_k > 0 && top_k < V) {
        for (int v = 0; v < V; v++) p[v] = logits[v];
        for (int k = 0; k < top_k; k++) {  // partial selection: k passes are cheap for small k
            int m = -1;
            for (int v = 0; v < V; v++)
                if (p[v] != -INFINITY && (m < 0 || p[v] > p[m])) m = v;
            cut = p[m];
            p[m] = -INFINITY;
        }
    }
    double mx = logits[best], sum = 0;
    for (int v = 0; v < V; v++) {
        p[v] = logits[v] >= cut ? exp((logits[v] - mx) / temperature) : 0;
        sum += p[v];
    }
    double u = rng_uniform(rng) * sum, acc = 0;
    for (int v = 0; v < V; v++) {
        acc += p[v];
        if (p[v] > 0 && u < acc) return v;
    }
    return best;  // rounding at the very end of the cumulative sum
}

int main(int argc, char **argv) {
    const char *run_dir = NULL, *prompt = NULL, *ckpt_arg = NULL;
    long n_tokens = 200, top_k = 0, seed = 0, threads_arg = -1;
    double temperature = 1.0;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        int has_value = i + 1 < argc;
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
            usage();
            return 0;
        } else if (!strcmp(a, "--prompt") && has_value) {
            prompt = argv[++i];
        } else if (!strcmp(a, "--checkpoint") && has_value) {
            ckpt_arg = argv[++i];
        } else if (!strcmp(a, "--temperature") && has_value) {
            char *end;
            temperature = strtod(argv[++i], &end);
            if (end == argv[i] || *end || !(temperature >= 0) || isinf(temperature)) {
                fprintf(stderr, "sample: --temperature \"%s\": expected a number >= 0\n", argv[i]);
                return 2;
            }
        } else if ((!strcmp(a, "--tokens") || !strcmp(a, "--top-k") || !strcmp(a, "--seed") || !strcmp(a, "--threads")) &&
                   has_value) {
            long *dst = !strcmp(a, "--tokens") ? &n_tokens : !strcmp(a, "--top-k") ? &top_k : !strcmp(a, "--seed") ? &seed : &threads_arg;
            if (parse_long(argv[++i], dst) != 0 || *dst < 0) {
                fprintf(stderr, "sample: %s \"%s\": expected a non-negative integer\n", a, argv[i]);
                return 2;
            }
        } else if (a[0] == '-' || run_dir) {
            fprintf(stderr, "sample: unexpected argument \"%s\"%s\n", a, a[0] == '-' && !has_value ? " (missing its value?)" : "");
            usage();
            return 2;
        } else {
            run_dir = a;
        }
    }
    if (!run_dir || !prompt) {
        usage();
        return 2;
    }

    char err[1024], ckpt_path[1200];
    Config cfg;
    if (run_checkpoint_path(run_dir, ckpt_arg, ckpt_path, sizeof ckpt_path, err, sizeof err) != 0 ||
        run_read_config(ckpt_path, &cfg, NULL, NULL, err, sizeof err) != 0) {
        fprintf(stderr, "sample: %s\n", err);
        return 2;
    }
    if (strcmp(cfg.task.name, "lm") != 0) {
        fprintf(stderr, "sample: %s is a %s run; ./sample needs a language-model run (task.name lm)\n", run_dir,
                cfg.task.name);
        return 2;
    }
    int threads = set_threads(threads_arg >= 0 ? (int)threads_arg : cfg.run.threads);

    cfg.task.write_dir[0] = '\0';
    Task *task = task_create(&cfg.task, cfg.model.block_size, (uint64_t)cfg.run.seed, err, sizeof err);
    if (!task) {
        fprintf(stderr, "sample: %s (the task's text gives the vocabulary)\n", err);
        return 2;
    }
    Model m;
    if (model_create(&m, &cfg, task_vocab_size(task), err, sizeof err) != 0) {
        fprintf(stderr, "sample: %s\n", err);
        return 2;
    }
    if (run_load_params(ckpt_path, &m, err, sizeof err) != 0) {
        fprintf(stderr, "sample: %s\n", err);
        return 2;
    }

    int word = strcmp(cfg.task.tokenizer, "word") == 0, V = m.V, W = m.block_size;
    long n_prompt;
    int *prompt_ids = encode_prompt(task, word, prompt, &n_prompt);
    long cap = n_prompt + n_tokens + 1;
    int *text = malloc(sizeof(int) * (size_t)cap);
    long n = 0;
    if (n_prompt == 0) text[n++] = word ? WORD_EOS : '\n';  // the model needs one token to condition on
    for (long i = 0; i < n_prompt; i++) text[n++] = prompt_ids[i];
    free(prompt_ids);
    fprintf(stderr, "sample: %s, %s, temperature %g, top-k %ld, seed %ld, window %d tokens, %d threads\n", run_dir,
            strrchr(ckpt_path, '/') ? strrchr(ckpt_path, '/') + 1 : ckpt_path, temperature, top_k, seed, W, threads);

    Batch b;
    batch_alloc(&b, 1, W);
    if (model_prepare(&m, 1, W, err, sizeof err) != 0) {
        fprintf(stderr, "sample: %s\n", err);
        return 1;
    }
    fputs(prompt, stdout);
    fflush(stdout);
    Rng rng;
    rng_seed(&rng, (uint64_t)seed);
    double *p = malloc(sizeof(double) * (size_t)V);
    int line_start = n_prompt == 0 || prompt[strlen(prompt) - 1] == '\n';
    for (long k = 0; k < n_tokens; k++) {
        long start = n > W ? n - W : 0;
        int T = (int)(n - start);
        b.B = 1;
        b.T = T;
        for (int t = 0; t < T; t++) {
            b.tokens[t] = text[start + t];
            b.targets[t] = 0;
            b.loss_mask[t] = b.metric_mask[t] = b.key_pad[t] = 0;
        }
        model_forward(&m, &b, 0);
        int id = choose(m.logits + (long)(T - 1) * V, V, temperature, (int)top_k, &rng, p);
        text[n++] = id;
        print_token(task, word, id, &line_start);
        fflush(stdout);
    }
    putchar('\n');
    free(p);
    free(text);
    batch_free(&b);
    model_free(&m);
    task_free(task);
    return 0;
}
