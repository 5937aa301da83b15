package dev.jtune.kernels;

import org.bytedeco.pytorch.Tensor;

/**
 * The kernels' primitives on LibTorch tensors: outputs are preallocated by the caller and written in
 * place, exactly as the CUDA launchers do. {@link CudaKernels} runs them on the GPU; {@link
 * EmulatedKernels} computes the same with LibTorch ops, so that the autograd wiring of the ops is
 * tested on the CPU. Callers pass contiguous tensors of one dtype (fp32 or bf16) unless noted.
 */
interface KernelBackend {
    String name();

    /** x (rows, dim), w (dim); writes y (rows, dim) and rstd (rows,) f32. */
    void rmsNormForward(Tensor y, Tensor rstd, Tensor x, Tensor w, double eps);

    /** Writes dx (rows, dim) and, when not null, dw (dim,). */
    void rmsNormBackward(Tensor dx, Tensor dw, Tensor dy, Tensor x, Tensor w, Tensor rstd);

    /**
     * x and out (B, H, T, hd), any strides with the last dim contiguous (out may be x); cos, sin
     * (Bc, T, hd) with the last dim contiguous. backward: x holds the output gradient, out gets x's.
     */
    void rope(Tensor out, Tensor x, Tensor cos, Tensor sin, boolean backward);

    void swigluForward(Tensor y, Tensor gate, Tensor up);

    void swigluBackward(Tensor dgate, Tensor dup, Tensor dy, Tensor gate, Tensor up);

    /**
     * logits (rows, V) row-major (row stride may exceed V), targets (rows,) int64: writes loss (rows,)
     * f32 and, when scale != 0, scale * d(sum loss)/d(logits) over logits.
     */
    void crossEntropy(Tensor loss, Tensor logits, Tensor targets, long ignoreIndex, double scale);

    /**
     * bitsandbytes 4-bit dequantization into out (n elements, fp32 or bf16, contiguous): exactly one of absmax
     * (float32 [B]) and qabsmax (uint8 [B], double quantization with nestedAbsmax, nestedMap, offset) is non-null.
     */
    void dequantize4bit(Tensor out, Tensor packed, Tensor absmax, Tensor qabsmax, Tensor nestedAbsmax, Tensor nestedMap,
                        float offset, long nestedBlocksize, Tensor quantMap, long n, long blocksize);
}
