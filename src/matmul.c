#include "matmul.h"

#include <ctype.h>
#include <omp.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cblas.h>

#include "target.h"

// Products whose result has 16, 32 or 64 columns: attention's α·V, dS·K, αᵀ·G and dSᵀ·Q, whose
// columns are the head dimension, and a small model's linear layers. OpenBLAS copies ("packs") the
// long operand before every such product, a copy per 16 to 64 multiply-adds, which made these
// products the least efficient of a step; this loop reads it in place. A block of ROWS rows of C is
// held in registers, nv vectors per row, and each row k of B, loaded once, is multiplied by the
// block's elements of column k of op(A): C[m] = Σ_k op(A)[m][k]·B[k], summed in k order from C, a bias
// row or 0 (narrow_rows).
// (The transposed products below sum from 0 and add C last: they round apart from this loop's.)
//
// The vectors are GCC's generic ones, as wide as the target's registers: 64 bytes with AVX-512
// (32 registers), 32 with AVX2 (16 registers). A block of ROWS rows holds ROWS·nv accumulators, the
// nv vectors of B's row and a broadcast, all in registers, so a row of C may span at most MAX_NV
// vectors: 4 with 32 registers (16, 32 or 64 floats; 16 or 32 doubles), 2 with 16 (16 floats).
// Other products go to OpenBLAS (but for the panels below, where OpenBLAS runs narrower vectors than
// this loop), because each alternative measured slower than it (the attention benchmark of `make
// bench`, 1 thread, an AMD Zen 5 running AVX-512 and AVX2 builds):
// - vectors wider than the registers, or more than fit: they spill to the stack on every
//   multiply-add, up to 10× slower;
// - rows of C cut into panels of columns that fit (AVX2, 32 and 64 columns): 1.1-1.25× slower;
// - fewer rows with more vectors each (AVX2, 2 rows of 4 vectors): 3× slower;
// - SSE2 vectors (the x86-64 baseline, no FMA) against OpenBLAS, which picks its own kernel for the
//   CPU at run time: 1.3× slower.
// Blocks of ROWS = 4 rows, or more where the registers hold them (big_block). The sums' order is the
// same on every target and block size; only fused (FMA) and separate multiply-adds round apart.
#pragma GCC push_options
#pragma GCC optimize("fp-contract=fast")  // -std=c11 turns contraction off; the loop's speed is its FMAs
#if TARGET_VEC_BYTES >= 32
#define VEC_BYTES TARGET_VEC_BYTES
#define VEC_REGS TARGET_VEC_REGS
#else
#define VEC_BYTES 0  // no loop of our own: every product goes to OpenBLAS
#define VEC_REGS 0
#endif

// The transposed products (below) need GCC's __builtin_shuffle, other compilers leave them to
// OpenBLAS; and a width the loop takes (AVX2's registers hold no row of 16 doubles).
#if VEC_BYTES && defined(__GNUC__) && !defined(__clang__) && (VEC_BYTES == 64 || !defined(REAL_DOUBLE))
#define TRANSPOSED 1
#else
#define TRANSPOSED 0
#endif

#if VEC_BYTES
typedef real vec __attribute__((vector_size(VEC_BYTES)));
typedef real vec_u __attribute__((vector_size(VEC_BYTES))) TARGET_UNALIGNED(real);  // at any address
enum { LANES = VEC_BYTES / sizeof(real), ROWS = 4, MAX_NV = VEC_REGS == 32 ? 4 : 2, NARROW_BT_MAX = 16384 };
enum { ROWS_MAX = 8 };

// The larger blocks of rows of nv vectors, where AVX-512's 32 registers hold them (0: none), each B
// row loaded then serving more rows, the rows left over going in blocks of ROWS, then 1:
// - rows of 4 vectors (64 floats, or 32 doubles, unmeasured) in blocks of 6: 24 accumulators and the
//   4 vectors of B's row fill 28 registers (flip-flop step 1695 → 1366 ms, 1 thread, against blocks
//   of 4; 1024³ product 134 → 206 GFLOP/s);
// - rows of 1 or 2 vectors (16 or 32 floats: attention's products for heads of 16 or 32) in blocks
//   of 8: 8 or 16 multiply-adds in flight instead of 4 or 8, where each takes 4 cycles and 2 start
//   per cycle. Attention alone, 1 thread, forward / backward: heads of 16 (tiny model, T = 128) 1.42
//   → 1.32 / 1.64 → 1.53 ms; heads of 32 (d 128, T = 256, batch 16) 3.33 → 2.97 / 5.00 → 4.32 ms.
// Blocks of 12 rows of 1 vector ran 1.3× slower than 8 (the accumulators then left the registers).
// AVX2's 16 registers: blocks of 6 rows of 2 vectors measured no faster than 4.
static inline int big_block(int nv) { return VEC_REGS != 32 ? 0 : nv == 4 ? 6 : 8; }

// Rows [m0, m0 + rows) of C, nv vectors (nv·LANES columns) each, summed from the rows of C0 (ldc0
// apart: C itself to accumulate, or 0 for a bias row that every row starts from) or from 0 when C0 is
// NULL. rows and nv are constants at every call, so the accumulators are registers once the loops are
// unrolled.
static inline __attribute__((always_inline)) void narrow_rows(int rows, int nv, int trans_a, int m0, int K,
                                                              const real *A, int lda, const real *B, int ldb,
                                                              const real *C0, int ldc0, real *C, int ldc) {
    vec acc[ROWS_MAX][MAX_NV];
    // (no function passes a vector by value, whose ABI would depend on the target's vector width)
    for (int r = 0; r < rows; r++)
        for (int v = 0; v < nv; v++) {
            acc[r][v] = (vec){0};
            if (C0) acc[r][v] = *(const vec_u *)(C0 + (long)(m0 + r) * ldc0 + LANES * v);
        }
    for (int k = 0; k < K; k++) {
        vec b[MAX_NV];
        for (int v = 0; v < nv; v++) b[v] = *(const vec_u *)(B + (long)k * ldb + LANES * v);
        for (int r = 0; r < rows; r++) {
            real a = trans_a ? A[(long)k * lda + m0 + r] : A[(long)(m0 + r) * lda + k];
            for (int v = 0; v < nv; v++) acc[r][v] += a * b[v];
        }
    }
    for (int r = 0; r < rows; r++)
        for (int v = 0; v < nv; v++) *(vec_u *)(C + (long)(m0 + r) * ldc + LANES * v) = acc[r][v];
}

static inline __attribute__((always_inline)) void narrow_product(int nv, int trans_a, int M, int K, const real *A,
                                                                 int lda, const real *B, int ldb, const real *C0,
                                                                 int ldc0, real *C, int ldc) {
    int m = 0, big = big_block(nv);  // a constant where nv is
    if (big) {
        // as many big blocks as M holds, or one fewer when that leaves fewer single rows after the
        // blocks of 4 (32 rows of 4 vectors: 4 × 6 + 2 × 4, not 5 × 6 + 2 × 1)
        int nb = M / big;
        int mb = nb > 0 && (M - big * (nb - 1)) % ROWS < (M - big * nb) % ROWS ? big * (nb - 1) : big * nb;
        for (; m < mb; m += big) narrow_rows(big, nv, trans_a, m, K, A, lda, B, ldb, C0, ldc0, C, ldc);
    }
    for (; m + ROWS <= M; m += ROWS) narrow_rows(ROWS, nv, trans_a, m, K, A, lda, B, ldb, C0, ldc0, C, ldc);
    for (; m < M; m++) narrow_rows(1, nv, trans_a, m, K, A, lda, B, ldb, C0, ldc0, C, ldc);
}

// Whether a product of N columns (B untransposed, alpha 1, beta 0 or 1) runs in this loop.
static int narrow_fits(int N) { return (N == 16 || N == 32 || N == 64) && N % LANES == 0 && N / LANES <= MAX_NV; }

// C = op(A)·B (+ C0, see narrow_rows), for N that narrow_fits; each width is its own instance of the
// loop, with its vector count a constant (narrow_fits, a constant here too, leaves out the widths
// this target's registers cannot hold).
// With A transposed and a long sum (a weight gradient: K the tokens), every block of rows would
// stream all of B (K rows of up to 64 columns) from L2 again; the sum is cut into chunks of SUM_CHUNK
// rows of B (16 KB at 64 floats, within L1), each chunk taken by every block of rows in turn and
// added onto C, in k order, so with the bits of one pass. The tiny model's weight gradients, 4096
// tokens in slices of 1024, 1 thread, AVX-512 Xeon: 192, 256 and 64 rows against 64 columns 130-139
// -> 151-159, 117-132 -> 145-147 and 140-154 -> 155-166 GFLOP/s (chunks of 64, 128 and 256 rows within
// 5% of each other); a whole sum of 4096 inside a parallel region 61-74 -> 134.
enum { SUM_CHUNK = 64 };
static void narrow_gemm(int trans_a, int M, int N, int K, const real *A, int lda, const real *B, int ldb,
                        const real *C0, int ldc0, real *C, int ldc) {
    if (trans_a && K > SUM_CHUNK && M > ROWS_MAX) {
        for (int k0 = 0; k0 < K; k0 += SUM_CHUNK) {
            int kc = K - k0 < SUM_CHUNK ? K - k0 : SUM_CHUNK;
            narrow_gemm(1, M, N, kc, A + (long)k0 * lda, lda, B + (long)k0 * ldb, ldb, k0 > 0 ? C : C0,
                        k0 > 0 ? ldc : ldc0, C, ldc);
        }
        return;
    }
    if (N == 16 && narrow_fits(16))
        narrow_product(16 / LANES, trans_a, M, K, A, lda, B, ldb, C0, ldc0, C, ldc);
    else if (N == 32 && narrow_fits(32))
        narrow_product(32 / LANES, trans_a, M, K, A, lda, B, ldb, C0, ldc0, C, ldc);
    else if (N == 64 && narrow_fits(64))
        narrow_product(64 / LANES, trans_a, M, K, A, lda, B, ldb, C0, ldc0, C, ldc);
}

// C = op(A)·Bᵀ (+ C0) for B (N,K), N that narrow_fits: the loop reads Bᵀ, copied onto
// the stack (64 KB of floats at most: a linear layer's weight in the forward, a position table) in
// slices of K when larger (the dq of CoPE's positions at long contexts, K the positions in reach).
// Each slice adds onto C in k order, so slicing rounds exactly as one pass does. Each tile of a
// product copies B again: K·N values against the tile's rows × K·N multiply-adds. The copy
// (matmul_transpose) reads a cache line of each of B's rows in turn: one k at a time down N rows ldb
// apart, the rows fell into one cache set when ldb was a multiple of 1024 floats (4-6× slower
// products with few rows). noinline, like transposed_gemm: the stack copies of the two are never on a thread's
// stack together.
__attribute__((noinline)) static void narrow_gemm_bt(int trans_a, int M, int N, int K, const real *A, int lda,
                                                    const real *B, int ldb, const real *C0, int ldc0, real *C,
                                                    int ldc) {
    real bt[NARROW_BT_MAX];
    int slice = NARROW_BT_MAX / N;
    for (int k0 = 0; k0 < K || k0 == 0; k0 += slice) {
        int nk = K - k0 < slice ? K - k0 : slice;
        matmul_transpose(bt, N, B + k0, ldb, N, nk);
        narrow_gemm(trans_a, M, N, nk, trans_a ? A + (long)k0 * lda : A + k0, lda, bt, N, k0 > 0 ? C : C0,
                    k0 > 0 ? ldc : ldc0, C, ldc);
    }
}

#if TRANSPOSED
// Transposes a LANES × LANES tile: dst[c][r] = src[r][c] (+ dst[c][r] when accumulate), in log2(LANES)
// rounds of shuffles; round b pairs row r with row r + b and swaps their b-lane blocks across.
typedef __typeof__((vec){0} < (vec){0}) lane_index;  // the integer vector that indexes a vec's lanes
static inline __attribute__((always_inline)) void transpose_tile(real *dst, int ldd, const real *src, int lds,
                                                                 int accumulate) {
    vec x[LANES];  // registers once every loop is unrolled (the masks are then constants)
#pragma GCC unroll 16
    for (int r = 0; r < LANES; r++) x[r] = *(const vec_u *)(src + (long)r * lds);
#pragma GCC unroll 4
    for (int b = LANES / 2; b >= 1; b /= 2) {
        lane_index lo, hi;  // lane l: from the first row where l & b is 0, else from the second
#pragma GCC unroll 16
        for (int l = 0; l < LANES; l++) {
            lo[l] = l & b ? LANES + l - b : l;
            hi[l] = l & b ? LANES + l : l + b;
        }
#pragma GCC unroll 16
        for (int r = 0; r < LANES; r++) {
            if (r & b) continue;
            vec u = __builtin_shuffle(x[r], x[r + b], lo), v = __builtin_shuffle(x[r], x[r + b], hi);
            x[r] = u, x[r + b] = v;
        }
    }
#pragma GCC unroll 16
    for (int c = 0; c < LANES; c++) {
        if (accumulate) x[c] += *(const vec_u *)(dst + (long)c * ldd);
        *(vec_u *)(dst + (long)c * ldd) = x[c];
    }
}

// C = op(A)·op(B) (+ C) with few rows, many columns and a short sum, an operand transposed: a block of
// query rows against keys read in place (a decoding step's few rows; CoPE's gate keys otherwise
// transposed once per head as attention's own, and take the short panels below where the build has
// them) and CoPE's table gradient (M the head dimension, K the block's rows). OpenBLAS
// ran q·kᵀ at 70% of its large-product rate (T = 512, head size 64: the packing of op(B), a copy
// per K multiply-adds, again). The transposed product Cᵀ = op(B)ᵀ·op(A)ᵀ has M columns, which this
// loop takes with op(B) read in place; it is computed KEY_TILE rows at a time into a stack tile and
// transposed into C. AVX2 float builds take 16 rows (double ones none), so attention's blocks of 32
// stay with OpenBLAS: in two transposed products of 16 rows each they ran 1-8% slower (attention
// alone, 1 thread). With A transposed and B not, op(A)ᵀ is A, read in place, so the sum may be of
// any length (at most TRANSPOSED_K_MAX otherwise, the stack copy's): weight gradients of 64 rows
// against more columns (the tiny model's second feed-forward layer, 64 × 256 summed over slices of
// 1024 tokens: OpenBLAS 118-122, here 140-147 GFLOP/s, 1 thread).
enum { KEY_TILE = 128, TRANSPOSED_K_MAX = 256 };
static int transposed_fits(int trans_a, int trans_b, int M, int N, int K) {
    return N > 64 && narrow_fits(M) && (K <= TRANSPOSED_K_MAX || (trans_a && !trans_b));
}

__attribute__((noinline)) static void transposed_gemm(int trans_a, int trans_b, int M, int N, int K, const real *A,
                                                     int lda, const real *B, int ldb, int accumulate, real *C,
                                                     int ldc) {
    real at[TRANSPOSED_K_MAX * 64], tile[KEY_TILE * 64];
    const real *y = A;  // op(A)ᵀ, (K,M): A itself when transposed, else a copy
    int ldy = lda;
    if (!trans_a) {
        matmul_transpose(at, M, A, lda, M, K);
        y = at, ldy = M;
    }
    for (int n0 = 0; n0 < N; n0 += KEY_TILE) {
        int nk = N - n0 < KEY_TILE ? N - n0 : KEY_TILE, whole = nk / LANES * LANES;
        // tile (nk,M) = op(B)ᵀ[n0:n0+nk]·op(A)ᵀ: op(B)ᵀ is B's rows (trans_b) or its columns
        narrow_gemm(!trans_b, nk, M, K, trans_b ? B + (long)n0 * ldb : B + n0, ldb, y, ldy, NULL, 0, tile, M);
        for (int m = 0; m < M; m += LANES) {
            for (int n = 0; n < whole; n += LANES)
                transpose_tile(C + (long)m * ldc + n0 + n, ldc, tile + (long)n * M + m, M, accumulate);
            for (int r = m; r < m + LANES; r++)
                for (int n = whole; n < nk; n++) {
                    real *c = C + (long)r * ldc + n0 + n;
                    *c = tile[(long)n * M + r] + (accumulate ? *c : 0);
                }
        }
    }
}
#endif
#endif

// Products of more columns in panels of 64 through the same loop (B read in place, Bᵀ copied per
// panel, or A copied in blocks for Aᵀ·B: packed_panel_gemm), when OpenBLAS runs kernels of narrower
// vectors than this build's: an AVX-512 build where OpenBLAS took AVX2 kernels (its choice for a CPU
// it does not know, or OPENBLAS_CORETYPE). Against OpenBLAS's Haswell kernels on an AMD Zen 5 (1
// thread, whole training steps): tiny model 34.5 → 32.1 ms, flip-flop 1914 → 1654 ms, lm-small 2879
// → 2221 ms. Its AVX-512 kernels (SkylakeX, Cooperlake, Sapphire Rapids) beat the panels (flip-flop
// step 1202 against 1365 ms, blocks of 6 rows) and keep those products. With B transposed the panels
// copy each panel's Bᵀ, which few rows do not repay (a decoding step's one row per token: 6× slower
// than OpenBLAS; 16 rows about even), so those take PANEL_BT_MIN_ROWS rows at least; with both
// transposed (no caller) they were slower and stay with OpenBLAS. The choice depends on the machine
// and its environment alone, like OpenBLAS's own kernel choice, unless matmul_set_panels sets it.
#if VEC_BYTES
enum { PANEL_BT_MIN_ROWS = 32, SHORT_ROWS = 64 };
static atomic_int panels_mode = -1;  // -1: not known yet; 0, 1: off, on

static int openblas_has_avx512(void) {
    char name[64] = {0};
    const char *core = openblas_get_corename();
    for (int i = 0; core && core[i] && i < (int)sizeof name - 1; i++)
        name[i] = (char)tolower((unsigned char)core[i]);
    return strstr(name, "skylakex") || strstr(name, "cooperlake") || strstr(name, "sapphire");
}

static int panels_on(void) {
    int mode = atomic_load(&panels_mode);
    if (mode < 0) {  // the default, by OpenBLAS's kernel, unless matmul_set_panels got there first
        int unknown = -1;
        atomic_compare_exchange_strong(&panels_mode, &unknown, !openblas_has_avx512());
        mode = atomic_load(&panels_mode);
    }
    return mode;
}

// Whether a product runs in panels (alpha 1, beta 0 or 1, as narrow_fits). A sum of at most
// SHORT_SUM terms takes them whatever OpenBLAS's kernel: there its copies of both operands cost the
// most per multiply-add. Against its SkylakeX kernels on an AVX-512 Xeon (1 thread), 4096 rows of
// 64 against 192 and 256 columns (the tiny model's q, k, v and first feed-forward layer): 122 and 119
// -> 154 GFLOP/s. Sums of 256 terms and more were as fast or faster in OpenBLAS (8192 × 256 against
// 1024 columns 148 against 124 GFLOP/s, 8192 × 768 against 256 columns 130 against 126; OpenBLAS
// first, measured by turns).
enum { SHORT_SUM = 64 };
static int panels_fit(int trans_a, int trans_b, int M, int N, int K) {
    if (N <= 64 || N % 64 != 0 || !narrow_fits(64) || (trans_b && (trans_a || M < PANEL_BT_MIN_ROWS))) return 0;
    return K <= SHORT_SUM || panels_on();
}

// Short products: at most SHORT_ROWS rows against a multiple of 16 columns past 64, neither operand
// transposed (attention's q·kᵀ of a block of query rows against the keys transposed once per head,
// CoPE's Q·E), in panels whatever OpenBLAS's kernel. Against q·kᵀ in the transposed product above
// (the keys read in place): 1.33× its rate at T = 512 and 2048 (head size 64, 1 thread, the copy of
// the keys not counted); attention alone at the flip-flop shape 55.0 → 50.2 ms with OpenBLAS's
// Haswell kernels, 56.5 → 51.7 with its Cooperlake ones (the copy counted).
static int short_fits(int trans_a, int trans_b, int M, int N) {
    return !trans_a && !trans_b && M <= SHORT_ROWS && N > 64 && N % 16 == 0 && narrow_fits(64);
}

// The width of the panel at column n0 of N (a multiple of 16): 64, or the last 16 or 32 columns (a
// last 48 runs as 32 and 16).
static int panel_width(int N, int n0) { return N - n0 >= 64 ? 64 : N - n0 >= 32 ? 32 : 16; }

// C = Aᵀ·B (+ C0, see narrow_rows) in panels, for panel_gemm: a weight gradient's product, A (K,M) and
// B (K,N) summed over every token (K up to thousands). The loop reads op(A) as 6 values of each of K
// rows of A, lda apart; at lda = 1024 floats (4 KB) those rows fall into few sets of the caches, which
// evicted them before the next block of rows read the rest of the same lines (113-140 GFLOP/s in the
// flip-flop model's step). So PACK_K rows × PACK_ROWS columns of A at a time are copied into a stack
// block of consecutive rows, which every panel then reads (161-179 GFLOP/s; the step 1343 → 1241 ms).
// The chunks of K are the outer loop, so a chunk of B comes from memory once and from the caches for
// the other blocks of A's columns (a block's pass over all of K read B from memory again for each:
// 1-5% slower, 8% at 1024 × 1024). The chunks of K add onto C in k order, so the bits are one pass's.
// noinline, like narrow_gemm_bt and packed_b_gemm: their stack blocks (96, 64 and 64 KB of floats)
// are never on a thread's stack together. (Double builds compile them but have no panels: 64 columns
// of doubles do not fit the registers.)
enum { PACK_ROWS = 96, PACK_K = 256 };

// Rows k of B (ldb apart), w columns each, into consecutive rows of w: a panel's chunk of B.
static void pack_rows(real *dst, const real *B, int ldb, int rows, int w) {
    for (int k = 0; k < rows; k++) memcpy(dst + (long)k * w, B + (long)k * ldb, sizeof(real) * w);
}

__attribute__((noinline)) static void packed_panel_gemm(int M, int N, int K, const real *A, int lda, const real *B,
                                                       int ldb, const real *C0, int ldc0, real *C, int ldc) {
    real packed[PACK_K * PACK_ROWS];
    for (int k0 = 0; k0 < K || k0 == 0; k0 += PACK_K) {
        int kc = K - k0 < PACK_K ? K - k0 : PACK_K;
        for (int m0 = 0; m0 < M; m0 += PACK_ROWS) {
            int mr = M - m0 < PACK_ROWS ? M - m0 : PACK_ROWS;
            for (int k = 0; k < kc; k++)
                memcpy(packed + (long)k * mr, A + (long)(k0 + k) * lda + m0, sizeof(real) * mr);
            for (int n0 = 0, w; n0 < N; n0 += w) {
                w = panel_width(N, n0);
                real *c = C + (long)m0 * ldc + n0;
                const real *c0 = k0 > 0 ? c : C0 ? C0 + (long)m0 * ldc0 + n0 : NULL;
                narrow_gemm(1, mr, w, kc, packed, mr, B + (long)k0 * ldb + n0, ldb, c0, k0 > 0 ? ldc : ldc0, c, ldc);
            }
        }
    }
}

// C = A·B (+ C0) in panels, for products of more than SHORT_ROWS rows: each panel's
// B is copied in chunks of PACK_K rows into a stack block of consecutive rows, which every block of
// C's rows then reads. Read in place, B's rows lie ldb apart (1-4 KB in the models' products) and
// every block of rows streamed the panel's rows again from L2: the flip-flop model's forward
// products (8192 rows; 256 or 1024 columns, K 256 or 1024) ran at 170-196 GFLOP/s, now 202-212
// (1 thread; the 1024³ product 162 → 200). The chunks add onto C in k order: one pass's bits.
// With A transposed (packed_panel_gemm) the same copy of B measured no faster. A tile of a product
// whose B matmul() copied once for all its tiles passes those panels (pack_panels) and no B.
__attribute__((noinline)) static void packed_b_gemm(int M, int N, int K, const real *A, int lda, const real *B, int ldb,
                                                   const real *panels, const real *C0, int ldc0, real *C, int ldc) {
    real panel[PACK_K * 64];
    for (int n0 = 0, w; n0 < N; n0 += w) {
        w = panel_width(N, n0);
        for (int k0 = 0; k0 < K || k0 == 0; k0 += PACK_K) {
            int kc = K - k0 < PACK_K ? K - k0 : PACK_K;
            const real *chunk = panels ? panels + (long)n0 * K + (long)k0 * w : panel;
            if (!panels) pack_rows(panel, B + (long)k0 * ldb + n0, ldb, kc, w);
            const real *c0 = k0 > 0 ? C + n0 : C0 ? C0 + n0 : NULL;
            narrow_gemm(0, M, w, kc, A + k0, lda, chunk, w, c0, k0 > 0 ? ldc : ldc0, C + n0, ldc);
        }
    }
}

// C = op(A)·op(B) (+ C0, see narrow_rows) in panels of 64 columns (the last 16, 32 or 48).
// N is a multiple of 16 (panels_fit, short_fits).
static void panel_gemm(int trans_a, int trans_b, int M, int N, int K, const real *A, int lda, const real *B,
                       int ldb, const real *C0, int ldc0, real *C, int ldc) {
    if (trans_a && !trans_b) {
        packed_panel_gemm(M, N, K, A, lda, B, ldb, C0, ldc0, C, ldc);
        return;
    }
    if (!trans_a && !trans_b && M > SHORT_ROWS) {
        packed_b_gemm(M, N, K, A, lda, B, ldb, NULL, C0, ldc0, C, ldc);
        return;
    }
    for (int n0 = 0, w; n0 < N; n0 += w) {
        w = panel_width(N, n0);
        const real *c0 = C0 ? C0 + n0 : NULL;
        if (trans_b)
            narrow_gemm_bt(trans_a, M, w, K, A, lda, B + (long)n0 * ldb, ldb, c0, ldc0, C + n0, ldc);
        else
            narrow_gemm(trans_a, M, w, K, A, lda, B + n0, ldb, c0, ldc0, C + n0, ldc);
    }
}

// A product that matmul() cuts into tiles of rows, each of which runs in panels (packed_b_gemm, or
// narrow_gemm_bt's copies of Bᵀ): every tile copied all of B's panels again, K·N copies against its
// rows·K·N multiply-adds (tiles of 512 rows: the lm-small model's step spent 2-3% in them). Such
// products (prepacked_fits) copy B once, before the tiles, into panels of 64 columns, each its K
// rows of 64 in turn (Bᵀ's for B transposed), and every tile reads them there (packed_b_gemm): the
// chunks of PACK_K rows that the copies per tile had (narrow_gemm_bt's slices too), the same sums in
// the same order, so the same bits. A B of more than PREPACK_MAX reals (16 MB of floats, more than any weight of the
// bench's models) keeps the copies per tile rather than a scratch buffer that large.
enum { PREPACK_MAX = 1 << 22 };

// Whether the tiles of a product, the smallest of last_rows rows, all run in panels (gemm's order:
// more than 64 rows take neither the narrow, the short nor the transposed product).
static int prepacked_fits(int trans_a, int trans_b, int last_rows, int N, int K, real alpha, real beta) {
    return alpha == 1 && (beta == 0 || beta == 1) && !trans_a && last_rows > SHORT_ROWS &&
           (long)K * N <= PREPACK_MAX && panels_fit(0, trans_b, last_rows, N, K);
}

static void pack_panels(real *dst, int trans_b, int N, int K, const real *B, int ldb) {
#pragma omp parallel for schedule(static)
    for (int n0 = 0; n0 < N; n0 += 64) {
        if (trans_b)
            matmul_transpose(dst + (long)n0 * K, 64, B + (long)n0 * ldb, ldb, 64, K);
        else
            pack_rows(dst + (long)n0 * K, B + n0, ldb, K, 64);
    }
}

#endif

void matmul_transpose(real *dst, int ldd, const real *src, int lds, int rows, int cols) {
    int r = 0;
#if TRANSPOSED
    for (; r + LANES <= rows; r += LANES) {
        int c = 0;
        for (; c + LANES <= cols; c += LANES)
            transpose_tile(dst + (long)c * ldd + r, ldd, src + (long)r * lds + c, lds, 0);
        for (; c < cols; c++)
            for (int i = r; i < r + LANES; i++) dst[(long)c * ldd + i] = src[(long)i * lds + c];
    }
#endif
    for (; r < rows; r++)
        for (int c = 0; c < cols; c++) dst[(long)c * ldd + r] = src[(long)r * lds + c];
}

// A product's panels read a block of B's rows, one k at a time: rows an even multiple of 64 bytes
// apart fall into fewer sets of L1 (at 1024 or 2048 floats, every row into one). q·kᵀ of 64 rows
// against 2048 keys, heads of 64, from keys transposed at stride 2048 and 2064: 149 and 185
// GFLOP/s (1 thread); at 1024 keys 159 and 190.
int matmul_copy_stride(int n) {
    int per_line = 64 / (int)sizeof(real), lines = (n + per_line - 1) / per_line;
    return per_line * (lines % 2 ? lines : lines + 1);
}

void matmul_set_panels(int on) {
#if VEC_BYTES
    atomic_store(&panels_mode, on < 0 ? -1 : on != 0);
#else
    (void)on;
#endif
}

const char *matmul_narrow_path(void) {
    static char what[256];
    int n = snprintf(what, sizeof what, "%s build: ", TARGET_VEC_NAME), any = 0;
#if VEC_BYTES
    for (int N = 16; N <= 64; N *= 2)
        if (narrow_fits(N)) n += snprintf(what + n, sizeof what - n, "%s%d", any++ ? ", " : "own loop for ", N);
#endif
    int panels = 0;
#if VEC_BYTES
    panels = narrow_fits(64) && panels_on();
#endif
    if (!any) {
        snprintf(what + n, sizeof what - n, "OpenBLAS for every product");
        return what;
    }
    int short_panels = 0;
#if VEC_BYTES
    short_panels = narrow_fits(64);
#endif
    snprintf(what + n, sizeof what - n, " columns%s%s%s, OpenBLAS for the rest",
             TRANSPOSED ? " and as many rows against more columns" : "",
             short_panels ? ", up to 64 rows against multiples of 16 columns" : "",
             panels ? ", multiples of 64 columns in panels"
                    : short_panels ? ", multiples of 64 columns in panels for sums of at most 64 terms" : "");
    return what;
}
#pragma GCC pop_options

// One product, C = alpha·op(A)·op(B) + beta·C, or + the row bias in every row of C when bias is not
// NULL (beta is then 0): the narrow loop above where it applies, summing from the bias row, else one
// OpenBLAS call (single-threaded inside a parallel region, see set_threads) after the bias is copied
// into C's rows.
static void gemm(int trans_a, int trans_b, int M, int N, int K, real alpha, const real *A, int lda,
                 const real *B, int ldb, real beta, const real *bias, real *C, int ldc) {
#if VEC_BYTES
    int plain = alpha == 1 && (beta == 0 || beta == 1);  // what the own loop computes
    const real *C0 = bias ? bias : beta == 1 ? C : NULL;  // the rows the sums start from (narrow_rows)
    int ldc0 = bias ? 0 : ldc;
    if (narrow_fits(N) && plain) {
        if (!trans_b) {
            narrow_gemm(trans_a, M, N, K, A, lda, B, ldb, C0, ldc0, C, ldc);
            return;
        }
        narrow_gemm_bt(trans_a, M, N, K, A, lda, B, ldb, C0, ldc0, C, ldc);
        return;
    }
    if (plain && short_fits(trans_a, trans_b, M, N)) {
        panel_gemm(trans_a, trans_b, M, N, K, A, lda, B, ldb, C0, ldc0, C, ldc);
        return;
    }
#if TRANSPOSED
    if (transposed_fits(trans_a, trans_b, M, N, K) && plain && !bias) {
        transposed_gemm(trans_a, trans_b, M, N, K, A, lda, B, ldb, beta == 1, C, ldc);
        return;
    }
#endif
    if (plain && panels_fit(trans_a, trans_b, M, N, K)) {
        panel_gemm(trans_a, trans_b, M, N, K, A, lda, B, ldb, C0, ldc0, C, ldc);
        return;
    }
#endif
    if (bias) {
        for (int m = 0; m < M; m++) memcpy(C + (long)m * ldc, bias, sizeof(real) * N);
        beta = 1;
    }
#ifdef REAL_DOUBLE
    cblas_dgemm(CblasRowMajor, trans_a ? CblasTrans : CblasNoTrans, trans_b ? CblasTrans : CblasNoTrans,
                M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
#else
    cblas_sgemm(CblasRowMajor, trans_a ? CblasTrans : CblasNoTrans, trans_b ? CblasTrans : CblasNoTrans,
                M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
#endif
}

// Threads: OpenBLAS's own threading splits one product between threads that wait for each other
// inside it (they share packed panels); when another process holds a core, every product then waits
// for a descheduled thread, and 2 threads ran several times slower than 1. So a large product is cut
// here into independent tiles, each one single-threaded OpenBLAS call, which the OpenMP threads share
// by the run-time schedule (system.h): in equal contiguous shares on a quiet machine, so that a core
// takes the same rows of every product and elementwise loop and finds them in its own cache; as they
// come while other processes preempt the threads, so that a descheduled thread delays a product by
// one tile at most. The cut depends on the shape alone, never on the thread count or the schedule,
// so neither do the results: rows of C when M is large, else columns when N is; when the summed
// dimension dominates (weight gradients sum over every token) it is cut into K_TILES slices whose
// products go to scratch and are added in slice order.
enum { TILE_MIN = 256, MAX_TILES = 8, K_TILES = 4, K_MIN = 2048 };

// One per calling thread, as for attention's workspace: replicas may run products at once.
static _Thread_local real *scratch;
static _Thread_local long scratch_size;
static _Thread_local int top_level;  // matmul_set_top_level

void matmul_set_top_level(int level) { top_level = level; }

static real *scratch_for(long n) {
    if (n > scratch_size) {
        free(scratch);
        scratch = malloc(sizeof(real) * n);
        if (!scratch) {
            fprintf(stderr, "matmul.c: out of memory for %.1f MB of scratch for products\n", sizeof(real) * n / 1e6);
            exit(1);
        }
        scratch_size = n;
    }
    return scratch;
}

// Tile length for a dimension of n: at most MAX_TILES tiles of at least TILE_MIN, multiples of 64.
static int tile_of(int n) {
    int t = (n + MAX_TILES - 1) / MAX_TILES;
    t = (t + 63) / 64 * 64;
    return t < TILE_MIN ? TILE_MIN : t;
}

// C = alpha·Σ_s A_s·B_s + beta·C (or + bias, as gemm) over slices s of K, the slices' products summed
// in order.
static void matmul_k_sliced(int trans_a, int trans_b, int M, int N, int K, real alpha, const real *A, int lda,
                            const real *B, int ldb, real beta, const real *bias, real *C, int ldc) {
    int kt = (K + K_TILES - 1) / K_TILES;
    long mn = (long)M * N;
    real *part = scratch_for(K_TILES * mn);
#pragma omp parallel for schedule(runtime)
    for (int s = 0; s < K_TILES; s++) {
        int k0 = s * kt, k1 = k0 + kt < K ? k0 + kt : K;
        const real *As = trans_a ? A + (long)k0 * lda : A + k0, *Bs = trans_b ? B + k0 : B + (long)k0 * ldb;
        gemm(trans_a, trans_b, M, N, k1 - k0, 1, As, lda, Bs, ldb, 0, NULL, part + s * mn, N);
    }
#pragma omp parallel for schedule(static)
    for (int m = 0; m < M; m++) {
        real *c = C + (long)m * ldc;
        for (int n = 0; n < N; n++) {
            real sum = part[(long)m * N + n];
            for (int s = 1; s < K_TILES; s++) sum += part[s * mn + (long)m * N + n];
            c[n] = alpha * sum + (bias ? bias[n] : beta == 0 ? 0 : beta * c[n]);
        }
    }
}

// product's work: one product on the calling thread inside a parallel region, else cut into tiles
// (or K slices) that the threads share.
static void product_tiles(int trans_a, int trans_b, int M, int N, int K, real alpha, const real *A, int lda,
                          const real *B, int ldb, real beta, const real *bias, real *C, int ldc) {
    if (omp_get_level() > top_level) {  // already one task of a parallel loop (attention's heads)
        gemm(trans_a, trans_b, M, N, K, alpha, A, lda, B, ldb, beta, bias, C, ldc);
        return;
    }
    int big = M > N ? M : N;
    if (K >= K_MIN && K >= 2 * big) {
        matmul_k_sliced(trans_a, trans_b, M, N, K, alpha, A, lda, B, ldb, beta, bias, C, ldc);
        return;
    }
    int by_rows = M >= N, len = by_rows ? M : N, t = tile_of(len), tiles = (len + t - 1) / t;
#if VEC_BYTES
    const real *packed = NULL;  // B's panels for every tile (packed_b_gemm)
    if (by_rows && tiles > 1 && prepacked_fits(trans_a, trans_b, len - (tiles - 1) * t, N, K, alpha, beta)) {
        real *p = scratch_for((long)K * N);
        pack_panels(p, trans_b, N, K, B, ldb);
        packed = p;
    }
#endif
#pragma omp parallel for schedule(runtime) if (tiles > 1)
    for (int i = 0; i < tiles; i++) {
        int a = i * t, w = a + t < len ? t : len - a;
#if VEC_BYTES
        if (packed) {  // C0 as gemm's: the bias row, or C itself to accumulate
            const real *c0 = bias ? bias : beta == 1 ? C + (long)a * ldc : NULL;
            packed_b_gemm(w, N, K, A + (long)a * lda, lda, NULL, 0, packed, c0, bias ? 0 : ldc, C + (long)a * ldc, ldc);
            continue;
        }
#endif
        if (by_rows)
            gemm(trans_a, trans_b, w, N, K, alpha, trans_a ? A + a : A + (long)a * lda, lda, B, ldb, beta, bias,
                 C + (long)a * ldc, ldc);
        else
            gemm(trans_a, trans_b, M, w, K, alpha, A, lda, trans_b ? B + (long)a * ldb : B + a, ldb, beta,
                 bias ? bias + a : NULL, C + a, ldc);
    }
}

// The tally of matmul_profile: nanoseconds of the step's own time and FLOPs (2·M·N·K a product).
// A product's wall time counts whole at the top level, where the step waits for it, and divided by
// the threads running beside it inside parallel regions (attention's heads, micro-batch replicas),
// where as many products or other passes run at once: on 1 thread, exactly the step's time in
// products. Dividing assumes the team's threads are all busy: a region with fewer tasks than threads
// (fewer heads than threads), or whose threads wait on each other, shows less than the step spent.
// A tallied product pays two clock reads and three atomic adds: the tiny model's step of 6,200
// products took 29.4-29.6 ms tallied against 29.3-29.5 untallied (alternating runs, 1 thread).
static atomic_int profiling;
static atomic_llong profile_ns, profile_flops, profile_calls;

void matmul_profile(int on) {
    if (on) {
        atomic_store(&profile_ns, 0);
        atomic_store(&profile_flops, 0);
        atomic_store(&profile_calls, 0);
    }
    atomic_store(&profiling, on);
}

MatmulProfile matmul_profile_read(void) {
    MatmulProfile p = {atomic_load(&profile_ns) * 1e-9, (double)atomic_load(&profile_flops),
                       atomic_load(&profile_calls)};
    return p;
}

static void profile_add(double seconds, int M, int N, int K) {
    for (int level = 1; level <= omp_get_level(); level++) seconds /= omp_get_team_size(level);
    atomic_fetch_add_explicit(&profile_ns, (long long)(seconds * 1e9), memory_order_relaxed);
    atomic_fetch_add_explicit(&profile_flops, 2LL * M * N * K, memory_order_relaxed);
    atomic_fetch_add_explicit(&profile_calls, 1, memory_order_relaxed);
}

// matmul, or matmul_bias when bias is not NULL.
static void product(int trans_a, int trans_b, int M, int N, int K, real alpha, const real *A, int lda,
                    const real *B, int ldb, real beta, const real *bias, real *C, int ldc) {
    if (!atomic_load_explicit(&profiling, memory_order_relaxed)) {
        product_tiles(trans_a, trans_b, M, N, K, alpha, A, lda, B, ldb, beta, bias, C, ldc);
        return;
    }
    double t0 = omp_get_wtime();
    product_tiles(trans_a, trans_b, M, N, K, alpha, A, lda, B, ldb, beta, bias, C, ldc);
    profile_add(omp_get_wtime() - t0, M, N, K);
}

void matmul(int trans_a, int trans_b, int M, int N, int K, real alpha, const real *A, int lda, const real *B,
            int ldb, real beta, real *C, int ldc) {
    product(trans_a, trans_b, M, N, K, alpha, A, lda, B, ldb, beta, NULL, C, ldc);
}

void matmul_bias(int M, int N, int K, const real *A, int lda, const real *B, int ldb, const real *bias, real *C,
                 int ldc) {
    product(0, 1, M, N, K, 1, A, lda, B, ldb, 0, bias, C, ldc);
}

void matmul_naive(int trans_a, int trans_b, int M, int N, int K, real alpha, const real *A, int lda,
                  const real *B, int ldb, real beta, real *C, int ldc) {
    for (int m = 0; m < M; m++) {
        for (int n = 0; n < N; n++) {
            double acc = 0.0;
            for (int k = 0; k < K; k++) {
                real a = trans_a ? A[(long)k * lda + m] : A[(long)m * lda + k];
                real b = trans_b ? B[(long)n * ldb + k] : B[(long)k * ldb + n];
                acc += (double)a * b;
            }
            real *c = &C[(long)m * ldc + n];
            *c = (real)(alpha * acc + (beta == 0 ? 0.0 : beta * *c));
        }
    }
}
