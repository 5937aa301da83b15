package dev.jtune.kernels;

import org.bytedeco.javacpp.Pointer;
import org.bytedeco.pytorch.Tensor;
import org.bytedeco.pytorch.global.torch;
import org.bytedeco.pytorch.global.torch.ScalarType;

import java.lang.reflect.Method;

/**
 * The CUDA launchers through {@link KernelNative}: device pointers of LibTorch's tensors, LibTorch's
 * current stream on the tensors' device. The stream is looked up reflectively
 * ({@code torch_cuda.getCurrentCUDAStream(device).stream()}) because those classes need the CUDA
 * preset, which only the -Pgpu build has on its class path.
 */
final class CudaKernels implements KernelBackend {
    static final CudaKernels INSTANCE = new CudaKernels();

    private volatile Method currentStream, streamHandle;

    private CudaKernels() {}

    @Override
    public String name() {
        return "cuda";
    }

    static int dtype(Tensor t) {
        ScalarType s = t.scalar_type().intern();
        if (s == ScalarType.Float) return KernelNative.F32;
        if (s == ScalarType.BFloat16) return KernelNative.BF16;
        throw new IllegalArgumentException("kernels take float32 or bfloat16, not " + s);
    }

    static long ptr(Tensor t) {
        return t == null ? 0 : t.data_ptr().address();
    }

    /** Selects the tensor's device for this library's CUDA runtime and returns LibTorch's current stream there. */
    private long stream(Tensor t) {
        int device = t.device().index();
        check("set_device", KernelNative.setDevice(device));
        try {
            if (currentStream == null) {
                Class<?> c = Class.forName("org.bytedeco.pytorch.global.torch_cuda");
                currentStream = c.getMethod("getCurrentCUDAStream", byte.class);
                streamHandle = currentStream.getReturnType().getMethod("stream");
            }
            Pointer s = (Pointer) currentStream.invoke(null, (byte) device);
            Pointer handle = (Pointer) streamHandle.invoke(s);
            long address = handle == null ? 0 : handle.address();
            s.close();
            return address;
        } catch (ReflectiveOperationException | LinkageError e) {
            throw new KernelException("cannot get LibTorch's current CUDA stream (is the CUDA preset on the class path?): " + e);
        }
    }

    static void check(String op, int status) {
        if (status != KernelNative.OK) {
            throw new KernelException(op + ": " + (status == KernelNative.ERR_CUDA ? "CUDA error: " : "") + KernelNative.lastError());
        }
    }

    @Override
    public void rmsNormForward(Tensor y, Tensor rstd, Tensor x, Tensor w, double eps) {
        long rows = x.size(0), dim = x.size(1);
        check("rmsnorm_forward", KernelNative.rmsnormForward(ptr(y), ptr(rstd), ptr(x), ptr(w), rows, dim, (float) eps,
                dtype(x), stream(x)));
    }

    @Override
    public void rmsNormBackward(Tensor dx, Tensor dw, Tensor dy, Tensor x, Tensor w, Tensor rstd) {
        long rows = x.size(0), dim = x.size(1);
        Tensor scratch = torch.empty(new long[] {Math.max(1, KernelNative.rmsnormBackwardScratch(rows, dim))},
                KernelArgs.opts(ScalarType.Float, x), new org.bytedeco.pytorch.MemoryFormatOptional());
        check("rmsnorm_backward", KernelNative.rmsnormBackward(ptr(dx), ptr(dw), ptr(scratch), ptr(dy), ptr(x), ptr(w),
                ptr(rstd), rows, dim, dtype(x), stream(x)));
    }

    @Override
    public void rope(Tensor out, Tensor x, Tensor cos, Tensor sin, boolean backward) {
        check("rope", KernelNative.rope(ptr(out), out.stride(0), out.stride(1), out.stride(2),
                ptr(x), x.stride(0), x.stride(1), x.stride(2), ptr(cos), ptr(sin), cos.stride(0), cos.stride(1),
                x.size(0), x.size(1), x.size(2), x.size(3), cos.size(0), backward, dtype(x), stream(x)));
    }

    @Override
    public void swigluForward(Tensor y, Tensor gate, Tensor up) {
        check("swiglu_forward", KernelNative.swigluForward(ptr(y), ptr(gate), ptr(up), gate.numel(), dtype(gate), stream(gate)));
    }

    @Override
    public void swigluBackward(Tensor dgate, Tensor dup, Tensor dy, Tensor gate, Tensor up) {
        check("swiglu_backward", KernelNative.swigluBackward(ptr(dgate), ptr(dup), ptr(dy), ptr(gate), ptr(up), gate.numel(),
                dtype(gate), stream(gate)));
    }

    @Override
    public void crossEntropy(Tensor loss, Tensor logits, Tensor targets, long ignoreIndex, double scale) {
        check("cross_entropy", KernelNative.crossEntropy(ptr(loss), ptr(logits), ptr(targets), logits.size(0), logits.size(1),
                logits.stride(0), ignoreIndex, (float) scale, dtype(logits), stream(logits)));
    }

    @Override
    public void dequantize4bit(Tensor out, Tensor packed, Tensor absmax, Tensor qabsmax, Tensor nestedAbsmax, Tensor nestedMap,
                               float offset, long nestedBlocksize, Tensor quantMap, long n, long blocksize) {
        check("dequantize_4bit", KernelNative.dequantize4bit(ptr(out), ptr(packed), ptr(absmax), ptr(qabsmax), ptr(nestedAbsmax),
                ptr(nestedMap), offset, nestedBlocksize, ptr(quantMap), n, blocksize, dtype(out), stream(out)));
    }
}
