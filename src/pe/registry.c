// The registry of position encodings: one line per encoding, in the order attention calls their
// hooks (the order of their logit terms in the sum; RoPE's q/k transform runs before any head whatever
// its place).
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pe.h"

// The list: X(name) for the PEKernel pe_<name> that src/pe/<name>.c defines.
#define PE_REGISTRY(X) X(abs) X(rel) X(rope) X(cope) X(alibi)

#define PE_EXTERN(name) extern const PEKernel pe_##name;
#define PE_ENTRY(name) &pe_##name,
PE_REGISTRY(PE_EXTERN)
const PEKernel *const pe_kernels[] = {PE_REGISTRY(PE_ENTRY)};
const int pe_n_kernels = (int)(sizeof pe_kernels / sizeof pe_kernels[0]);
_Static_assert(sizeof pe_kernels / sizeof pe_kernels[0] <= PE_MAX_KERNELS, "AttnPE.parts and .opts have room");

unsigned pe_bit(const char *name) {
    for (int i = 0; i < pe_n_kernels; i++)
        if (!strcmp(pe_kernels[i]->name, name)) return 1u << i;
    return 0;
}

unsigned pe_parse_type(const char *type) {
    unsigned parts = 0;
    char part[32];
    for (const char *p = type; *p && strcmp(p, "none");) {
        size_t n = strcspn(p, "+");
        snprintf(part, sizeof part, "%.*s", (int)n, p);
        parts |= pe_bit(part);
        p += n + (p[n] == '+');
    }
    return parts;
}

static int kernel_index(const PEKernel *k) {
    for (int i = 0; i < pe_n_kernels; i++)
        if (pe_kernels[i] == k) return i;
    return -1;
}

int pe_on(const AttnPE *pe, const PEKernel *k) {
    int i = kernel_index(k);
    return i >= 0 && (pe->parts >> i & 1);
}

const void *pe_opts(const AttnPE *pe, const PEKernel *k) { return pe_on(pe, k) ? pe->opts[kernel_index(k)] : NULL; }

int pe_transforms_qk(unsigned parts) {
    for (int i = 0; i < pe_n_kernels; i++)
        if ((parts >> i & 1) && pe_kernels[i]->qk_forward) return 1;
    return 0;
}

// ---------------------------------------------------------------- a layer's encodings
// The options of a layer's kernels live in one allocation (at pe->opts[first acting kernel]), each
// struct at a 16-byte multiple.

static size_t opts_span(size_t n) { return (n + 15) / 16 * 16; }

int pe_layer_init(AttnPE *pe, const Config *c, int layer, char *err, int errlen) {
    memset(pe, 0, sizeof *pe);
    unsigned parts = pe_parse_type(c->pe.type);
    size_t total = 0;
    for (int i = 0; i < pe_n_kernels; i++)
        if (parts >> i & 1) total += opts_span(pe_kernels[i]->opts_size);
    char *mem = total ? calloc(1, total) : NULL;
    if (total && !mem) {
        snprintf(err, errlen, "out of memory for the position encodings' options");
        return -1;
    }
    for (int i = 0; i < pe_n_kernels; i++) {
        if (!(parts >> i & 1)) continue;
        pe->opts[i] = pe_kernels[i]->opts_size ? mem : NULL;
        mem += opts_span(pe_kernels[i]->opts_size);
        pe->parts |= 1u << i;
        if (pe_kernels[i]->setup && !pe_kernels[i]->setup(pe->opts[i], pe, c, layer)) pe->parts &= ~(1u << i);
    }
    return 0;
}

void pe_layer_free(AttnPE *pe) {
    for (int i = 0; i < pe_n_kernels; i++)
        if (pe->opts[i] && pe_kernels[i]->release) pe_kernels[i]->release(pe->opts[i]);
    for (int i = 0; i < pe_n_kernels; i++)
        if (pe->opts[i]) {  // the first one holds the allocation
            free(pe->opts[i]);
            break;
        }
    memset(pe, 0, sizeof *pe);
}

// The opts of the first of the layers where kernel i acts, or NULL.
static void *first_opts(AttnPE *layers, int n_layers, int i) {
    for (int l = 0; l < n_layers; l++)
        if (layers[l].parts >> i & 1) return layers[l].opts[i];
    return NULL;
}

void pe_declare_global(AttnPE *layers, int n_layers, PEParams *pp) {
    for (int i = 0; i < pe_n_kernels; i++) {
        void *first = first_opts(layers, n_layers, i);
        if (first && pe_kernels[i]->global_params) pe_kernels[i]->global_params(first, pp);
    }
}

void pe_declare_layer(AttnPE *layers, int layer, PEParams *pp) {
    for (int i = 0; i < pe_n_kernels; i++)
        if ((layers[layer].parts >> i & 1) && pe_kernels[i]->layer_params)
            pe_kernels[i]->layer_params(layers[layer].opts[i], first_opts(layers, layer + 1, i), pp);
}

void pe_reduce_partials(real *dst, const real *partials, long nbh, long n, int cols) {
    enum { CHUNK = 256 };
    long nchunks = (n + CHUNK - 1) / CHUNK;
#pragma omp parallel for schedule(static)
    for (long c = 0; c < nchunks; c++) {
        long e0 = c * CHUNK, m = n - e0 < CHUNK ? n - e0 : CHUNK;
        real acc[CHUNK];
        for (long e = 0; e < m; e++) acc[e] = 0;
        for (long h = 0; h < nbh; h++) {  // fixed order: the sums do not depend on the threads
            const real *p = partials + h * n + e0;
            for (long e = 0; e < m; e++) acc[e] += p[e];
        }
        if (cols > 0)
            for (long e = 0; e < m; e++) dst[(e0 + e) % cols * (n / cols) + (e0 + e) / cols] += acc[e];
        else
            for (long e = 0; e < m; e++) dst[e0 + e] += acc[e];
    }
}

// ---------------------------------------------------------------- configuration
// pe.type is composed, not enumerated: "none", each registered part, then each pair "a+b" with b in
// a's `combines`, in registry order. A key's pe.type values are those containing its part and the
// parts its declaration's `applies` names, in the order of the choices.

enum { MAX_CHOICES = 64, MAX_PE_KEYS = 64, LIST_LEN = 512 };
static char choices[LIST_LEN];
static unsigned choice_parts[MAX_CHOICES];
static int n_choices = -1;
static ConfigKey keys[MAX_PE_KEYS];
static char applies[MAX_PE_KEYS][LIST_LEN];
static int n_keys;

static int in_bar_list(const char *list, const char *word) {
    size_t n = strlen(word);
    for (const char *p = list; p && *p; p += strcspn(p, "|") + (p[strcspn(p, "|")] == '|'))
        if (strcspn(p, "|") == n && !strncmp(p, word, n)) return 1;
    return 0;
}

static void add_choice(const char *name, unsigned parts) {
    size_t len = strlen(choices);
    snprintf(choices + len, sizeof choices - len, "%s%s", len ? "|" : "", name);
    choice_parts[n_choices++] = parts;
}

// pe.type values with all of `need`, '|'-separated, into out
static void values_with(unsigned need, char *out, size_t n) {
    out[0] = '\0';
    const char *p = choices;
    for (int c = 0; c < n_choices; c++) {
        size_t len = strcspn(p, "|"), at = strlen(out);
        if ((choice_parts[c] & need) == need) snprintf(out + at, n - at, "%s%.*s", at ? "|" : "", (int)len, p);
        p += len + 1;
    }
}

static void build(void) {
    if (n_choices >= 0) return;
    n_choices = 0;
    add_choice("none", 0);
    for (int i = 0; i < pe_n_kernels; i++) add_choice(pe_kernels[i]->name, 1u << i);
    char pair[64];
    for (int i = 0; i < pe_n_kernels; i++)
        for (int j = 0; j < pe_n_kernels && n_choices < MAX_CHOICES; j++)
            if (in_bar_list(pe_kernels[i]->combines, pe_kernels[j]->name)) {
                snprintf(pair, sizeof pair, "%s+%s", pe_kernels[i]->name, pe_kernels[j]->name);
                add_choice(pair, 1u << i | 1u << j);
            }
    for (int i = 0; i < pe_n_kernels; i++)
        for (int k = 0; k < pe_kernels[i]->n_keys && n_keys < MAX_PE_KEYS; k++, n_keys++) {
            keys[n_keys] = pe_kernels[i]->keys[k];
            values_with(1u << i | (keys[n_keys].applies ? pe_parse_type(keys[n_keys].applies) : 0), applies[n_keys],
                        LIST_LEN);
            keys[n_keys].applies = applies[n_keys];
        }
}

const char *pe_type_choices(void) {
    build();
    return choices;
}

const ConfigKey *pe_config_keys(int *n) {
    build();
    *n = n_keys;
    return keys;
}

void pe_config_resolve(Config *c, const Config *base) {
    for (int i = 0; i < pe_n_kernels; i++)
        if (pe_kernels[i]->resolve) pe_kernels[i]->resolve(c, base);
}

int pe_config_check(const Config *c, const char *src, char *err, int errlen) {
    unsigned parts = pe_parse_type(c->pe.type);
    for (int i = 0; i < pe_n_kernels; i++)
        if ((parts >> i & 1) && pe_kernels[i]->check && pe_kernels[i]->check(c, src, err, errlen)) return -1;
    return 0;
}
