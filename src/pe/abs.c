// Sinusoidal absolute position encoding (Vaswani et al. 2017), added to the token embeddings by the
// model. The learned absolute table is a model parameter and needs no kernel.
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
