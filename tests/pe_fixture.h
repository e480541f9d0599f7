// One layer's position encodings for the attention tests, built the way the model builds them: the
// "pe" section of a config through config_load_text, the kernels' options by pe_layer_init, their
// tables by pe_declare_global and pe_declare_layer. The tables come from here instead of a model's
// parameter buffer: random (check_rand times `scale`), with their gradients set to `grad_init` (the
// gradient checks start them off zero to see that the backward accumulates).
#ifndef PE_FIXTURE_H
#define PE_FIXTURE_H

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "config.h"
#include "pe/pe.h"

enum { FIXTURE_TABLES = 8 };

typedef struct {
    PEParams pp;  // first: the kernels declare their tables through it
    int n;
    char names[FIXTURE_TABLES][48];
    real *w[FIXTURE_TABLES], *dw[FIXTURE_TABLES];
    long size[FIXTURE_TABLES];
    unsigned long long *rng;
    double scale, grad_init;
} PEFixture;

static PETensor fixture_add(PEParams *pp, const char *name, long size, int decay, char init, double scale) {
    (void)decay, (void)init, (void)scale;
    PEFixture *f = (PEFixture *)pp;
    CHECK(f->n < FIXTURE_TABLES, "more than %d tables declared", FIXTURE_TABLES);
    real *w = malloc(sizeof(real) * (size > 0 ? size : 1)), *dw = malloc(sizeof(real) * (size > 0 ? size : 1));
    for (long i = 0; i < size; i++) w[i] = (real)(f->scale * check_rand(f->rng)), dw[i] = (real)f->grad_init;
    snprintf(f->names[f->n], sizeof f->names[f->n], "%s", name);
    f->w[f->n] = w, f->dw[f->n] = dw, f->size[f->n] = size;
    f->n++;
    return (PETensor){w, dw};
}

// The AttnPE of the config whose "pe" section is pe_json (e.g. {"type": "cope", "npos": 8}), with
// head dimension dh; the test stops when the config is refused.
static AttnPE pe_fixture(PEFixture *f, const char *pe_json, int dh, unsigned long long *rng, double scale,
                         double grad_init) {
    char text[1024], err[512];
    snprintf(text, sizeof text, "{\"run\": {\"name\": \"test\"}, \"pe\": %s}", pe_json);
    Config cfg;
    if (config_load_text(&cfg, text, "test config", NULL, 0, err, sizeof err) != 0) {
        fprintf(stderr, "pe_fixture: %s\n", err);
        exit(1);
    }
    AttnPE pe;
    CHECK(pe_layer_init(&pe, &cfg, 0, err, sizeof err) == 0, "pe_layer_init: %s", err);
    memset(f, 0, sizeof *f);
    f->pp = (PEParams){.add = fixture_add, .dh = dh};
    f->rng = rng, f->scale = scale, f->grad_init = grad_init;
    pe_declare_global(&pe, 1, &f->pp);
    pe_declare_layer(&pe, 0, &f->pp);
    f->rng = NULL;  // the caller's generator, used only while declaring
    return pe;
}

// The table called name and its gradient (NULL when the encodings declared none), its size in *n.
static real *fixture_table(const PEFixture *f, const char *name, real **grad, long *n) {
    for (int i = 0; i < f->n; i++)
        if (!strcmp(f->names[i], name)) {
            if (grad) *grad = f->dw[i];
            if (n) *n = f->size[i];
            return f->w[i];
        }
    if (grad) *grad = NULL;
    if (n) *n = 0;
    return NULL;
}

static void fixture_free(PEFixture *f, AttnPE *pe) {
    for (int i = 0; i < f->n; i++) free(f->w[i]), free(f->dw[i]);
    f->n = 0;
    pe_layer_free(pe);
}

#endif
