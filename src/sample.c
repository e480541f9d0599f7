// ./sample runs/<name> --prompt "..." [options]: text from a trained language-model run.
//
// Each new token recomputes the whole forward pass over the context (contexts are small; no KV
// cache), a window of the last model.block_size tokens once the text is longer. The prompt is
// tokenized as the run's task does: bytes or BPE tokens (task_encode), or the training
// vocabulary's words with <unk> for unknown ones and <eos> at line ends (word tokenizer). At the
// end, stderr gets the sample's size in tokens and bytes and the model's own loss on it per token
// and per byte (README: per-token and per-byte numbers). Temperature 0 is greedy
// (argmax, the lowest id on ties); otherwise the logits are divided by the temperature, cut to the
// top k (k > 0) and sampled with a seeded generator, so the same arguments give the same text.
// The text goes to stdout (prompt and continuation, nothing else); the header goes to stderr.
#include <errno.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>


#include "args.h"
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
            "                [--checkpoint FILE] [--threads N] [--no-cache]\n"
            "  --prompt TEXT      the start of the text (empty: start after a line end)\n"
            "  --tokens N         tokens to generate (default 200)\n"
            "  --temperature t    0 = greedy; default 1\n"
            "  --top-k k          sample among the k most likely tokens (default 0 = all)\n"
            "  --seed s           the sampler's seed (default 0)\n"
            "  --checkpoint FILE  a checkpoint of the run (default: the one `latest` names)\n"
            "  --threads N        threads (default: the run's run.threads, 0 = all cores)\n"
            "  --no-cache         run the whole window for every token instead of only the new one (the\n"
            "                     keys and values of the earlier tokens are kept while the window grows;\n"
            "                     once it slides, positions move and every token runs the whole window)\n"
            "For language-model runs (task.name lm), any tokenizer. Deterministic for the same\n"
            "arguments and thread count.\n");
}

// The prompt's tokens (malloc'd, *n of them).
static int *encode_prompt(Task *task, int word, const char *prompt, long *n) {
    size_t len = strlen(prompt);
    if (!word) {
        int *ids = malloc(sizeof(int) * (len + 1));
        *n = ids ? task_encode(task, prompt, len, ids) : 0;
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
// Returns the bytes printed.
static size_t print_token(const Task *task, int word, int id, int *line_start) {
    size_t len = 0;
    if (!word) {
        const char *s = task_token_text(task, id, &len);
        fwrite(s, 1, len, stdout);
        return len;
    }
    if (id == WORD_EOS) {
        putchar('\n');
        *line_start = 1;
        return 1;
    }
    if (!*line_start) putchar(' ');
    len = !*line_start + strlen(task_token_str(task, id));
    fputs(task_token_str(task, id), stdout);
    *line_start = 0;
    return len;
}

// -log p(id) under the model's own distribution (temperature 1, no top-k), in nats.
static double token_loss(const real *logits, int V, int id) {
    double mx = logits[0], sum = 0;
    for (int v = 1; v < V; v++)
        if (logits[v] > mx) mx = logits[v];
    for (int v = 0; v < V; v++) sum += exp(logits[v] - mx);
    return mx + log(sum) - logits[id];
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

typedef struct {
    const char *run_dir, *prompt, *checkpoint;
    long n_tokens, top_k, seed, threads;  // threads -1: the run's run.threads
    double temperature;
    int no_cache;  // run the whole window for every token (the cached decoding's reference and baseline)
} SampleArgs;

// Query rows per attention block when a forward has more than one (the prompt, a slid window).
#define SAMPLE_ROWS 256

// Returns -1 to go on, else the exit status (--help, a bad argument).
static int parse_args(int argc, char **argv, SampleArgs *a) {
    *a = (SampleArgs){.n_tokens = 200, .threads = -1, .temperature = 1.0};
    for (int i = 1; i < argc; i++) {
        const char *arg = argv[i];
        int has_value = i + 1 < argc;
        long *num = !strcmp(arg, "--tokens")    ? &a->n_tokens
                    : !strcmp(arg, "--top-k")   ? &a->top_k
                    : !strcmp(arg, "--seed")    ? &a->seed
                    : !strcmp(arg, "--threads") ? &a->threads
                                                : NULL;
        // INT_MAX bounds --tokens too, so the text buffer's size cannot overflow
        long max = num == &a->seed ? LONG_MAX : INT_MAX;
        if (!strcmp(arg, "--help") || !strcmp(arg, "-h")) {
            usage();
            return 0;
        } else if (!strcmp(arg, "--no-cache")) {
            a->no_cache = 1;
        } else if (!strcmp(arg, "--prompt") && has_value) {
            a->prompt = argv[++i];
        } else if (!strcmp(arg, "--checkpoint") && has_value) {
            a->checkpoint = argv[++i];
        } else if (!strcmp(arg, "--temperature") && has_value) {
            char *end;
            a->temperature = strtod(argv[++i], &end);
            if (end == argv[i] || *end || !(a->temperature >= 0) || isinf(a->temperature)) {
                fprintf(stderr, "sample: --temperature \"%s\": expected a number >= 0\n", argv[i]);
                return 2;
            }
        } else if (num && has_value) {
            if (parse_count(argv[++i], max, num) != 0) {
                fprintf(stderr, "sample: %s \"%s\": expected an integer from 0 to %ld\n", arg, argv[i], max);
                return 2;
            }
        } else if (arg[0] == '-' || a->run_dir) {
            fprintf(stderr, "sample: unexpected argument \"%s\"%s\n", arg, arg[0] == '-' && !has_value ? " (missing its value?)" : "");
            usage();
            return 2;
        } else {
            a->run_dir = arg;
        }
    }
    if (!a->run_dir || !a->prompt) {
        usage();
        return 2;
    }
    return -1;
}

// Generates a->n_tokens tokens after the prompt, printing them as they come.
static int generate(Model *m, Task *task, const SampleArgs *a, const char *ckpt_path, int threads) {
    int newline = '\n';
    task_encode(task, "\n", 1, &newline);  // the id of a line end (a byte or a BPE token)
    char err[1024];
    int word = strcmp(m->cfg.task.tokenizer, "word") == 0, V = m->V, W = m->block_size;
    long n_prompt;
    int *prompt_ids = encode_prompt(task, word, a->prompt, &n_prompt);
    int *text = malloc(sizeof(int) * (size_t)(n_prompt + a->n_tokens + 1));
    double *p = malloc(sizeof(double) * (size_t)V);
    Batch b;
    batch_alloc(&b, 1, W);
    model_set_inference(m, a->no_cache ? W : SAMPLE_ROWS);
    int rc = !prompt_ids || !text || !p ? 1 : model_prepare(m, 1, W, err, sizeof err) != 0 ? 2 : 0;
    if (rc != 0) {
        fprintf(stderr, "sample: %s\n", rc == 1 ? "out of memory" : err);
        goto done;
    }
    long n = 0;
    if (n_prompt == 0) text[n++] = word ? WORD_EOS : newline;  // the model needs one token to condition on
    for (long i = 0; i < n_prompt; i++) text[n++] = prompt_ids[i];
    fprintf(stderr, "sample: %s, %s, temperature %g, top-k %ld, seed %ld, window %d tokens, %d threads\n", a->run_dir,
            strrchr(ckpt_path, '/') ? strrchr(ckpt_path, '/') + 1 : ckpt_path, a->temperature, a->top_k, a->seed, W,
            threads);
    fputs(a->prompt, stdout);
    fflush(stdout);
    Rng rng;
    rng_seed(&rng, (uint64_t)a->seed);
    double loss = 0;  // nats, summed over the generated tokens
    size_t bytes = 0;
    int line_start = n_prompt == 0 || a->prompt[strlen(a->prompt) - 1] == '\n';
    int cached = 0;  // rows of the window whose keys and values the model holds (its positions unmoved)
    double t_start = now_seconds();
    for (long k = 0; k < a->n_tokens; k++) {
        long start = n > W ? n - W : 0;
        int T = (int)(n - start);
        b.B = 1;
        b.T = T;
        for (int t = 0; t < T; t++) {
            b.tokens[t] = text[start + t];
            b.targets[t] = 0;
            b.loss_mask[t] = b.metric_mask[t] = b.key_pad[t] = 0;
        }
        // Only the new rows, while the window grows from the start of the text; once it slides, every
        // position moves and the whole window runs again.
        model_forward_from(m, &b, a->no_cache || start > 0 ? 0 : cached);
        cached = start > 0 ? 0 : T;
        int id = choose(m->logits + (long)(T - 1) * V, V, a->temperature, (int)a->top_k, &rng, p);
        loss += token_loss(m->logits + (long)(T - 1) * V, V, id);
        text[n++] = id;
        bytes += print_token(task, word, id, &line_start);
        fflush(stdout);
    }
    putchar('\n');
    if (a->n_tokens > 0)
        fprintf(stderr, "sample: %ld tokens, %zu bytes (%.2f bytes per token); the model's loss on them: %.4f nats per "
                "token, %.4f bits per byte\n", a->n_tokens, bytes, (double)bytes / (double)a->n_tokens,
                loss / (double)a->n_tokens, bytes ? loss / log(2.0) / (double)bytes : 0.0);
    if (a->n_tokens > 0)
        fprintf(stderr, "sample: %.1f tokens/s (%s)\n", a->n_tokens / (now_seconds() - t_start),
                a->no_cache ? "every token runs the whole window: --no-cache" : "keys and values cached");
done:
    batch_free(&b);
    free(p);
    free(text);
    free(prompt_ids);
    return rc;
}

int main(int argc, char **argv) {
    SampleArgs a;
    int rc = parse_args(argc, argv, &a);
    if (rc >= 0) return rc;
    char err[2048];
    RunCheckpoint ck;
    Task *task = NULL;
    Model m = {0};
    if (run_read_checkpoint(a.run_dir, a.checkpoint, &ck, err, sizeof err) != 0) {
        if (ck.path[0]) run_suggest_intact(a.run_dir, ck.path, "--checkpoint", err, sizeof err);
        fprintf(stderr, "sample: %s\n", err);
        return 2;
    }
    Config *cfg = &ck.cfg;
    rc = 2;
    int threads = set_threads(a.threads >= 0 ? (int)a.threads : cfg->run.threads);
    cfg->task.write_dir[0] = '\0';
    task = task_create(&cfg->task, cfg->model.block_size, (uint64_t)cfg->run.seed, err, sizeof err);
    if (!task) {
        fprintf(stderr, "sample: %s (the task's text gives the vocabulary)\n", err);
        goto done;
    }
    if (!task_is_language_model(task)) {
        fprintf(stderr, "sample: %s is a %s run; ./sample needs a language-model run\n", a.run_dir, cfg->task.name);
        goto done;
    }
    if (model_init(&m, cfg, task_vocab_size(task), err, sizeof err) != 0 || model_alloc(&m, 0, err, sizeof err) != 0 ||
        run_use_params(&ck, &m, err, sizeof err) != 0) {
        fprintf(stderr, "sample: %s\n", err);
        goto done;
    }
    rc = generate(&m, task, &a, ck.path, threads);
done:
    model_free(&m);
    task_free(task);
    run_checkpoint_free(&ck);
    return rc;
}
