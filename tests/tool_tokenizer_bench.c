// Tokenisation speed for `make bench`: MB/s of GPT-2's encoder, of training a BPE and of its encoder
// on a text (a file, or the repository's README.md and docs/ when none is given, repeated to 8 MB).
//
//   build/tools/tool_tokenizer_bench [--gpt2 DIR] [--vocab N] [FILE]
//
// DIR holds encoder.json and vocab.bpe (scripts/fetch_data.sh gpt2 puts them in data/gpt2, the
// default); without them the GPT-2 line is skipped with a message. One line per measurement:
//   tokenizer <what>: <MB> MB in <s> s = <MB/s> MB/s (<tokens> tokens)
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "system.h"
#include "tasks/bpe.h"
#include "tasks/files.h"

static void report(const char *what, size_t bytes, double seconds, long tokens) {
    printf("tokenizer %s: %.1f MB in %.2f s = %.1f MB/s (%ld tokens)\n", what, (double)bytes / 1e6, seconds,
           (double)bytes / 1e6 / seconds, tokens);
}

// Encodes the text with a fresh cache (the first pass, as a corpus is tokenised once).
static void bench_encode(Bpe *b, const char *what, const char *text, size_t len) {
    double t0 = now_seconds();
    long n = bpe_encode(b, text, len, NULL);
    report(what, len, now_seconds() - t0, n);
}

static char *default_text(size_t *len) {
    const char *files[] = {"README.md", "docs/cope.md", "docs/experiments.md", "docs/baselines.md", "docs/tokenizers.md"};
    size_t cap = 8u << 20, n = 0;
    char *text = malloc(cap), err[512];
    while (text && n < cap) {
        size_t before = n;
        for (size_t i = 0; i < sizeof files / sizeof files[0] && n < cap; i++) {
            size_t k;
            char *s = task_read_file(files[i], &k, err, sizeof err);
            if (!s) continue;
            if (k > cap - n) k = cap - n;
            memcpy(text + n, s, k);
            n += k;
            free(s);
        }
        if (n == before) break;
    }
    *len = n;
    return text;
}

int main(int argc, char **argv) {
    const char *gpt2 = "data/gpt2", *file = NULL;
    int vocab = 8192;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--gpt2") && i + 1 < argc)
            gpt2 = argv[++i];
        else if (!strcmp(argv[i], "--vocab") && i + 1 < argc)
            vocab = atoi(argv[++i]);
        else if (argv[i][0] != '-' && !file)
            file = argv[i];
        else {
            fprintf(stderr, "usage: tool_tokenizer_bench [--gpt2 DIR] [--vocab N] [FILE]\n");
            return 2;
        }
    }
    char err[512];
    size_t len;
    char *text = file ? task_read_file(file, &len, err, sizeof err) : default_text(&len);
    if (!text || len == 0) {
        fprintf(stderr, "tool_tokenizer_bench: %s\n", file ? err : "no text (run from the repository root)");
        return 1;
    }
    Bpe *g = gpt2_bpe_load(gpt2, err, sizeof err);
    if (g)
        bench_encode(g, "gpt2 encode", text, len);
    else
        printf("tokenizer gpt2 encode: skipped (%s; scripts/fetch_data.sh gpt2)\n", err);
    double t0 = now_seconds();
    Bpe *b = bpe_train(text, len, vocab);
    if (!b) {
        fprintf(stderr, "tool_tokenizer_bench: out of memory training\n");
        return 1;
    }
    char what[64];
    snprintf(what, sizeof what, "bpe train (%d ids)", bpe_n_tokens(b));
    report(what, len, now_seconds() - t0, bpe_n_merges(b));
    snprintf(what, sizeof what, "bpe%d encode", vocab);
    bench_encode(b, what, text, len);
    bpe_free(g);
    bpe_free(b);
    free(text);
    return 0;
}
