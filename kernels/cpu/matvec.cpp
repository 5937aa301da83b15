// y = W x + b for one fp32 row x (decoding one token): W (rows, d) row-major, each weight row read once.
// The product is bound by memory (one multiply-add per 4 bytes of weight), so the kernel's job is to keep the loads
// streaming: eight rows at a time (AVX-512; four with AVX2) share each load of x, with one accumulator per row
// (independent FMA chains hide the FMA latency), and the row tail is a masked load (AVX-512) or a scalar loop.
// Threads split the rows (dev.jtune.kernels.CpuLinear); this file is one thread's work.
#include "common.h"

namespace {

using jtc::hsum256;
using jtc::hsum512;

// ---------------------------------------------------------------------------------------------------------------
// AVX-512F: 16 floats per load

// M rows at a time, one accumulator each
template <int M>
__attribute__((target("avx512f")))
void rows_avx512(const float *w, int64_t ldw, const float *x, const float *bias, float *y, int64_t dv, __mmask16 tail) {
    __m512 a[M];
    for (int m = 0; m < M; m++) a[m] = _mm512_setzero_ps();
    for (int64_t k = 0; k < dv; k += 16) {
        __m512 xv = _mm512_loadu_ps(x + k);
        for (int m = 0; m < M; m++) a[m] = _mm512_fmadd_ps(_mm512_loadu_ps(w + m * ldw + k), xv, a[m]);
    }
    if (tail) {
        __m512 xv = _mm512_maskz_loadu_ps(tail, x + dv);
        for (int m = 0; m < M; m++) a[m] = _mm512_fmadd_ps(_mm512_maskz_loadu_ps(tail, w + m * ldw + dv), xv, a[m]);
    }
    for (int m = 0; m < M; m++) y[m] = hsum512(a[m]) + (bias ? bias[m] : 0.0f);
}

// eight rows at a time: eight streams from memory at once (measured 548 µs per 4864 × 896 weight against 659 for four)
__attribute__((target("avx512f")))
void matvec_avx512(const float *w, int64_t ldw, const float *x, const float *bias, float *y, int64_t rows, int64_t d) {
    const int64_t dv = d & ~int64_t(15);
    const __mmask16 tail = (__mmask16) ((1u << (d - dv)) - 1);
    int64_t r = 0;
    for (; r + 8 <= rows; r += 8) rows_avx512<8>(w + r * ldw, ldw, x, bias ? bias + r : nullptr, y + r, dv, tail);
    for (; r < rows; r++) rows_avx512<1>(w + r * ldw, ldw, x, bias ? bias + r : nullptr, y + r, dv, tail);
}

// ---------------------------------------------------------------------------------------------------------------
// AVX2 + FMA: 8 floats per load

__attribute__((target("avx2,fma")))
void matvec_avx2(const float *w, int64_t ldw, const float *x, const float *bias, float *y, int64_t rows, int64_t d) {
    const int64_t dv = d & ~int64_t(7);
    int64_t r = 0;
    for (; r + 4 <= rows; r += 4) {
        const float *w0 = w + r * ldw, *w1 = w0 + ldw, *w2 = w1 + ldw, *w3 = w2 + ldw;
        __m256 a0 = _mm256_setzero_ps(), a1 = a0, a2 = a0, a3 = a0;
        for (int64_t k = 0; k < dv; k += 8) {
            __m256 xv = _mm256_loadu_ps(x + k);
            a0 = _mm256_fmadd_ps(_mm256_loadu_ps(w0 + k), xv, a0);
            a1 = _mm256_fmadd_ps(_mm256_loadu_ps(w1 + k), xv, a1);
            a2 = _mm256_fmadd_ps(_mm256_loadu_ps(w2 + k), xv, a2);
            a3 = _mm256_fmadd_ps(_mm256_loadu_ps(w3 + k), xv, a3);
        }
        float s0 = hsum256(a0), s1 = hsum256(a1), s2 = hsum256(a2), s3 = hsum256(a3);
        for (int64_t k = dv; k < d; k++) {
            s0 += w0[k] * x[k]; s1 += w1[k] * x[k]; s2 += w2[k] * x[k]; s3 += w3[k] * x[k];
        }
        if (bias) { s0 += bias[r]; s1 += bias[r + 1]; s2 += bias[r + 2]; s3 += bias[r + 3]; }
        y[r] = s0; y[r + 1] = s1; y[r + 2] = s2; y[r + 3] = s3;
    }
    for (; r < rows; r++) {
        const float *w0 = w + r * ldw;
        __m256 a0 = _mm256_setzero_ps();
        for (int64_t k = 0; k < dv; k += 8) a0 = _mm256_fmadd_ps(_mm256_loadu_ps(w0 + k), _mm256_loadu_ps(x + k), a0);
        float s = hsum256(a0);
        for (int64_t k = dv; k < d; k++) s += w0[k] * x[k];
        y[r] = s + (bias ? bias[r] : 0.0f);
    }
}

// ---------------------------------------------------------------------------------------------------------------
// Portable C++: any x86-64 (the compiler vectorises what it can for the baseline ISA)

void matvec_generic(const float *w, int64_t ldw, const float *x, const float *bias, float *y, int64_t rows, int64_t d) {
    for (int64_t r = 0; r < rows; r++) y[r] = jtc::dot_generic(w + r * ldw, x, d) + (bias ? bias[r] : 0.0f);
}

using MatvecFn = void (*)(const float *, int64_t, const float *, const float *, float *, int64_t, int64_t);

// the variant for an instruction set (jtune_cpu.h's JTC_ISA_*), or null where this CPU lacks it
MatvecFn variant(int isa) {
    if (isa == JTC_ISA_BEST) isa = jtc::best_isa();
    if (!jtc::supports(isa)) return nullptr;
    switch (isa) {
        case JTC_ISA_AVX512: return matvec_avx512;
        case JTC_ISA_AVX2: return matvec_avx2;
        case JTC_ISA_GENERIC: return matvec_generic;
        default: return nullptr;
    }
}

const MatvecFn best = variant(JTC_ISA_BEST);   // chosen once, when the library loads

}  // namespace

// ---------------------------------------------------------------------------------------------------------------
// launcher

extern "C" int jtc_matvec_f32(int isa, const float *w, int64_t ldw, const float *x, const float *bias, float *y,
                              int64_t rows, int64_t d) {
    MatvecFn f = isa == JTC_ISA_BEST ? best : variant(isa);
    if (f == nullptr) return JTC_ERR_ISA;
    if (rows > 0) f(w, ldw, x, bias, y, rows, d);
    return JTC_OK;
}
