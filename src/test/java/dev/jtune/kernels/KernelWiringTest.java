package dev.jtune.kernels;

import org.bytedeco.javacpp.PointerScope;
import org.bytedeco.pytorch.Scalar;
import org.bytedeco.pytorch.Tensor;
import org.bytedeco.pytorch.global.torch;
import org.bytedeco.pytorch.global.torch.ScalarType;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;

import static org.junit.jupiter.api.Assertions.assertEquals;

/**
 * The kernel paths of {@link Ops} (preallocated outputs, in-place writes, the autograd hooks) driven on
 * the CPU by {@link EmulatedKernels}, which computes what each CUDA kernel computes: values and
 * gradients must equal the LibTorch reference paths. The forward runs in one PointerScope, the backward
 * after it closed and after a GC, as a trainer with per-step scopes may do.
 */
class KernelWiringTest {
    /** The kernel paths, run on the CPU by the emulated kernels. */
    static final Ops KERNELS = Ops.withBackend(EmulatedKernels.INSTANCE);
    /** The LibTorch paths. */
    static final Ops LIBTORCH = Ops.OFF;
    /** float32, where the two paths add in different orders (row reductions of up to 33 terms). */
    static final T.Tol F32 = T.Tol.of(ScalarType.Float).times(4);

    /** which: 0 = all inputs need grad, 1 = only the first, 2 = only the second. */
    @ParameterizedTest
    @ValueSource(ints = {0, 1, 2})
    void rmsNorm(int which) {
        torch.manual_seed(10 + which);
        Tensor x = T.randn(ScalarType.Float, "cpu", 3, 7, 24).mul(new Scalar(2)), w = T.randn(ScalarType.Float, "cpu", 24);
        Tensor up = T.randn(ScalarType.Float, "cpu", 3, 7, 24);
        Tensor x0 = T.leaf(x).set_requires_grad(which != 2), w0 = T.leaf(w).set_requires_grad(which != 1);
        Tensor want = RmsNorm.reference(x0, w0, 1e-5);
        want.mul(up).sum().backward();
        Tensor x1 = T.leaf(x).set_requires_grad(which != 2), w1 = T.leaf(w).set_requires_grad(which != 1);
        Tensor got;
        try (PointerScope s = new PointerScope()) {
            got = KERNELS.rmsNorm(x1, w1, 1e-5).mul(up).sum();
            got.retainReference();
        }
        System.gc();
        got.backward();
        assertEquals(want.mul(up).sum().item_double(), got.item_double(), 1e-5);
        if (which != 2) T.close(x1.grad(), x0.grad(), F32, "dx");
        if (which != 1) T.close(w1.grad(), w0.grad(), F32, "dw");
        assertEquals(0, AutogradBridge.pendingHooks());
    }

    @ParameterizedTest
    @ValueSource(ints = {0, 1})
    void ropeInPlaceOnAView(int batchCos) {
        torch.manual_seed(20);
        long b = 2, t = 5, h = 3, hd = 8;
        Tensor w = T.randn(ScalarType.Float, "cpu", h * hd, 6);
        Tensor in = T.randn(ScalarType.Float, "cpu", b, t, 6);
        Tensor cos = T.randn(ScalarType.Float, "cpu", batchCos == 1 ? b : 1, 1, t, hd);
        Tensor sin = T.randn(ScalarType.Float, "cpu", batchCos == 1 ? b : 1, 1, t, hd);
        Tensor up = T.randn(ScalarType.Float, "cpu", b, h, t, hd);
        // as the model: q = linear(x).view(B, T, H, hd).transpose(1, 2), a strided non-leaf
        Tensor w0 = T.leaf(w);
        Tensor want = RotaryEmbedding.reference(torch.linear(in, w0).view(b, t, h, hd).transpose(1, 2), cos, sin);
        want.mul(up).sum().backward();
        Tensor w1 = T.leaf(w);
        Tensor q = torch.linear(in, w1).view(b, t, h, hd).transpose(1, 2);
        Tensor got = KERNELS.rope(q, cos, sin);
        T.close(got, want, ScalarType.Float, "rope forward");
        T.close(q, want, ScalarType.Float, "rope works in place on q");
        got.mul(up).sum().backward();
        T.close(w1.grad(), w0.grad(), F32, "d weight through rope backward");
        // a leaf is not overwritten
        Tensor leaf = T.leaf(T.randn(ScalarType.Float, "cpu", b, h, t, hd)), copy = leaf.detach().clone();
        Tensor r = KERNELS.rope(leaf, cos, sin);
        r.sum().backward();
        T.close(leaf, copy, T.Tol.EXACT, "leaf untouched");
        Tensor l0 = T.leaf(copy);
        RotaryEmbedding.reference(l0, cos, sin).sum().backward();
        T.close(leaf.grad(), l0.grad(), ScalarType.Float, "leaf grad");
        assertEquals(0, AutogradBridge.pendingHooks());
    }

    @ParameterizedTest
    @ValueSource(ints = {0, 1, 2})
    void swiglu(int which) {
        torch.manual_seed(30 + which);
        Tensor gate = T.randn(ScalarType.Float, "cpu", 4, 9, 33).mul(new Scalar(3)), up = T.randn(ScalarType.Float, "cpu", 4, 9, 33);
        Tensor dy = T.randn(ScalarType.Float, "cpu", 4, 9, 33);
        Tensor g0 = T.leaf(gate).set_requires_grad(which != 2), u0 = T.leaf(up).set_requires_grad(which != 1);
        Tensor want = SwiGlu.reference(g0, u0);
        want.mul(dy).sum().backward();
        Tensor g1 = T.leaf(gate).set_requires_grad(which != 2), u1 = T.leaf(up).set_requires_grad(which != 1);
        Tensor got = KERNELS.swiglu(g1, u1);
        T.close(got, want, ScalarType.Float, "swiglu forward");
        got.mul(dy).sum().backward();
        if (which != 2) T.close(g1.grad(), g0.grad(), F32, "dgate");
        if (which != 1) T.close(u1.grad(), u0.grad(), F32, "dup");
        assertEquals(0, AutogradBridge.pendingHooks());
    }

    @ParameterizedTest
    @ValueSource(longs = {1, 7, 64})
    void crossEntropy(long chunk) {
        torch.manual_seed(40);
        long n = 29, dim = 12, v = 257;
        Tensor h = T.randn(ScalarType.Float, "cpu", n, dim), w = T.randn(ScalarType.Float, "cpu", v, dim);
        Tensor targets = torch.randint(v, new long[] {n}, T.opts(ScalarType.Long, "cpu"));
        targets.narrow(0, 3, 5).fill_(new Scalar(-100));
        Tensor h0 = T.leaf(h), w0 = T.leaf(w);
        Tensor want = LIBTORCH.crossEntropySum(h0, w0, targets, n);
        want.mul(new Scalar(0.25)).backward();
        Tensor h1 = T.leaf(h), w1 = T.leaf(w);
        ChunkedCrossEntropy.Result r = KERNELS.crossEntropy(h1, w1, targets, chunk);
        Tensor got = r.loss();
        assertEquals(Math.min(chunk, n) * v, r.peakLogitsElements());
        got.mul(new Scalar(0.25)).backward();
        assertEquals(want.item_double(), got.item_double(), 1e-5 * Math.abs(want.item_double()));
        T.close(h1.grad(), h0.grad(), F32, "d hidden");
        T.close(w1.grad(), w0.grad(), F32, "d weight");
    }
}
