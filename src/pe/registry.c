// The position-encoding kernels attention can run, in the order their hooks are called. RoPE comes
// first: it transforms q and k, which the logit terms then read.
#include "pe.h"

const PEKernel *const pe_kernels[] = {&pe_rope, &pe_rel, &pe_cope};
const int pe_n_kernels = (int)(sizeof pe_kernels / sizeof pe_kernels[0]);

void pe_reduce_partials(real *dst, const real *partials, long nbh, long n) {
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
        for (long e = 0; e < m; e++) dst[e0 + e] += acc[e];
    }
}
