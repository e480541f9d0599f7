// Sinusoidal absolute position encoding (Vaswani et al. 2017), added to the token embeddings by the
// model. The learned absolute table is a model parameter; neither acts inside attention, so the kernel
// has no hooks: it registers the part "abs" of pe.type.
#include <math.h>

#include "pe.h"

void pe_sinusoidal_table(real *table, int T, int C) {
    for (int t = 0; t < T; t++) {
        for (int c = 0; c < C; c += 2) {
            double angle = t * pow(10000.0, -(double)c / C);
            table[(long)t * C + c] = (real)sin(angle);
            if (c + 1 < C) table[(long)t * C + c + 1] = (real)cos(angle);
        }
    }
}

static const ConfigKey abs_keys[] = {
    {"pe", "abs_kind", KEY_CHOICE, offsetof(Config, pe.abs_kind), 0, 0, "learned|sinusoidal", "\"learned\"", 0, NULL,
     "Absolute PE added to the token embeddings: a learned table (block_size rows) or fixed sinusoids."},
};

// Not a kernel of attention: the model adds the table to its input.
static int abs_setup(void *opts, AttnPE *pe, const Config *c, int layer) {
    (void)opts, (void)pe, (void)c, (void)layer;
    return 0;
}

const PEKernel pe_abs = {
    .name = "abs",
    .combines = "rel",
    .keys = abs_keys,
    .n_keys = (int)(sizeof abs_keys / sizeof abs_keys[0]),
    .setup = abs_setup,
};
