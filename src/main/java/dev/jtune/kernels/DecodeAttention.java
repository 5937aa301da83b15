package dev.jtune.kernels;

import org.bytedeco.pytorch.DoubleOptional;
import org.bytedeco.pytorch.GradMode;
import org.bytedeco.pytorch.MemoryFormatOptional;
import org.bytedeco.pytorch.Tensor;
import org.bytedeco.pytorch.TensorOptional;
import org.bytedeco.pytorch.global.torch;
import org.bytedeco.pytorch.global.torch.ScalarType;

/**
 * Attention of one new token per sequence over its cached keys and values (a decode step), without dropout:
 * q (B, H, 1, hd), k and v (B, KV, S, hd) with H a multiple of KV (grouped-query heads), a bool key mask broadcastable
 * to (B, 1, 1, S) (true = visible) or none; (B, H, 1, hd) out. On fp32 CPU tensors without autograd it runs jtune's
 * CPU kernel (kernels/cpu/attention_decode.cpp) on the tensors' memory as they are (the KV cache's strided views, no
 * GQA expansion); otherwise LibTorch's scaled_dot_product_attention, the reference. Why: LibTorch's SDPA spent ~70 µs
 * per call at batch 1 and ~440 µs at batch 8 on this shape (14 query heads, 2 key/value heads, 48 keys) for a few
 * microseconds of arithmetic, 24 times per step (bench/RESULTS.md, "Issue 31, third pass").
 */
final class DecodeAttention {
    /** Above this many multiply-adds (B·H·S·hd) the (b, h) pairs are split across {@link SplitWorkers}. */
    static final long SPLIT_WORK = 1L << 20;

    private DecodeAttention() {}

    static Tensor apply(boolean kernelsOn, Tensor q, Tensor k, Tensor v, Tensor mask, double scale) {
        if (kernelsOn && fits(q, k, v, mask)) return kernel(q, k, v, mask, scale);
        return reference(q, k, v, mask, scale);
    }

    static Tensor reference(Tensor q, Tensor k, Tensor v, Tensor mask, double scale) {
        return torch.scaled_dot_product_attention(q, k, v, mask == null ? new TensorOptional() : new TensorOptional(mask), 0.0, false,
                new DoubleOptional(scale), q.size(1) != k.size(1));
    }

    static boolean fits(Tensor q, Tensor k, Tensor v, Tensor mask) {
        if (GradMode.is_enabled() || !CpuKernelLibrary.available()) return false;
        if (torch.is_autocast_enabled(torch.DeviceType.CPU)) return false;
        for (Tensor t : new Tensor[] {q, k, v}) {
            if (!t.is_cpu() || t.scalar_type().intern() != ScalarType.Float || t.dim() != 4 || t.stride(3) != 1 || t.requires_grad()) return false;
        }
        long b = q.size(0), h = q.size(1), kvh = k.size(1), s = k.size(2), hd = q.size(3);
        if (q.size(2) != 1 || kvh <= 0 || h % kvh != 0 || k.size(0) != b || v.size(0) != b || v.size(1) != kvh
                || v.size(2) != s || k.size(3) != hd || v.size(3) != hd || s == 0) return false;
        if (mask == null) return true;
        if (!mask.is_cpu() || mask.scalar_type().intern() != ScalarType.Bool || mask.size(-1) != s || (s > 1 && mask.stride(-1) != 1)) return false;
        if (mask.dim() == 2) return mask.size(0) == 1;                                          // (1, S): one query's row
        return mask.dim() == 4 && (mask.size(0) == 1 || mask.size(0) == b) && mask.size(1) == 1 && mask.size(2) == 1;
    }

    private static Tensor kernel(Tensor q, Tensor k, Tensor v, Tensor mask, double scale) {
        long b = q.size(0), h = q.size(1), kvh = k.size(1), s = k.size(2), hd = q.size(3);
        Tensor out = torch.empty(new long[] {b, h, 1, hd}, KernelArgs.opts(ScalarType.Float, q), new MemoryFormatOptional());
        long qa = q.data_ptr().address(), ka = k.data_ptr().address(), va = v.data_ptr().address(), oa = out.data_ptr().address();
        long qsb = q.stride(0), qsh = q.stride(1), ksb = k.stride(0), ksh = k.stride(1), kss = k.stride(2);
        long vsb = v.stride(0), vsh = v.stride(1), vss = v.stride(2);
        long ma = mask == null ? 0 : mask.data_ptr().address();
        long msb = mask == null || mask.dim() == 2 || mask.size(0) == 1 ? 0 : mask.stride(0);
        long pairs = b * h;
        SplitWorkers pool = SplitWorkers.shared();
        int tasks = b * h * s * hd < SPLIT_WORK ? 1 : (int) Math.min(pairs, 2L * pool.parts());
        float sc = (float) scale;
        pool.run(tasks, t -> {
            long p0 = pairs * t / tasks, p1 = pairs * (t + 1) / tasks;
            int st = CpuKernelNative.decodeAttention(CpuKernelNative.ISA_BEST, qa, qsb, qsh, ka, ksb, ksh, kss, va, vsb, vsh, vss,
                    ma, msb, oa, h * hd, hd, b, h, kvh, s, hd, sc, p0, p1);
            if (st != CpuKernelNative.OK) throw new IllegalStateException("CPU decode attention kernel failed with status " + st);
        });
        return out;
    }
}
