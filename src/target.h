// The vector registers of the target the build compiles for (-march), for the loops written with
// GCC's generic vectors (vector_size): vectors as wide as the registers, since GCC lowers wider ones
// into slow code (the softmax rows of attention.c ran 2× slower with 64-byte vectors on AVX2).
#ifndef TARGET_H
#define TARGET_H

#if defined(__AVX512F__)
#define TARGET_VEC_BYTES 64
#define TARGET_VEC_REGS 32
#define TARGET_VEC_NAME "AVX-512"
#elif defined(__AVX__)
#define TARGET_VEC_BYTES 32
#define TARGET_VEC_REGS 16
#define TARGET_VEC_NAME "AVX"  // AVX2 and FMA too where the target has them, as x86-64-v3 does
#else
#define TARGET_VEC_BYTES 16  // SSE2, the x86-64 baseline
#define TARGET_VEC_REGS 16
#define TARGET_VEC_NAME "SSE2"
#endif

// Vectors go in and out of memory at any address through a twin type of the element's alignment,
// `typedef real vec_u __attribute__((vector_size(N))) TARGET_UNALIGNED(real);`, read as
// `*(const vec_u *)p` and written as `*(vec_u *)p = x`: one vector move each. A memcpy of the
// vector means the same, but GCC emits it in moves no wider than its tuning's move-max, which is 32
// bytes for GCC 12's Intel targets (-march=native on an AVX-512 Xeon gives rocketlake) and 64 for
// AMD's Zen 4 and 5: on Intel a 64-byte vector went through the stack in two halves and was read
// back whole, a read that waits for both stores (store forwarding fails). matmul.c's own loop ran at
// 44 GFLOP/s there, against OpenBLAS's 141.
#define TARGET_UNALIGNED(elem) __attribute__((aligned(sizeof(elem)), may_alias))

#endif
