// What the CPU kernels share (as common.cuh for the CUDA ones): the instruction sets this CPU has, and horizontal
// sums of a vector register.
#pragma once
// GCC 12's AVX-512 headers initialise a placeholder from itself (`__m512 __Y = __Y;`), which -Wall reports at every
// use of an intrinsic that takes an undefined source; the warning is about the header, not the kernels.
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#pragma GCC diagnostic ignored "-Wuninitialized"
#include <immintrin.h>
#include "jtune_cpu.h"

namespace jtc {

inline bool has_avx512() {
    __builtin_cpu_init();
    return __builtin_cpu_supports("avx512f");
}

inline bool has_avx2() {
    __builtin_cpu_init();
    return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
}

// JTC_ISA_BEST resolved to what this CPU has: AVX-512, else AVX2 + FMA, else generic
inline int best_isa() {
    return has_avx512() ? JTC_ISA_AVX512 : has_avx2() ? JTC_ISA_AVX2 : JTC_ISA_GENERIC;
}

// whether this CPU runs the variant for isa (JTC_ISA_BEST always)
inline bool supports(int isa) {
    switch (isa) {
        case JTC_ISA_BEST: case JTC_ISA_GENERIC: return true;
        case JTC_ISA_AVX512: return has_avx512();
        case JTC_ISA_AVX2: return has_avx2();
        default: return false;
    }
}

__attribute__((target("avx512f")))
inline float hsum512(__m512 v) {
    v = _mm512_add_ps(v, _mm512_shuffle_f32x4(v, v, _MM_SHUFFLE(1, 0, 3, 2)));   // 256-bit halves
    v = _mm512_add_ps(v, _mm512_shuffle_f32x4(v, v, _MM_SHUFFLE(2, 3, 0, 1)));   // 128-bit lanes
    __m128 s = _mm512_castps512_ps128(v);
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    s = _mm_add_ss(s, _mm_movehdup_ps(s));
    return _mm_cvtss_f32(s);
}

__attribute__((target("avx2,fma")))
inline float hsum256(__m256 v) {
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    s = _mm_add_ss(s, _mm_movehdup_ps(s));
    return _mm_cvtss_f32(s);
}

// dot(a, b) over n floats in portable C++: eight partial sums (the compiler vectorises them for the baseline ISA),
// added pairwise, then the tail
inline float dot_generic(const float *a, const float *b, int64_t n) {
    float s[8] = {0, 0, 0, 0, 0, 0, 0, 0};
    int64_t k = 0;
    for (; k + 8 <= n; k += 8)
        for (int j = 0; j < 8; j++) s[j] += a[k + j] * b[k + j];
    float t = ((s[0] + s[1]) + (s[2] + s[3])) + ((s[4] + s[5]) + (s[6] + s[7]));
    for (; k < n; k++) t += a[k] * b[k];
    return t;
}

}  // namespace jtc
