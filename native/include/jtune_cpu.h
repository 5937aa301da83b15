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

// Decoding attention (one query per sequence) over cached keys and values: fp32, last dimensions contiguous, strides
// in elements. q (B, H, hd); k, v (B, KV, S, hd); mask (B or 1, S) bytes, nonzero = visible, or null (all visible;
// mask_stride_b 0 broadcasts one row); out (B, H, hd). Query head h reads key/value head h / (H / KV).
typedef struct {
    const float *q; int64_t q_stride_b, q_stride_h;
    const float *k; int64_t k_stride_b, k_stride_h, k_stride_s;
    const float *v; int64_t v_stride_b, v_stride_h, v_stride_s;
    const unsigned char *mask; int64_t mask_stride_b;
    float *out; int64_t out_stride_b, out_stride_h;
    int64_t batch, heads, kv_heads, keys, head_dim;
    float scale;
} jtc_decode_attention_args;

// o = softmax(scale · K q, masked) V for the (b, h) pairs [p0, p1) (p = b · H + h); scores: S floats of scratch
// for this call. A pair with no visible key gets zeros. JTC_ISA_AVX2 is not built (AVX-512 or generic).
int jtc_decode_attention_f32(int isa, const jtc_decode_attention_args *a, int64_t p0, int64_t p1, float *scores);

#ifdef __cplusplus
}
#endif
