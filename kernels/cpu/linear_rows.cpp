// Y = X Wᵀ + b for a few fp32 rows of X (batched decoding: one token of each of R ≤ 8 sequences): W (n, d)
// row-major, X (R, d), Y (R, n), each weight row read once for all R rows. Like matvec.cpp the product is bound by
// memory while R is small (R multiply-adds per 4 bytes of weight), so the weights stream once and the R rows of X
// stay in L1/L2: eight weight rows at a time share each load of X, with one accumulator per (weight row, X row).
// Threads split the weight rows (dev.jtune.kernels.CpuLinear); this file is one thread's work.
#include "common.h"

namespace {

using jtc::hsum256;
using jtc::hsum512;

constexpr int MAX_ROWS = JTC_LINEAR_ROWS_MAX;

// ---------------------------------------------------------------------------------------------------------------
// AVX-512F: 16 floats per load

// M weight rows × R X rows: M·R accumulators, each weight load shared by R rows of X and each X load by M weight rows.
template <int M, int R>
__attribute__((target("avx512f")))
void block_avx512(const float *w, int64_t ldw, const float *x, int64_t ldx, const float *bias, float *y, int64_t ldy,
                  int64_t dv, __mmask16 tail) {
    __m512 a[M][R];
    for (int m = 0; m < M; m++)
        for (int i = 0; i < R; i++) a[m][i] = _mm512_setzero_ps();
    for (int64_t k = 0; k < dv; k += 16) {
        __m512 wv[M];
        for (int m = 0; m < M; m++) wv[m] = _mm512_loadu_ps(w + m * ldw + k);
        for (int i = 0; i < R; i++) {
            __m512 xv = _mm512_loadu_ps(x + i * ldx + k);
            for (int m = 0; m < M; m++) a[m][i] = _mm512_fmadd_ps(wv[m], xv, a[m][i]);
        }
    }
    if (tail) {
        __m512 wv[M];
        for (int m = 0; m < M; m++) wv[m] = _mm512_maskz_loadu_ps(tail, w + m * ldw + dv);
        for (int i = 0; i < R; i++) {
            __m512 xv = _mm512_maskz_loadu_ps(tail, x + i * ldx + dv);
            for (int m = 0; m < M; m++) a[m][i] = _mm512_fmadd_ps(wv[m], xv, a[m][i]);
        }
    }
    for (int i = 0; i < R; i++)
        for (int m = 0; m < M; m++) y[i * ldy + m] = hsum512(a[m][i]) + (bias ? bias[m] : 0.0f);
}

// R ≤ 8 X rows: blocks of eight weight rows (eight streams from memory at once: measured 20% faster than four at 8
// rows), X's rows two at a time (16 accumulators); the block's later groups re-read it from cache (8 rows × d
// floats: L1 at d = 896, L2 at 4864), not from memory
template <int R>
__attribute__((target("avx512f")))
void rows_avx512(const float *w, int64_t ldw, const float *x, int64_t ldx, const float *bias, float *y, int64_t ldy,
                 int64_t n, int64_t d) {
    const int64_t dv = d & ~int64_t(15);
    const __mmask16 tail = (__mmask16) ((1u << (d - dv)) - 1);
    int64_t r = 0;
    for (; r + 8 <= n; r += 8) {
        const float *b = bias ? bias + r : nullptr;
        for (int i = 0; i + 2 <= R; i += 2) block_avx512<8, 2>(w + r * ldw, ldw, x + i * ldx, ldx, b, y + i * ldy + r, ldy, dv, tail);
        if (R % 2) block_avx512<8, 1>(w + r * ldw, ldw, x + (R - 1) * ldx, ldx, b, y + (R - 1) * ldy + r, ldy, dv, tail);
    }
    for (; r < n; r++) {
        const float *b = bias ? bias + r : nullptr;
        for (int i = 0; i + 2 <= R; i += 2) block_avx512<1, 2>(w + r * ldw, ldw, x + i * ldx, ldx, b, y + i * ldy + r, ldy, dv, tail);
        if (R % 2) block_avx512<1, 1>(w + r * ldw, ldw, x + (R - 1) * ldx, ldx, b, y + (R - 1) * ldy + r, ldy, dv, tail);
    }
}

// ---------------------------------------------------------------------------------------------------------------
// AVX2 + FMA: 8 floats per load; one weight row × R ≤ 8 X rows (16 registers in all)

template <int R>
__attribute__((target("avx2,fma")))
void rows_avx2(const float *w, int64_t ldw, const float *x, int64_t ldx, const float *bias, float *y, int64_t ldy,
               int64_t n, int64_t d) {
    const int64_t dv = d & ~int64_t(7);
    for (int64_t r = 0; r < n; r++) {
        const float *w0 = w + r * ldw;
        __m256 a[R];
        for (int i = 0; i < R; i++) a[i] = _mm256_setzero_ps();
        for (int64_t k = 0; k < dv; k += 8) {
            __m256 v0 = _mm256_loadu_ps(w0 + k);
            for (int i = 0; i < R; i++) a[i] = _mm256_fmadd_ps(v0, _mm256_loadu_ps(x + i * ldx + k), a[i]);
        }
        for (int i = 0; i < R; i++) {
            float s = hsum256(a[i]);
            for (int64_t k = dv; k < d; k++) s += w0[k] * x[i * ldx + k];
            y[i * ldy + r] = s + (bias ? bias[r] : 0.0f);
        }
    }
}

// ---------------------------------------------------------------------------------------------------------------
// Portable C++

void rows_generic(int rows, const float *w, int64_t ldw, const float *x, int64_t ldx, const float *bias, float *y,
                  int64_t ldy, int64_t n, int64_t d) {
    for (int64_t r = 0; r < n; r++)
        for (int i = 0; i < rows; i++) y[i * ldy + r] = jtc::dot_generic(w + r * ldw, x + i * ldx, d) + (bias ? bias[r] : 0.0f);
}

using RowsFn = void (*)(const float *, int64_t, const float *, int64_t, const float *, float *, int64_t, int64_t, int64_t);

#define TABLE(fn) {fn<1>, fn<2>, fn<3>, fn<4>, fn<5>, fn<6>, fn<7>, fn<8>}
const RowsFn AVX512[MAX_ROWS] = TABLE(rows_avx512);
const RowsFn AVX2[MAX_ROWS] = TABLE(rows_avx2);

}  // namespace

// ---------------------------------------------------------------------------------------------------------------
// launcher

extern "C" int jtc_linear_rows_f32(int isa, const float *w, int64_t ldw, const float *x, int64_t ldx, int64_t rows,
                                   const float *bias, float *y, int64_t ldy, int64_t n, int64_t d) {
    if (rows < 1 || rows > MAX_ROWS) return JTC_ERR_ARG;
    if (isa == JTC_ISA_BEST) isa = jtc::best_isa();
    if (!jtc::supports(isa)) return JTC_ERR_ISA;
    if (n <= 0) return JTC_OK;
    switch (isa) {
        case JTC_ISA_AVX512: AVX512[rows - 1](w, ldw, x, ldx, bias, y, ldy, n, d); return JTC_OK;
        case JTC_ISA_AVX2: AVX2[rows - 1](w, ldw, x, ldx, bias, y, ldy, n, d); return JTC_OK;
        case JTC_ISA_GENERIC: rows_generic((int) rows, w, ldw, x, ldx, bias, y, ldy, n, d); return JTC_OK;
        default: return JTC_ERR_ISA;
    }
}
