// Attention of one new token per sequence over its cached keys and values (decoding): for each batch row b and
// query head h, o = softmax(scale · K q, masked) V over the S cached positions, with grouped-query heads (query head h
// reads key/value head h / (H / KV), as transformers' repeat_kv). fp32; q (B, H, hd), K and V (B, KV, S, hd), all
// with the last dimension contiguous and any other strides (the KV cache's views), a key mask of (B or 1, S) bytes
// (nonzero = visible) or none. LibTorch's scaled_dot_product_attention costs ~70 µs at batch 1 and ~440 µs at batch 8
// for this (allocations, the GQA expansion, dispatch) against a few microseconds of arithmetic.
// One call does the (b, h) pairs [p0, p1) in order b-major, so the caller can split long contexts across threads.
#include <math.h>
#include "common.h"

namespace {

// dot(a, b) over n floats
__attribute__((target("avx512f")))
float dot_avx512(const float *a, const float *b, int64_t n) {
    __m512 acc = _mm512_setzero_ps();
    int64_t k = 0;
    for (; k + 16 <= n; k += 16) acc = _mm512_fmadd_ps(_mm512_loadu_ps(a + k), _mm512_loadu_ps(b + k), acc);
    if (k < n) {
        __mmask16 m = (__mmask16) ((1u << (n - k)) - 1);
        acc = _mm512_fmadd_ps(_mm512_maskz_loadu_ps(m, a + k), _mm512_maskz_loadu_ps(m, b + k), acc);
    }
    __m256 h = _mm256_add_ps(_mm512_castps512_ps256(acc),
                             _mm256_castpd_ps(_mm512_extractf64x4_pd(_mm512_castps_pd(acc), 1)));
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(h), _mm256_extractf128_ps(h, 1));
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    s = _mm_add_ss(s, _mm_movehdup_ps(s));
    return _mm_cvtss_f32(s);
}

// o += p · v over n floats
__attribute__((target("avx512f")))
void axpy_avx512(float *o, float p, const float *v, int64_t n) {
    __m512 pv = _mm512_set1_ps(p);
    int64_t k = 0;
    for (; k + 16 <= n; k += 16) _mm512_storeu_ps(o + k, _mm512_fmadd_ps(pv, _mm512_loadu_ps(v + k), _mm512_loadu_ps(o + k)));
    if (k < n) {
        __mmask16 m = (__mmask16) ((1u << (n - k)) - 1);
        _mm512_mask_storeu_ps(o + k, m, _mm512_fmadd_ps(pv, _mm512_maskz_loadu_ps(m, v + k), _mm512_maskz_loadu_ps(m, o + k)));
    }
}

void axpy_generic(float *o, float p, const float *v, int64_t n) {
    for (int64_t k = 0; k < n; k++) o[k] += p * v[k];
}

template <float (*Dot)(const float *, const float *, int64_t), void (*Axpy)(float *, float, const float *, int64_t)>
void attend(const jtc_decode_attention_args *a, int64_t p0, int64_t p1, float *scores) {
    const int64_t group = a->heads / a->kv_heads;
    for (int64_t p = p0; p < p1; p++) {
        const int64_t b = p / a->heads, h = p % a->heads, g = h / group;
        const float *q = a->q + b * a->q_stride_b + h * a->q_stride_h;
        const float *k = a->k + b * a->k_stride_b + g * a->k_stride_h;
        const float *v = a->v + b * a->v_stride_b + g * a->v_stride_h;
        const unsigned char *mask = a->mask ? a->mask + b * a->mask_stride_b : nullptr;
        float *o = a->out + b * a->out_stride_b + h * a->out_stride_h;
        float max = -INFINITY;
        for (int64_t s = 0; s < a->keys; s++) {
            if (mask && !mask[s]) continue;
            float sc = Dot(q, k + s * a->k_stride_s, a->head_dim) * a->scale;
            scores[s] = sc;
            if (sc > max) max = sc;
        }
        for (int64_t j = 0; j < a->head_dim; j++) o[j] = 0.0f;
        if (max == -INFINITY) continue;                    // no visible key: zeros (LibTorch gives NaN here)
        float sum = 0.0f;
        for (int64_t s = 0; s < a->keys; s++) {
            if (mask && !mask[s]) continue;
            float e = expf(scores[s] - max);
            sum += e;
            Axpy(o, e, v + s * a->v_stride_s, a->head_dim);
        }
        const float inv = 1.0f / sum;
        for (int64_t j = 0; j < a->head_dim; j++) o[j] *= inv;
    }
}

}  // namespace

// ---------------------------------------------------------------------------------------------------------------
// launcher

extern "C" int jtc_decode_attention_f32(int isa, const jtc_decode_attention_args *a, int64_t p0, int64_t p1,
                                        float *scores) {
    if (a->heads <= 0 || a->kv_heads <= 0 || a->heads % a->kv_heads != 0 || p0 < 0 || p1 > a->batch * a->heads) {
        return JTC_ERR_ARG;
    }
    if (isa == JTC_ISA_BEST) isa = jtc::has_avx512() ? JTC_ISA_AVX512 : JTC_ISA_GENERIC;
    if (isa == JTC_ISA_AVX512 && !jtc::has_avx512()) return JTC_ERR_ISA;
    if (isa == JTC_ISA_AVX512) attend<dot_avx512, axpy_avx512>(a, p0, p1, scores);
    else if (isa == JTC_ISA_GENERIC) attend<jtc::dot_generic, axpy_generic>(a, p0, p1, scores);
    else return JTC_ERR_ISA;
    return JTC_OK;
}
