package dev.jtune.kernels;

import dev.jtune.model.CausalLM;
import dev.jtune.model.ModelLoader;
import dev.jtune.train.step.CausalLmLoss;
import org.bytedeco.javacpp.PointerScope;
import org.bytedeco.pytorch.Device;
import org.bytedeco.pytorch.Scalar;
import org.bytedeco.pytorch.ScalarTypeOptional;
import org.bytedeco.pytorch.Tensor;
import org.bytedeco.pytorch.TensorVector;
import org.bytedeco.pytorch.global.torch;
import org.bytedeco.pytorch.global.torch.ScalarType;
import org.junit.jupiter.api.Test;

import java.nio.file.Path;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * The op layer's LibTorch paths (what CPU runs) against the formulas in float64 and the loss's full-logits code,
 * element by element with torch.testing.assert_close's tolerances for the dtype.
 */
class OpsReferenceTest {
    static final Path LLAMA = Path.of("src/test/resources/models/llama-tiny");
    /** What a CPU run with training.kernels: auto uses (the LibTorch paths: the tensors are not on CUDA). */
    static final Ops OPS = Ops.AUTO;

    /**
     * Under bf16 autocast both sides multiply bf16-rounded operands and round the products differently (chunks vs
     * one product): each gradient element sums 29 (d weight) or 513 (d hidden) products, and where they cancel the
     * error is a few bf16 ulps (2^-8) of the largest term, not of the result. The largest terms are a target's
     * (p - 1) times a hidden value or weight, |terms| up to ~3: atol 1e-2 on top of bf16's rtol.
     */
    static final T.Tol BF16_SUMS = new T.Tol(1.6e-2, 1e-2);

    private static Tensor f64(Tensor t) {
        return t.detach().to(ScalarType.Double);
    }

    /**
     * transformers' LlamaRMSNorm written out in float64: x * rsqrt(mean(x^2) + eps), rounded to the input dtype
     * where the reference rounds (before the weight), then times the weight. The model calls Ops.rmsNorm, so the
     * reference here is the formula, not the model's code; the model's logits are checked against an
     * independent float64 transcription of transformers in ReferenceForwardTest.
     */
    @Test
    void rmsNormEqualsTheFormula() {
        try (PointerScope s = new PointerScope()) {
            torch.manual_seed(1);
            Tensor w = T.randn(ScalarType.Float, "cpu", 32);
            for (ScalarType dt : new ScalarType[] {ScalarType.Float, ScalarType.BFloat16}) {
                Tensor x = T.randn(dt, "cpu", 3, 5, 32).mul(new Scalar(3));
                Tensor xd = f64(x);
                Tensor rstd = xd.mul(xd).mean(new long[] {-1}, true, new ScalarTypeOptional()).add(new Scalar(1e-6)).rsqrt();
                Tensor want = xd.mul(rstd).to(dt).to(ScalarType.Double).mul(f64(w.to(dt)));
                Tensor got = OPS.rmsNorm(x, w.to(dt), 1e-6);
                assertEquals(dt, got.scalar_type().intern(), "output dtype");
                // bf16: one rounding of the product (half an ulp, 2^-9 relative)
                T.close(got, want, dt, "rmsNorm " + dt);
            }
        }
    }

    /** Rotate-half RoPE written per half in float64: out1 = x1 cos1 - x2 sin1, out2 = x2 cos2 + x1 sin2. */
    @Test
    void ropeEqualsTheFormula() {
        try (PointerScope s = new PointerScope()) {
            torch.manual_seed(2);
            long half = 4;
            Tensor q = T.randn(ScalarType.Float, "cpu", 2, 7, 4, 2 * half).transpose(1, 2);   // (B, H, T, hd), strided as in the model
            Tensor cos = T.randn(ScalarType.Float, "cpu", 2, 1, 7, 2 * half), sin = T.randn(ScalarType.Float, "cpu", 2, 1, 7, 2 * half);
            Tensor x1 = f64(q).narrow(-1, 0, half), x2 = f64(q).narrow(-1, half, half);
            Tensor c = f64(cos), sn = f64(sin);
            Tensor o1 = x1.mul(c.narrow(-1, 0, half)).sub(x2.mul(sn.narrow(-1, 0, half)));
            Tensor o2 = x2.mul(c.narrow(-1, half, half)).add(x1.mul(sn.narrow(-1, half, half)));
            Tensor want = torch.cat(new TensorVector(o1, o2), -1);
            T.close(OPS.rope(q, cos, sin), want, ScalarType.Float, "rope");
        }
    }

    /** silu(g) * u = g * sigmoid(g) * u, in float64. */
    @Test
    void swigluEqualsTheFormula() {
        try (PointerScope s = new PointerScope()) {
            torch.manual_seed(3);
            Tensor gate = T.randn(ScalarType.Float, "cpu", 3, 5, 64), up = T.randn(ScalarType.Float, "cpu", 3, 5, 64);
            Tensor g = f64(gate);
            Tensor want = g.mul(torch.sigmoid(g)).mul(f64(up));
            T.close(OPS.swiglu(gate, up), want, ScalarType.Float, "swiglu");
        }
    }

    /** The chunked cross-entropy equals the plain full-logits loss (CausalLmLoss.sum) on real hidden states, value and gradients. */
    @Test
    void crossEntropyEqualsTheLossCodeValueAndGradient() {
        try (CausalLM m = ModelLoader.load(LLAMA, ScalarType.Float, new Device("cpu")); PointerScope s = new PointerScope()) {
            long[][] ids = {{5, 9, 17, 33, 2, 8, 90, 1}, {7, 7, 64, 3, 120, 44, 0, 0}};
            long[][] labels = {{-100, -100, -100, 33, 2, 8, 90, 1}, {-100, 7, 64, 3, 120, 44, -100, -100}};
            Tensor x = dev.jtune.util.Tensors.longs(ids), y = dev.jtune.util.Tensors.longs(labels);
            Tensor hidden0;
            try (org.bytedeco.pytorch.NoGradGuard ng = new org.bytedeco.pytorch.NoGradGuard()) {
                hidden0 = m.hidden(x, null, null, null);
            }
            Tensor lmHead = m.parameters().get("lm_head.weight");
            // reference: the loss code, with gradients to the hidden states and to lm_head
            Tensor h1 = T.leaf(hidden0), w1 = T.leaf(lmHead);
            Tensor want = CausalLmLoss.sum(torch.linear(h1, w1), y);   // (B, T, V) logits: no op layer, no chunks
            want.backward();
            // op layer: (N, D) rows with the shifted targets, chunk 3 over N = 14
            long t = ids[0].length, d = hidden0.size(2);
            Tensor h2 = T.leaf(hidden0), w2 = T.leaf(lmHead);
            Tensor rows = h2.narrow(1, 0, t - 1).reshape(-1, d);
            Tensor targets = y.narrow(1, 1, t - 1).reshape(-1);
            ChunkedCrossEntropy.Result r = OPS.crossEntropy(rows, w2, targets, 3);
            Tensor got = r.loss();
            got.backward();
            assertEquals(want.item_double(), got.item_double(), 1e-6 * Math.abs(want.item_double()));
            assertEquals(3L * lmHead.size(0), r.peakLogitsElements(), "peak logits: one chunk");
            T.close(h2.grad(), h1.grad(), ScalarType.Float, "d hidden");
            T.close(w2.grad(), w1.grad(), ScalarType.Float, "d lm_head");
        }
    }

    @Test
    void chunkedEqualsUnchunkedAndPeakIsOneChunk() {
        try (PointerScope s = new PointerScope()) {
            torch.manual_seed(4);
            long n = 37, dim = 16, v = 301;
            Tensor h = T.randn(ScalarType.Float, "cpu", n, dim), w = T.randn(ScalarType.Float, "cpu", v, dim).mul(new org.bytedeco.pytorch.Scalar(0.3));
            Tensor targets = torch.randint(v, new long[] {n}, T.opts(ScalarType.Long, "cpu"));
            targets.narrow(0, 5, 4).fill_(new org.bytedeco.pytorch.Scalar(-100));
            Tensor h1 = T.leaf(h), w1 = T.leaf(w);
            ChunkedCrossEntropy.Result fullResult = OPS.crossEntropy(h1, w1, targets, n);
            Tensor full = fullResult.loss();
            assertEquals(n * v, fullResult.peakLogitsElements());
            full.backward();
            // the plain composition, unchunked
            Tensor h0 = T.leaf(h), w0 = T.leaf(w);
            Tensor plain = torch.nll_loss(torch.log_softmax(torch.linear(h0, w0), -1), targets,
                    new org.bytedeco.pytorch.TensorOptional(), 2, -100);
            plain.backward();
            assertEquals(plain.item_double(), full.item_double(), 1e-6 * Math.abs(plain.item_double()));
            for (long chunk : new long[] {1, 5, 16}) {
                Tensor h2 = T.leaf(h), w2 = T.leaf(w);
                ChunkedCrossEntropy.Result r = OPS.crossEntropy(h2, w2, targets, chunk);
                Tensor c = r.loss();
                assertEquals(chunk * v, r.peakLogitsElements(), "peak logits elements, chunk " + chunk);
                c.backward();
                assertEquals(plain.item_double(), c.item_double(), 1e-6 * Math.abs(plain.item_double()), "chunk " + chunk);
                T.close(h2.grad(), h0.grad(), ScalarType.Float, "d hidden, chunk " + chunk);
                T.close(w2.grad(), w0.grad(), ScalarType.Float, "d weight, chunk " + chunk);
            }
            // a frozen head (LoRA): only the hidden states get a gradient
            Tensor h3 = T.leaf(h);
            OPS.crossEntropySum(h3, w, targets, 8).mul(new org.bytedeco.pytorch.Scalar(0.5)).backward();
            T.close(h3.grad(), h0.grad().mul(new org.bytedeco.pytorch.Scalar(0.5)), ScalarType.Float, "d hidden, frozen head, scaled");
        }
    }

    /**
     * Under bf16 autocast with float32 master weights (full fine-tuning in bf16): the projection runs in bf16 as
     * autocast would run it, the gradient reaches the float32 weight in float32; against autograd through the plain
     * composition under the same autocast.
     */
    @Test
    void crossEntropyUnderAutocastWithFloat32MasterWeights() {
        try (PointerScope s = new PointerScope()) {
            torch.manual_seed(5);
            long n = 29, dim = 32, v = 513;
            Tensor h = T.randn(ScalarType.Float, "cpu", n, dim), w = T.randn(ScalarType.Float, "cpu", v, dim).mul(new Scalar(0.2));
            Tensor targets = torch.randint(v, new long[] {n}, T.opts(ScalarType.Long, "cpu"));
            Tensor h0 = T.leaf(h), w0 = T.leaf(w), h1 = T.leaf(h), w1 = T.leaf(w);
            Tensor plain, got;
            try (dev.jtune.train.step.Autocast a = dev.jtune.train.step.Autocast.enter(dev.jtune.config.Precision.BF16, new Device("cpu"))) {
                plain = torch.nll_loss(torch.log_softmax(torch.linear(h0, w0).to(ScalarType.Float), -1), targets,
                        new org.bytedeco.pytorch.TensorOptional(), 2, -100);
                got = OPS.crossEntropySum(h1, w1, targets, 8);
            }
            plain.backward();
            got.backward();
            assertEquals(plain.item_double(), got.item_double(), 1e-4 * Math.abs(plain.item_double()));
            assertEquals(ScalarType.Float, w1.grad().scalar_type().intern());
            T.close(w1.grad(), w0.grad(), BF16_SUMS, "d weight (float32 master), bf16 products");
            T.close(h1.grad(), h0.grad(), BF16_SUMS, "d hidden, bf16 products");
        }
    }

    /**
     * The memory the chunking promises, measured: the process's peak RSS (VmHWM, reset through
     * /proc/self/clear_refs) while the loss and gradients of 8192 tokens over a 50,257-token vocabulary are
     * computed. Full float32 logits would be 1.6 GB (and log_softmax as much again); the chunks (4M logits, as
     * the trainer uses on the CPU) must add well under that. Skipped where the kernel does not allow the reset.
     */
    @Test
    void crossEntropyPeakMemoryIsAChunkNotAllTheLogits() throws Exception {
        java.nio.file.Path clear = java.nio.file.Path.of("/proc/self/clear_refs");
        org.junit.jupiter.api.Assumptions.assumeTrue(java.nio.file.Files.isWritable(clear), "no /proc/self/clear_refs");
        try (PointerScope s = new PointerScope()) {
            torch.manual_seed(6);
            long n = 8192, dim = 64, v = 50257;
            Tensor h = T.leaf(T.randn(ScalarType.Float, "cpu", n, dim));
            Tensor w = T.leaf(T.randn(ScalarType.Float, "cpu", v, dim).mul(new Scalar(0.1)));
            Tensor targets = torch.randint(v, new long[] {n}, T.opts(ScalarType.Long, "cpu"));
            long chunk = CausalLmLoss.chunkRows(n, v, dim, false);
            System.gc();
            java.nio.file.Files.writeString(clear, "5");                    // peak RSS := current RSS
            long before = vmKb("VmHWM");
            OPS.crossEntropySum(h, w, targets, chunk).backward();
            long grownMb = (vmKb("VmHWM") - before) / 1024;
            long fullLogitsMb = n * v * 4 / (1 << 20);
            assertTrue(h.grad().defined() && w.grad().defined());
            System.out.println("crossEntropySum, 8192 x 50257: peak RSS grew " + grownMb + " MiB");
            assertTrue(grownMb < fullLogitsMb / 4, "peak RSS grew " + grownMb + " MiB; full logits are " + fullLogitsMb + " MiB");
        }
    }

    private static long vmKb(String field) throws java.io.IOException {
        for (String line : java.nio.file.Files.readAllLines(java.nio.file.Path.of("/proc/self/status"))) {
            if (line.startsWith(field + ":")) return Long.parseLong(line.replaceAll("[^0-9]", ""));
        }
        throw new IllegalStateException(field + " not in /proc/self/status");
    }

    @Test
    void modeAndDescribe() {
        Ops off = Ops.of(KernelMode.parse("off"));
        assertEquals(KernelMode.OFF, off.mode());
        for (boolean cuda : new boolean[] {false, true}) {
            assertTrue(off.paths(cuda).values().stream().allMatch(p -> p.startsWith("LibTorch (kernels: off)")), off.describe(cuda));
        }
        Ops auto = Ops.of(KernelMode.parse("auto"));
        assertEquals(KernelMode.AUTO, auto.mode());
        assertEquals(java.util.List.of("linear", "oneQueryAttention", "rmsNorm", "rope", "swiglu", "crossEntropySum", "dequantize4bit"), java.util.List.copyOf(auto.paths(false).keySet()));
        assertTrue(auto.paths(false).entrySet().stream().filter(e -> !e.getKey().equals("linear") && !e.getKey().equals("oneQueryAttention")).allMatch(e -> e.getValue().startsWith("LibTorch (CPU tensors)")), auto.describe(false));
        assertEquals(CpuKernelLibrary.available(), auto.paths(false).get("linear").startsWith("jtune CPU kernel"), auto.describe(false));
        String gpu = auto.describe(true);
        if (KernelLibrary.available()) {
            assertTrue(auto.paths(true).values().stream().allMatch(p -> p.startsWith("CUDA kernel")), gpu);
        } else {
            assertTrue(gpu.contains("unavailable: " + KernelLibrary.reason()), gpu);
            assertTrue(auto.paths(true).values().stream().allMatch(p -> p.startsWith("LibTorch (CUDA kernels unavailable)")), gpu);
        }
        for (String op : auto.paths(true).keySet()) assertTrue(gpu.contains("\n  " + op), gpu);
        org.junit.jupiter.api.Assertions.assertThrows(IllegalArgumentException.class, () -> KernelMode.parse("on"));
        // the policy is a value: two policies coexist, and neither changes the other
        assertTrue(off.describe(false).startsWith("kernels: off"), off.describe(false));
        assertTrue(auto.describe(false).startsWith("kernels: auto"), auto.describe(false));
    }
}
