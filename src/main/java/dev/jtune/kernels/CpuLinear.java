package dev.jtune.kernels;

import dev.jtune.util.Tensors;
import org.bytedeco.pytorch.GradMode;
import org.bytedeco.pytorch.MemoryFormatOptional;
import org.bytedeco.pytorch.Tensor;
import org.bytedeco.pytorch.global.torch;
import org.bytedeco.pytorch.global.torch.ScalarType;

/**
 * {@code x · Wᵀ + b} in fp32 on the CPU without autograd (decoding, evaluation), as matrix-vector products when x has
 * one row, split by output features across {@link SplitWorkers}.
 *
 * <p>Why (bench/RESULTS.md, "decode"): for a (1, d) × (d, n) product {@code torch.linear} goes to OpenBLAS's sgemm,
 * which packs the whole weight before multiplying one row by it; {@code torch.mv} on the same (n, d) weight calls sgemv
 * and streams it once, 5 to 10× faster on the qwen2.5-0.5b shapes. OpenBLAS's own thread pool busy-waits and
 * fights LibTorch's for the cores (jtune keeps it at one thread, {@link dev.jtune.util.NativeRuntime}), so the split
 * across cores is done here: each worker multiplies a block of weight rows into its own slice of the output, so the
 * weights are still read once per step, by all cores at once. Several rows (batched decode, a prompt) take the same
 * split with sgemm on each block.
 *
 * <p>The result equals {@code torch.linear} up to float rounding (the sums run in another order); the decode tests
 * compare it with the full forward.
 */
public final class CpuLinear {
    /** Below this many weight elements a split costs more in hand-offs than it saves. */
    static final long MIN_SPLIT_ELEMENTS = 1L << 16;
    /** Row blocks start at multiples of this (cache lines of the output, aligned weight rows). */
    private static final long ALIGN = 16;

    private CpuLinear() {}

    /** True when {@link #apply} takes this product: fp32 CPU tensors, no gradient recorded, a 2-d weight. */
    public static boolean applies(Tensor x, Tensor w) {
        return !GradMode.is_enabled()
                && w.dim() == 2 && x.dim() >= 1
                && x.is_cpu() && w.is_cpu()
                && x.scalar_type().intern() == ScalarType.Float && w.scalar_type().intern() == ScalarType.Float;
    }

    /** x (..., d), w (n, d) any strides, bias (n) or null: (..., n). Callers check {@link #applies} first. */
    public static Tensor apply(Tensor x, Tensor w, Tensor bias) {
        long d = x.size(-1), n = w.size(0);
        if (w.size(1) != d) throw new IllegalArgumentException("linear: x (..., " + d + ") against weight " + n + "x" + w.size(1));
        long rows = d == 0 ? 0 : x.numel() / d;
        long[] outShape = x.sizes().vec().get();
        outShape[outShape.length - 1] = n;
        Tensor x2 = x.reshape(rows, d);                                           // (R, d)
        Tensor out = torch.empty(new long[] {rows, n}, Tensors.options(ScalarType.Float), new MemoryFormatOptional());   // (R, n)
        SplitWorkers pool = SplitWorkers.shared();
        int parts = n * d < MIN_SPLIT_ELEMENTS ? 1 : (int) Math.max(1, Math.min(pool.parts(), n / ALIGN));
        if (rows == 1) {
            Tensor xv = x2.view(d);                                               // (d,)
            Tensor ov = out.view(n);                                              // (n,)
            pool.run(parts, p -> {
                long[] r = block(n, p, parts);
                if (r[1] > 0) torch.mv_out(ov.narrow(0, r[0], r[1]), w.narrow(0, r[0], r[1]), xv);
            });
        } else {
            pool.run(parts, p -> {
                long[] r = block(n, p, parts);
                if (r[1] > 0) torch.mm_out(out.narrow(1, r[0], r[1]), x2, w.narrow(0, r[0], r[1]).t());   // (R, len): a column block, row stride n
            });
        }
        if (bias != null) out.add_(bias);
        return out.view(outShape);
    }

    /** Start and length of output block p of parts over n features, starts aligned to {@link #ALIGN}. */
    static long[] block(long n, int p, int parts) {
        long start = p == 0 ? 0 : Math.min(n, (n * p / parts + ALIGN - 1) / ALIGN * ALIGN);
        long end = p == parts - 1 ? n : Math.min(n, (n * (p + 1) / parts + ALIGN - 1) / ALIGN * ALIGN);
        return new long[] {start, end - start};
    }
}
