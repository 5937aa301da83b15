package dev.jtune.kernels;

/**
 * The C ABI of native/include/jtune_cpu.h as plain JNI methods (native/cpu/jni.cpp): jtune's CPU kernels
 * (kernels/cpu/*.cpp). Pointers are host addresses ({@code Tensor.data_ptr().address()}); sizes are elements. The
 * library is loaded by {@link CpuKernelLibrary}; calling these before it loaded throws {@link UnsatisfiedLinkError}.
 */
final class CpuKernelNative {
    /** Instruction sets (jtune_cpu.h's JTC_ISA_*): BEST is what {@link #isa()} names; the others are for the tests. */
    static final int ISA_BEST = 0, ISA_AVX512 = 1, ISA_AVX2 = 2, ISA_GENERIC = 3;
    /** Status codes: OK, or this CPU lacks the instruction set asked for. */
    static final int OK = 0, ERR_ISA = 1, ERR_ARG = 2;
    /** The most rows of x {@link #linearRows} takes in one call. */
    static final int LINEAR_ROWS_MAX = 8;

    private CpuKernelNative() {}

    static native int abiVersion();

    /** The instruction set the kernels run with here: "avx512f", "avx2+fma" or "generic". */
    static native String isa();

    /**
     * y[r] = w[r, :] · x (+ bias[r]) for r in [0, rows): fp32, w with row stride ldw, x (d), bias (rows) or 0, y (rows).
     * Reads each weight row once (kernels/cpu/matvec.cpp). Returns {@link #OK}, or {@link #ERR_ISA} when this CPU lacks
     * {@code isa}.
     */
    static native int matvec(int isa, long w, long ldw, long x, long bias, long y, long rows, long d);

    /**
     * y[i, r] = w[r, :] · x[i, :] (+ bias[r]) for i in [0, rows), r in [0, n): 1 to {@link #LINEAR_ROWS_MAX} rows of x
     * (row stride ldx) times the weight (row stride ldw), y with row stride ldy; each weight row read once for all rows
     * (kernels/cpu/linear_rows.cpp). Returns {@link #OK}, {@link #ERR_ISA} or {@link #ERR_ARG} (rows out of range).
     */
    static native int linearRows(int isa, long w, long ldw, long x, long ldx, long rows, long bias, long y, long ldy, long n, long d);

    /**
     * Decoding attention, one query per sequence (kernels/cpu/attention_decode.cpp): for the (b, h) pairs [p0, p1)
     * (p = b * heads + h), out[b, h] = softmax(scale * K[b, h / (heads / kvHeads)] q[b, h], masked) V[...]. fp32 addresses
     * and strides in elements, last dimensions contiguous; mask: bytes (B or 1, keys), nonzero visible, or 0 for all
     * visible (msb 0 broadcasts one row). A pair with no visible key gets zeros. Returns {@link #OK}, {@link #ERR_ISA}
     * ({@link #ISA_AVX2} is not built) or {@link #ERR_ARG}.
     */
    static native int decodeAttention(int isa, long q, long qsb, long qsh, long k, long ksb, long ksh, long kss, long v,
                                      long vsb, long vsh, long vss, long mask, long msb, long out, long osb, long osh,
                                      long batch, long heads, long kvHeads, long keys, long headDim, float scale, long p0, long p1);
}
