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

#endif
