/*
 * jtune_kernels.h: the C ABI of jtune's CUDA kernels.
 *
 * Every launcher takes device pointers that LibTorch allocated, sizes, a dtype and the cudaStream_t
 * to run on (LibTorch's current stream), checks its arguments and every CUDA call, and returns a
 * jtk_status. On failure, jtk_last_error() gives the message (per thread): the argument that was
 * wrong, or the CUDA call that failed with cudaGetErrorString's text. Launches are asynchronous:
 * an error raised by a running kernel shows up at the next synchronising CUDA call.
 *
 * Arithmetic is fp32 whatever the storage dtype; bf16 values are rounded once, when stored.
 * Tensors are row-major and contiguous unless strides are passed explicitly (in elements).
 */
#ifndef JTUNE_KERNELS_H
#define JTUNE_KERNELS_H

#include <stdint.h>
#include <cuda_runtime_api.h>

#ifdef __cplusplus
extern "C" {
#endif

#define JTK_ABI_VERSION 1

typedef enum jtk_dtype { JTK_F32 = 0, JTK_BF16 = 1 } jtk_dtype;

typedef enum jtk_status {
    JTK_OK = 0,
    JTK_ERR_INVALID = 1,   /* a bad argument: null pointer, size out of range, unknown dtype */
    JTK_ERR_CUDA = 2       /* a CUDA call failed; jtk_last_error() has cudaGetErrorString's text */
} jtk_status;

/* ---- library ---- */
int jtk_abi_version(void);
/* The message of the last failed call on this thread ("" when none). */
const char *jtk_last_error(void);
/* Number of CUDA devices visible to this library's CUDA runtime (0 with an error when no driver). */
jtk_status jtk_device_count(int *count);
/* cudaSetDevice, for callers whose CUDA runtime is another copy than this library's. */
jtk_status jtk_set_device(int device);

/* ---- RMSNorm over the last dimension, as transformers' LlamaRMSNorm ----
 * forward:  rstd[r] = 1/sqrt(mean_j x[r,j]^2 + eps);  y[r,j] = dtype(x[r,j]*rstd[r]) * w[j]
 * x, y: (rows, dim) dtype; w: (dim,) dtype; rstd: (rows,) f32 (saved for backward).           */
jtk_status jtk_rmsnorm_forward(void *y, float *rstd, const void *x, const void *w,
                               int64_t rows, int64_t dim, float eps, jtk_dtype dtype, cudaStream_t stream);
/* backward: dx (rows, dim) dtype; dw (dim,) dtype, or NULL to skip the weight gradient.
 * scratch: f32, at least jtk_rmsnorm_backward_scratch(rows, dim) elements (per-block partial dw). */
int64_t jtk_rmsnorm_backward_scratch(int64_t rows, int64_t dim);
jtk_status jtk_rmsnorm_backward(void *dx, void *dw, float *scratch, const void *dy, const void *x,
                                const void *w, const float *rstd, int64_t rows, int64_t dim,
                                jtk_dtype dtype, cudaStream_t stream);

/* ---- Rotary embedding, Hugging Face's rotate-half convention ----
 * x: (B, H, T, hd) with strides xs[0..2] (elements; last dim contiguous); cos, sin: (Bc, T, hd),
 * Bc = 1 or B, strides cs[0..1] (shared by cos and sin; last dim contiguous), broadcast over H.
 * forward:  out = x*cos + rotate_half(x)*sin, rotate_half(x) = cat(-x[hd/2:], x[:hd/2])
 * backward: out = the gradient of x given the gradient of the output in x (its transpose).
 * out may equal x (in place); out has strides os[0..2]. */
jtk_status jtk_rope(void *out, const int64_t *os, const void *x, const int64_t *xs,
                    const void *cos, const void *sin, const int64_t *cs,
                    int64_t B, int64_t H, int64_t T, int64_t hd, int64_t Bc,
                    int backward, jtk_dtype dtype, cudaStream_t stream);

/* ---- SwiGLU: y = silu(gate) * up, elementwise over n values ----
 * backward: dgate = dy*up*s*(1+gate*(1-s)), dup = dy*silu(gate), s = sigmoid(gate).
 * dgate and dup may alias dy. */
jtk_status jtk_swiglu_forward(void *y, const void *gate, const void *up, int64_t n,
                              jtk_dtype dtype, cudaStream_t stream);
jtk_status jtk_swiglu_backward(void *dgate, void *dup, const void *dy, const void *gate, const void *up,
                               int64_t n, jtk_dtype dtype, cudaStream_t stream);

/* ---- Cross-entropy over the vocabulary, one chunk of rows at a time ----
 * logits: (rows, vocab) dtype, row stride ld (elements); targets: (rows,) int64.
 * loss[r] = logsumexp(logits[r]) - logits[r, targets[r]] (f32; 0 where targets[r] == ignore_index,
 * NaN where the target is outside [0, vocab)). When grad_scale != 0, logits is overwritten in place
 * with grad_scale * (softmax(logits[r]) - onehot(targets[r])) (zeros for ignored rows): the
 * gradient of grad_scale * sum(loss). Full fp32 logits are never materialised. */
jtk_status jtk_cross_entropy(float *loss, void *logits, const int64_t *targets, int64_t rows, int64_t vocab,
                             int64_t ld, int64_t ignore_index, float grad_scale,
                             jtk_dtype dtype, cudaStream_t stream);

/* ---- Dequantize bitsandbytes' 4-bit block-wise format (NF4/FP4), kernels/dequantize_4bit.cu ----
 * packed: (n+1)/2 bytes, element 2i in the high nibble of byte i; quant_map: 16 f32 code values.
 * Plain: absmax (f32, one per block of blocksize), qabsmax NULL. Double quantization: absmax NULL,
 * qabsmax (u8, one per block), nested_absmax (f32, one per nested_blocksize blocks), nested_map (256 f32),
 * offset: absmax[b] = nested_map[qabsmax[b]] * nested_absmax[b / nested_blocksize] + offset.
 * out[i] = dtype(quant_map[code_i] * absmax[i / blocksize]), products and sums rounded separately. */
jtk_status jtk_dequantize_4bit(void *out, const uint8_t *packed, const float *absmax, const uint8_t *qabsmax,
                               const float *nested_absmax, const float *nested_map, float offset,
                               int64_t nested_blocksize, const float *quant_map, int64_t n, int64_t blocksize,
                               jtk_dtype dtype, cudaStream_t stream);

#ifdef __cplusplus
}
#endif
#endif
