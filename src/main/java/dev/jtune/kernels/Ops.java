package dev.jtune.kernels;

import org.bytedeco.pytorch.Tensor;
import org.bytedeco.pytorch.TensorOptional;
import org.bytedeco.pytorch.global.torch;

import org.bytedeco.pytorch.global.torch.ScalarType;

import java.util.LinkedHashMap;
import java.util.Locale;
import java.util.Map;
import java.util.function.Supplier;

/**
 * The op layer under one kernel policy: an immutable value that a model is built with ({@code
 * ModelLoader.load(dir, dtype, device, kernels)}), so each run, evaluation, generation or benchmark uses the
 * choice its experiment or flag made, and two models in one process may choose differently.
 *
 * <p>Each op ({@link RmsNorm}, {@link RotaryEmbedding}, {@link SwiGlu}, {@link ChunkedCrossEntropy}) runs its CUDA
 * kernel when this policy is {@code auto}, the tensors are on CUDA and the kernel library is available
 * ({@link KernelLibrary}); otherwise it runs its LibTorch composition, the reference the kernels are tested against.
 * Both paths are differentiable ({@link AutogradBridge}). This class decides the path and says which one was taken
 * ({@link #describe}); the ops are one file each.
 */
public final class Ops {
    /** {@code training.kernels: auto}, the default. */
    public static final Ops AUTO = new Ops(KernelMode.AUTO, null);
    /** {@code training.kernels: off}: LibTorch everywhere. */
    public static final Ops OFF = new Ops(KernelMode.OFF, null);

    private final KernelMode mode;
    /** Tests: a backend used on any device (EmulatedKernels on the CPU); null = the CUDA kernels. */
    private final KernelBackend backend;

    private Ops(KernelMode mode, KernelBackend backend) {
        this.mode = mode;
        this.backend = backend;
    }

    public static Ops of(KernelMode mode) {
        return mode == KernelMode.OFF ? OFF : AUTO;
    }

    /** {@code auto} with the kernel paths run by {@code backend} on any device (null: the CUDA kernels). Tests only. */
    static Ops withBackend(KernelBackend backend) {
        return backend == null ? AUTO : new Ops(KernelMode.AUTO, backend);
    }

    public KernelMode mode() {
        return mode;
    }

    // ------------------------------------------------------------------------------------------------
    // the ops

    /**
     * {@code x · wᵀ + bias}: x (..., d), w (n, d), bias (n) or null. Without autograd, in fp32 on the CPU, as
     * matrix-vector products split across cores ({@link CpuLinear}: decoding one token is 5-10x faster than
     * LibTorch's sgemm path); {@code torch.linear} everywhere else, and always under {@code kernels: off}.
     */
    public Tensor linear(Tensor x, Tensor w, Tensor bias) {
        if (mode != KernelMode.OFF && CpuLinear.applies(x, w)) return CpuLinear.apply(x, w, bias);
        return torch.linear(x, w, bias == null ? new TensorOptional() : new TensorOptional(bias));
    }

    /**
     * {@link #linear} of one input by several weights (q/k/v, gate/up): out[j] = x · w[j]ᵀ + bias[j] (bias[j] may be
     * null). Where {@link CpuLinear} applies, in one parallel pass over all the weights; otherwise one product each.
     */
    public Tensor[] linears(Tensor x, Tensor[] w, Tensor[] bias) {
        boolean cpu = mode != KernelMode.OFF;
        for (Tensor wj : w) cpu &= CpuLinear.applies(x, wj);
        if (cpu) return CpuLinear.applyAll(x, w, bias);
        Tensor[] out = new Tensor[w.length];
        for (int j = 0; j < w.length; j++) out[j] = linear(x, w[j], bias[j]);
        return out;
    }

    /**
     * Attention of one new token per sequence over the cache, no dropout: q (B, H, 1, hd), k, v (B, KV, S, hd) (H a
     * multiple of KV), mask bool broadcastable to (B, 1, 1, S) (true = visible) or null. jtune's CPU kernel on fp32 CPU
     * tensors without autograd, LibTorch's scaled_dot_product_attention otherwise and under {@code kernels: off}.
     * See {@link DecodeAttention}.
     */
    public Tensor oneQueryAttention(Tensor q, Tensor k, Tensor v, Tensor mask, double scale) {
        return DecodeAttention.apply(mode != KernelMode.OFF, q, k, v, mask, scale);
    }

    /** RMSNorm as transformers' LlamaRMSNorm: x (..., D), weight (D). See {@link RmsNorm}. */
    public Tensor rmsNorm(Tensor x, Tensor weight, double eps) {
        return RmsNorm.apply(backendFor(x), x, weight, eps);
    }

    /**
     * Rotary embedding, rotate-half convention: x (B, H, T, hd), cos, sin (B or 1, 1, T, hd). May overwrite x and
     * return it (the kernel path works in place), so treat x as consumed. See {@link RotaryEmbedding}.
     */
    public Tensor rope(Tensor x, Tensor cos, Tensor sin) {
        return RotaryEmbedding.apply(backendFor(x), x, cos, sin);
    }

    /** silu(gate) * up. See {@link SwiGlu}. */
    public Tensor swiglu(Tensor gate, Tensor up) {
        return SwiGlu.apply(backendFor(gate), gate, up);
    }

    /**
     * Summed token cross-entropy of {@code hidden @ weight^T} against targets (-100 ignored), at most {@code chunk}
     * rows of logits at a time: hidden (N, D), weight (V, D), targets (N,) int64; a 0-d float32 tensor,
     * differentiable with respect to hidden and weight. See {@link ChunkedCrossEntropy}.
     */
    public Tensor crossEntropySum(Tensor hidden, Tensor weight, Tensor targets, long chunk) {
        return crossEntropy(hidden, weight, targets, chunk, 0.0).loss();
    }

    /**
     * {@link #crossEntropySum} with label smoothing epsilon in [0, 1) ({@code training.label_smoothing_factor}): each
     * target row scores {@code (1 - eps)·(-log p[target]) + eps·mean over the vocabulary of (-log p)}. Both paths take
     * it (the kernel path corrects the kernel's plain loss and gradient around it). See {@link ChunkedCrossEntropy}.
     */
    public Tensor crossEntropySum(Tensor hidden, Tensor weight, Tensor targets, long chunk, double smoothing) {
        return crossEntropy(hidden, weight, targets, chunk, smoothing).loss();
    }

    /** {@link #crossEntropySum} with the size of the logits buffer it used, for the tests of the chunking. */
    ChunkedCrossEntropy.Result crossEntropy(Tensor hidden, Tensor weight, Tensor targets, long chunk) {
        return crossEntropy(hidden, weight, targets, chunk, 0.0);
    }

    ChunkedCrossEntropy.Result crossEntropy(Tensor hidden, Tensor weight, Tensor targets, long chunk, double smoothing) {
        return ChunkedCrossEntropy.sum(backendFor(hidden), hidden, weight, targets, chunk, smoothing);
    }

    /**
     * bitsandbytes 4-bit dequantization to {@code dtype} in {@code shape} (see {@link Dequantize4bit} for the layout):
     * the CUDA kernel for float32/bfloat16 on CUDA, else {@code composition} (quant.FourBitCodec.dequantize, the
     * reference). No gradient.
     *
     * @param absmax       float32 [B], or with double quantization uint8 codes [B]
     * @param nestedAbsmax float32 [ceil(B / nestedBlocksize)], or null without double quantization
     * @param nestedMap    float32 [256], or null
     */
    public Tensor dequantize4bit(Tensor packed, Tensor absmax, Tensor nestedAbsmax, Tensor nestedMap, float offset,
                                 long nestedBlocksize, Tensor quantMap, long[] shape, long blocksize, ScalarType dtype,
                                 Supplier<Tensor> composition) {
        return Dequantize4bit.apply(backendFor(packed), new Dequantize4bit.Args(packed, absmax, nestedAbsmax, nestedMap, offset,
                nestedBlocksize, quantMap, shape, blocksize), dtype, composition);
    }

    // ------------------------------------------------------------------------------------------------
    // dispatch and its description

    /** The backend for an op on t, or null for LibTorch. */
    private KernelBackend backendFor(Tensor t) {
        if (mode == KernelMode.OFF) return null;
        if (backend != null) return backend;
        if (!t.is_cuda() || !KernelLibrary.available()) return null;
        return CudaKernels.INSTANCE;
    }

    /**
     * Which path each op takes for a run on CUDA ({@code cuda}) or the CPU under this policy: op name to a short
     * description, in the op layer's order. For the run log and bench's JSON.
     */
    public Map<String, String> paths(boolean cuda) {
        String path;
        if (mode == KernelMode.OFF) path = "LibTorch (kernels: off)";
        else if (backend != null) path = "kernel path, " + backend.name() + " backend (test)";
        else if (!cuda) path = "LibTorch (CPU tensors)";
        else if (KernelLibrary.available()) path = "CUDA kernel (float32/bfloat16; LibTorch for other dtypes)";
        else path = "LibTorch (CUDA kernels unavailable)";
        boolean kernel = path.startsWith("CUDA");
        Map<String, String> m = new LinkedHashMap<>();
        if (!cuda) {
            m.put("linear", linearPathOnCpu());
            m.put("oneQueryAttention", mode == KernelMode.OFF ? "LibTorch (kernels: off)" : CpuKernelLibrary.available()
                    ? "jtune CPU kernel for fp32 decode steps without autograd; LibTorch's SDPA otherwise" : "LibTorch's SDPA (" + CpuKernelLibrary.reason() + ")");
        }
        m.put("rmsNorm", path + (kernel ? ", dim <= " + RmsNorm.MAX_DIM : ""));
        m.put("rope", path + (kernel ? ", in place" : ""));
        m.put("swiglu", path);
        m.put("crossEntropySum", path + ", chunked over tokens");
        m.put("dequantize4bit", path + (kernel ? " (4-bit base only)" : ""));
        return m;
    }

    /** How fp32 linears without autograd run on the CPU under this policy ({@link CpuLinear}). */
    private String linearPathOnCpu() {
        if (mode == KernelMode.OFF) return "LibTorch (kernels: off): torch.linear";
        String split = "split across " + SplitWorkers.defaultParts() + " threads";
        if (CpuKernelLibrary.available()) {
            return "jtune CPU kernel (" + CpuKernelLibrary.status().isa() + ") for fp32 products of up to "
                    + CpuKernelNative.LINEAR_ROWS_MAX + " rows without autograd, " + split + "; LibTorch otherwise";
        }
        return "LibTorch sgemv/sgemm " + split + " for fp32 products without autograd (" + CpuKernelLibrary.reason() + ")";
    }

    /** {@link #paths} as lines for the run log, headed by the mode and (on CUDA) whether the kernel library loaded. */
    public String describe(boolean cuda) {
        // on a CPU run the library's state does not matter (and without a GPU its reason is CUDA's driver message)
        String lib = !cuda ? "a CPU run" : KernelLibrary.available() ? "CUDA kernels available: " + KernelLibrary.reason()
                : "CUDA kernels unavailable: " + KernelLibrary.reason();
        StringBuilder b = new StringBuilder("kernels: " + mode.key() + "; " + lib);
        paths(cuda).forEach((op, path) -> b.append(String.format(Locale.ROOT, "%n  %-17s %s", op, path)));
        return b.toString();
    }

    @Override
    public String toString() {
        return "kernels: " + mode.key() + (backend == null ? "" : " (" + backend.name() + " backend)");
    }
}
