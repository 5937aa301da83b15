package dev.jtune.kernels;

import org.bytedeco.javacpp.PointerScope;
import org.bytedeco.pytorch.DoubleOptional;
import org.bytedeco.pytorch.NoGradGuard;
import org.bytedeco.pytorch.Tensor;
import org.bytedeco.pytorch.TensorOptional;
import org.bytedeco.pytorch.global.torch;
import org.bytedeco.pytorch.global.torch.ScalarType;
import org.junit.jupiter.api.Test;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assumptions.assumeTrue;

/**
 * The decode-step attention kernel (kernels/cpu/attention_decode.cpp) against LibTorch's scaled_dot_product_attention
 * computed in float64: grouped-query heads, the KV cache's strided views, key masks of every accepted shape, head
 * sizes with vector tails, and contexts long enough to be split across threads; and the cases it must leave to
 * LibTorch.
 */
class DecodeAttentionTest {
    @Test
    void equalsSdpaInFloat64() {
        assumeTrue(CpuKernelLibrary.available(), CpuKernelLibrary.reason());
        try (PointerScope scope = new PointerScope(); NoGradGuard ng = new NoGradGuard()) {
            long[][] shapes = {   // B, H, KV, S, hd
                {1, 4, 4, 1, 8}, {1, 14, 2, 48, 64}, {3, 8, 1, 7, 80}, {2, 6, 3, 300, 17}, {2, 8, 2, 1100, 64},
            };
            for (long[] sh : shapes) {
                long b = sh[0], h = sh[1], kvh = sh[2], s = sh[3], hd = sh[4];
                Tensor q = T.randn(ScalarType.Float, "cpu", b, 1, h, hd).transpose(1, 2);             // (B, H, 1, hd), as the model makes it
                Tensor kCache = T.randn(ScalarType.Float, "cpu", b, kvh, s + 5, hd), vCache = T.randn(ScalarType.Float, "cpu", b, kvh, s + 5, hd);
                Tensor k = kCache.narrow(2, 0, s), v = vCache.narrow(2, 0, s);                     // the cache's views
                Tensor rowMask = torch.rand(b, 1, 1, s).gt(new org.bytedeco.pytorch.Scalar(0.3));
                rowMask.select(3, s - 1).fill_(new org.bytedeco.pytorch.Scalar(1.0));            // the token itself is always visible
                Tensor[] masks = {null, rowMask, rowMask.narrow(0, 0, 1), rowMask.select(0, 0).select(0, 0)};   // (B,1,1,S), (1,1,1,S), (1,S)
                for (Tensor mask : masks) {
                    String what = java.util.Arrays.toString(sh) + ", mask " + (mask == null ? "none" : java.util.Arrays.toString(mask.sizes().vec().get()));
                    assertTrue(DecodeAttention.fits(q, k, v, mask), what);
                    Tensor got = DecodeAttention.apply(true, q, k, v, mask, 1 / Math.sqrt(hd));
                    Tensor want = reference64(q, k, v, mask, 1 / Math.sqrt(hd));
                    assertArrayEquals(want.sizes().vec().get(), got.sizes().vec().get(), what);
                    // a convex combination of v's rows: float32's error is a few ulps of max |v|
                    double err = got.to(ScalarType.Double).sub(want).abs().max().item_double();
                    assertTrue(err < 2e-5, what + ": max error " + err);
                }
            }
        }
    }

    @Test
    void everyInstructionSetHereAgrees() {
        assumeTrue(CpuKernelLibrary.available(), CpuKernelLibrary.reason());
        try (PointerScope scope = new PointerScope(); NoGradGuard ng = new NoGradGuard()) {
            long b = 2, h = 6, kvh = 2, s = 33, hd = 24;
            Tensor q = T.randn(ScalarType.Float, "cpu", b, h, 1, hd), k = T.randn(ScalarType.Float, "cpu", b, kvh, s, hd), v = T.randn(ScalarType.Float, "cpu", b, kvh, s, hd);
            Tensor want = reference64(q, k, v, null, 0.2);
            int ran = 0;
            for (int isa : new int[] {CpuKernelNative.ISA_AVX512, CpuKernelNative.ISA_GENERIC}) {
                Tensor out = torch.empty(new long[] {b, h, 1, hd}, T.opts(ScalarType.Float, "cpu"), new org.bytedeco.pytorch.MemoryFormatOptional());
                int st = CpuKernelNative.decodeAttention(isa, q.data_ptr().address(), q.stride(0), q.stride(1), k.data_ptr().address(), k.stride(0), k.stride(1), k.stride(2),
                        v.data_ptr().address(), v.stride(0), v.stride(1), v.stride(2), 0, 0, out.data_ptr().address(), h * hd, hd, b, h, kvh, s, hd, 0.2f, 0, b * h);
                if (st == CpuKernelNative.ERR_ISA) continue;
                assertEquals(CpuKernelNative.OK, st);
                ran++;
                assertTrue(out.to(ScalarType.Double).sub(want).abs().max().item_double() < 2e-5, "isa " + isa);
            }
            assertTrue(ran >= 1);
            assertEquals(CpuKernelNative.ERR_ISA, CpuKernelNative.decodeAttention(CpuKernelNative.ISA_AVX2, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 1, 1f, 0, 0));
            assertEquals(CpuKernelNative.ERR_ARG, CpuKernelNative.decodeAttention(CpuKernelNative.ISA_BEST, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 3, 2, 1, 1, 1f, 0, 0),
                    "3 query heads over 2 key/value heads");
        }
    }

    @Test
    void aRowWithNoVisibleKeyGetsZeros() {
        assumeTrue(CpuKernelLibrary.available(), CpuKernelLibrary.reason());
        try (PointerScope scope = new PointerScope(); NoGradGuard ng = new NoGradGuard()) {
            Tensor q = T.randn(ScalarType.Float, "cpu", 2, 2, 1, 8), k = T.randn(ScalarType.Float, "cpu", 2, 2, 5, 8), v = T.randn(ScalarType.Float, "cpu", 2, 2, 5, 8);
            Tensor mask = torch.ones(new long[] {2, 1, 1, 5}, T.opts(ScalarType.Bool, "cpu"));
            mask.select(0, 1).fill_(new org.bytedeco.pytorch.Scalar(0.0));
            Tensor got = DecodeAttention.apply(true, q, k, v, mask, 0.5);
            assertEquals(0.0, got.select(0, 1).abs().max().item_double());
            assertTrue(got.select(0, 0).sub(reference64(q.narrow(0, 0, 1), k.narrow(0, 0, 1), v.narrow(0, 0, 1), null, 0.5).to(ScalarType.Float).select(0, 0)).abs().max().item_double() < 2e-5);
        }
    }

    @Test
    void leavesToLibTorchWhatItDoesNotTake() {
        try (PointerScope scope = new PointerScope()) {
            Tensor q = T.randn(ScalarType.Float, "cpu", 1, 4, 1, 8), k = T.randn(ScalarType.Float, "cpu", 1, 2, 6, 8), v = T.randn(ScalarType.Float, "cpu", 1, 2, 6, 8);
            assertFalse(DecodeAttention.fits(q, k, v, null), "grad mode on");
            try (NoGradGuard ng = new NoGradGuard()) {
                assertEquals(CpuKernelLibrary.available(), DecodeAttention.fits(q, k, v, null));
                Tensor q2 = T.randn(ScalarType.Float, "cpu", 1, 4, 2, 8);
                assertFalse(DecodeAttention.fits(q2, k, v, null), "two queries");
                assertFalse(DecodeAttention.fits(q.to(ScalarType.BFloat16), k.to(ScalarType.BFloat16), v.to(ScalarType.BFloat16), null), "bf16");
                assertFalse(DecodeAttention.fits(q, k, v, torch.ones(new long[] {2, 6}, T.opts(ScalarType.Bool, "cpu"))), "a (2, S) mask is not one query's");
                assertFalse(DecodeAttention.fits(q, k, v, torch.zeros(new long[] {1, 1, 1, 6}, T.opts(ScalarType.Float, "cpu"))), "an additive float mask");
                // kernels off: exactly LibTorch's SDPA
                Tensor want = torch.scaled_dot_product_attention(q, k, v, new TensorOptional(), 0.0, false, new DoubleOptional(0.3), true);
                assertTrue(torch.equal(want, Ops.OFF.oneQueryAttention(q, k, v, null, 0.3)));
            }
        }
    }

    /** transformers' repeat_kv: (B, KV, S, hd) -> (B, KV·rep, S, hd), each key/value head repeated for its query heads. */
    private static Tensor repeatKv(Tensor x, long rep) {
        long b = x.size(0), kvh = x.size(1), s = x.size(2), hd = x.size(3);
        return x.unsqueeze(2).expand(b, kvh, rep, s, hd).reshape(b, kvh * rep, s, hd);
    }

    /** LibTorch's SDPA in float64 (GQA by repeating each key/value head for its query heads, as transformers does). */
    private static Tensor reference64(Tensor q, Tensor k, Tensor v, Tensor mask, double scale) {
        Tensor kd = repeatKv(k.to(ScalarType.Double), q.size(1) / k.size(1)), vd = repeatKv(v.to(ScalarType.Double), q.size(1) / k.size(1));
        return torch.scaled_dot_product_attention(q.to(ScalarType.Double), kd, vd, mask == null ? new TensorOptional() : new TensorOptional(mask),
                0.0, false, new DoubleOptional(scale), false);
    }
}
