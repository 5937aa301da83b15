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
    static final int OK = 0, ERR_ISA = 1;

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
}
