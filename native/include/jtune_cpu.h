// The C ABI of jtune's CPU kernels (libjtunecpu.so): plain functions on host pointers and sizes in elements.
// Built by native/build-cpu.sh with the host C++ compiler (no CUDA needed); each op picks its instruction set once,
// at load (AVX-512, AVX2 + FMA, or portable C++), and jtc_isa() says which.
#pragma once
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define JTC_ABI_VERSION 1

int jtc_abi_version(void);

// "avx512f", "avx2+fma" or "generic": the instruction set the kernels run with on this CPU.
const char *jtc_isa(void);

// Instruction sets a kernel can be asked for: BEST (what jtc_isa names) in use; the others let the tests run every
// variant this CPU has.
#define JTC_ISA_BEST 0
#define JTC_ISA_AVX512 1
#define JTC_ISA_AVX2 2
#define JTC_ISA_GENERIC 3

#define JTC_OK 0
#define JTC_ERR_ISA 1   // this CPU lacks the instruction set asked for
#define JTC_ERR_ARG 2   // an argument out of range (e.g. more rows than JTC_LINEAR_ROWS_MAX)

// The most rows of X jtc_linear_rows_f32 takes in one call.
#define JTC_LINEAR_ROWS_MAX 8

// y[r] = dot(w[r * ldw .. r * ldw + d), x[0 .. d)) (+ bias[r] when bias is not null), for r in [0, rows).
// fp32, w row-major with row stride ldw >= d, x and y contiguous. One weight row is read once: the matrix-vector
// product of one decoded token, called on a chunk of rows by each thread.
int jtc_matvec_f32(int isa, const float *w, int64_t ldw, const float *x, const float *bias, float *y, int64_t rows,
                   int64_t d);

// Y[i, r] = dot(w[r * ldw .. + d), X[i * ldx .. + d)) (+ bias[r]) for i in [0, rows), r in [0, n): a few rows of X
// (1 <= rows <= JTC_LINEAR_ROWS_MAX) times the weight, each weight row read once for all of them (batched decoding).
// Y row-major with row stride ldy: a thread writes its column block [r0, r0 + n) by passing w + r0 * ldw, y + r0.
int jtc_linear_rows_f32(int isa, const float *w, int64_t ldw, const float *x, int64_t ldx, int64_t rows, const float *bias,
                        float *y, int64_t ldy, int64_t n, int64_t d);

#ifdef __cplusplus
}
#endif
