package dev.jtune.kernels;

/**
 * The C ABI of native/include/jtune_kernels.h as plain JNI methods (native/src/jni.cpp), one per
 * launcher. Pointers are addresses ({@code Tensor.data_ptr().address()}, LibTorch's current
 * {@code cudaStream_t}); sizes are elements. Each launcher returns a status: 0 ok, 1 invalid
 * argument, 2 CUDA error; {@link #lastError()} has the message. The library is loaded by
 * {@link KernelLibrary} (through JavaCPP's Loader); calling these before it loaded throws
 * {@link UnsatisfiedLinkError}.
 */
final class KernelNative {
    static final int OK = 0, ERR_INVALID = 1, ERR_CUDA = 2;
    static final int F32 = 0, BF16 = 1;

    private KernelNative() {}

    static native int abiVersion();

    static native String lastError();

    /** Number of CUDA devices, or -status on failure. */
    static native int deviceCount();

    static native int setDevice(int device);

    static native int rmsnormForward(long y, long rstd, long x, long w, long rows, long dim, float eps, int dtype, long stream);

    static native long rmsnormBackwardScratch(long rows, long dim);

    static native int rmsnormBackward(long dx, long dw, long scratch, long dy, long x, long w, long rstd, long rows, long dim,
                                      int dtype, long stream);

    static native int rope(long out, long os0, long os1, long os2, long x, long xs0, long xs1, long xs2, long cos, long sin,
                           long cs0, long cs1, long b, long h, long t, long hd, long bc, boolean backward, int dtype, long stream);

    static native int swigluForward(long y, long gate, long up, long n, int dtype, long stream);

    static native int swigluBackward(long dgate, long dup, long dy, long gate, long up, long n, int dtype, long stream);

    static native int crossEntropy(long loss, long logits, long targets, long rows, long vocab, long ld, long ignoreIndex,
                                   float scale, int dtype, long stream);

    /** bitsandbytes 4-bit dequantization (kernels/dequantize_4bit.cu); absmax or qabsmax is 0 (see the header). */
    static native int dequantize4bit(long out, long packed, long absmax, long qabsmax, long nestedAbsmax, long nestedMap,
                                     float offset, long nestedBlocksize, long quantMap, long n, long blocksize, int dtype,
                                     long stream);
}
