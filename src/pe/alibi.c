// ALiBi, attention with linear biases (Press et al. 2022, "Train Short, Test Long"): our addition, not
// in the CoPE paper; a relative baseline with no parameters and no table, so no trained length limits
// it. Head h = 1..H adds the bias -m_h·(i-j) to the logit of query i and key j, with the slope
// m_h = 2^(-8h/H) (the paper's geometric sequence for H a power of two, used here for any H).
//
// Where it acts: after the 1/sqrt(dh) scaling, A_ij = s·S_ij + (other terms) - m_h·(i-j), as in the
// reference implementation (the bias joins the already scaled scores). Unlike the relative term of
// rel.c (docs/baselines.md §3), which attention scales with S, the slopes are not divided by sqrt(dh).
//
// The backward: the bias depends on neither q nor k, so dA reaches dS unchanged through attention's
// own path and this kernel has no backward hook. One file plus its name in PE_REGISTRY (registry.c)
// is the whole encoding: README "Adding a position encoding" walks through it.
#include "pe.h"

static void alibi_row_logits(PEHead *hd, int i, real *a) {
    real m = (real)exp2(-8.0 * (hd->h + 1) / hd->H);
#pragma omp simd
    for (int j = 0; j <= i; j++) a[j] -= m * (real)(i - j);
}

const PEKernel pe_alibi = {
    .name = "alibi",
    .row_logits = alibi_row_logits,
};
