// Dequantize bitsandbytes' 4-bit block-wise format (NF4 / FP4, QLoRA), one thread per packed byte.
//   packed: (n + 1) / 2 bytes, element 2i in the high nibble of byte i, 2i + 1 in the low nibble
//   absmax: float32, one per block of `blocksize` elements; with double quantization instead
//           absmax[b] = nested_map[qabsmax[b]] * nested_absmax[b / nested_blocksize] + offset
//   out[i] = dtype(quant_map[code_i] * absmax[i / blocksize])
// Products and sums are rounded separately (__fmul_rn / __fadd_rn: no fused multiply-add), as the
// LibTorch composition (FourBitCodec.dequantize) and bitsandbytes round them, so f32 results are
// bit-identical to it and bf16 ones round once from the same float.
#include "common.cuh"

template <typename T>
__global__ void dequantize_4bit_kernel(T *out, const uint8_t *packed, const float *absmax, const uint8_t *qabsmax,
                                       const float *nested_absmax, const float *nested_map, float offset,
                                       int64_t nested_blocksize, const float *quant_map, int64_t n, int64_t blocksize) {
    __shared__ float map[16];
    if (threadIdx.x < 16) map[threadIdx.x] = quant_map[threadIdx.x];
    __syncthreads();
    int64_t bytes = (n + 1) / 2;
    for (int64_t i = blockIdx.x * (int64_t) blockDim.x + threadIdx.x; i < bytes; i += (int64_t) gridDim.x * blockDim.x) {
        int64_t e = 2 * i;                   // blocksize is even: both nibbles share a block
        int64_t b = e / blocksize;
        float scale = qabsmax ? __fadd_rn(__fmul_rn(nested_map[qabsmax[b]], nested_absmax[b / nested_blocksize]), offset)
                              : absmax[b];
        uint8_t byte = packed[i];
        store(out + e, __fmul_rn(map[byte >> 4], scale));
        if (e + 1 < n) store(out + e + 1, __fmul_rn(map[byte & 15], scale));
    }
}

// ---- launcher ----
extern "C" jtk_status jtk_dequantize_4bit(void *out, const uint8_t *packed, const float *absmax, const uint8_t *qabsmax,
                                          const float *nested_absmax, const float *nested_map, float offset,
                                          int64_t nested_blocksize, const float *quant_map, int64_t n, int64_t blocksize,
                                          jtk_dtype dtype, cudaStream_t stream) {
    JTK_REQUIRE(out && packed && quant_map, "dequantize_4bit: null pointer");
    JTK_REQUIRE((absmax != NULL) != (qabsmax != NULL),
                "dequantize_4bit: give exactly one of absmax (float32) and qabsmax (double quantization)");
    JTK_REQUIRE(!qabsmax || (nested_absmax && nested_map && nested_blocksize > 0),
                "dequantize_4bit: double quantization needs nested_absmax, nested_map and nested_blocksize > 0");
    JTK_REQUIRE(n >= 0, "dequantize_4bit: n %lld", (long long) n);
    JTK_REQUIRE(blocksize > 0 && blocksize % 2 == 0, "dequantize_4bit: blocksize %lld must be even and positive",
                (long long) blocksize);
    JTK_DTYPE_OK(dtype);
    if (n == 0) return JTK_OK;
    int threads = 256;
    int64_t b = ((n + 1) / 2 + threads - 1) / threads;
    int grid = (int) (b < 65535LL * 32 ? b : 65535LL * 32);
    if (dtype == JTK_F32)
        dequantize_4bit_kernel<float><<<grid, threads, 0, stream>>>((float *) out, packed, absmax, qabsmax,
            nested_absmax, nested_map, offset, nested_blocksize, quant_map, n, blocksize);
    else
        dequantize_4bit_kernel<__nv_bfloat16><<<grid, threads, 0, stream>>>((__nv_bfloat16 *) out, packed, absmax, qabsmax,
            nested_absmax, nested_map, offset, nested_blocksize, quant_map, n, blocksize);
    JTK_LAUNCHED("dequantize_4bit_kernel");
    return JTK_OK;
}
