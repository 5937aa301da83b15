package dev.jtune.kernels;

import org.bytedeco.javacpp.PointerScope;
import org.bytedeco.pytorch.Scalar;
import org.bytedeco.pytorch.Tensor;
import org.bytedeco.pytorch.global.torch;
import org.bytedeco.pytorch.global.torch.ScalarType;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.Arguments;
import org.junit.jupiter.params.provider.MethodSource;

import java.util.ArrayList;
import java.util.List;
import java.util.stream.Stream;

import static org.junit.jupiter.api.Assertions.assertEquals;

/**
 * The kernels' contract, run against a backend on a device: {@link KernelGpuTest} runs it against the CUDA kernels,
 * {@link EmulatedKernelContractTest} against {@link EmulatedKernels} (which model each kernel's roundings with LibTorch
 * ops) on the CPU in every CI run, so that the tolerances are proven before a GPU sees them.
 *
 * <p>Each kernel against the LibTorch reference on fresh random inputs, forward and backward, element by element
 * ({@code |got - want| <= atol + rtol·|want|}), with every output NaN-poisoned before the call so that an unwritten
 * element fails. The kernels compute in float32 whatever the storage dtype, so the references are computed in
 * float32 from the same (bf16-valued) inputs: a bf16 output then differs by its one final rounding (2^-8 relative,
 * within bf16's rtol 1.6e-2), float32 outputs by the order of operations (rtol 1e-5). Shapes include sizes that
 * are not multiples of any block size. Then the same through Ops (the autograd wiring on CUDA).
 * Every random seed is printed, so a failure can be replayed.
 */
@org.junit.jupiter.api.TestInstance(org.junit.jupiter.api.TestInstance.Lifecycle.PER_CLASS)   // shape lists per backend
abstract class KernelContract {
    KernelBackend K;
    String device;
    PointerScope scope;

    /** The backend under test and the device its tensors live on; skips when they cannot run here. */
    abstract KernelBackend backend();

    abstract String device();

    /** The op layer whose kernel paths run this backend. */
    abstract Ops kernelOps();

    @BeforeEach
    void setUp(org.junit.jupiter.api.TestInfo info) {
        K = backend();
        device = device();
        scope = new PointerScope();
        long seed = System.nanoTime();   // fresh inputs each run
        System.out.println(getClass().getSimpleName() + " " + info.getDisplayName() + ": torch.manual_seed(" + seed + ")");
        torch.manual_seed(seed);
    }

    @AfterEach
    void close() {
        if (scope != null) scope.close();
    }

    /**
     * Every shape in float32 and bf16; on a backend that is not {@link #large()}, shapes of more than 2^21 elements are
     * left out (the CPU emulation of a 12M-element SwiGLU or a 64 × 128,256 cross-entropy costs minutes on 2 cores and
     * proves no tolerance the smaller shapes do not).
     */
    Stream<Arguments> dtypes(long[]... shapes) {
        List<Arguments> out = new ArrayList<>();
        for (ScalarType dt : new ScalarType[] {ScalarType.Float, ScalarType.BFloat16}) {
            for (long[] s : shapes) {
                long n = 1;
                for (long d : s) n *= d;
                if (large() || n <= (1L << 21)) out.add(Arguments.of(dt, s));
            }
        }
        return out.stream();
    }

    /** Whether the largest shapes run (the GPU's); the CPU emulation runs the rest. */
    boolean large() {
        return true;
    }

    /** A kernel's output against a float32 reference: the dtype's one rounding, or float32's order of operations. */
    static T.Tol tol(ScalarType dt) {
        return dt == ScalarType.Float ? new T.Tol(1e-5, 1e-5) : T.Tol.of(ScalarType.BFloat16);
    }

    /** RoPE against transformers' formula in the same dtype: one ulp of the result (bf16 2^-8), float32's order of operations. */
    static T.Tol ropeTol(ScalarType dt) {
        return dt == ScalarType.Float ? new T.Tol(1e-5, 1e-6) : new T.Tol(0x1p-8, 1e-6);
    }

    /** The float32 reference's input: the same values, upcast, as a leaf. */
    static Tensor ref(Tensor t) {
        return T.leaf(t.to(ScalarType.Float));
    }

    static Tensor f32(Tensor t) {
        return t.to(ScalarType.Float);
    }

    static Tensor nan(Tensor like) {
        return torch.full_like(like, new Scalar(Double.NaN));
    }

    Tensor cuda(ScalarType dt, long... shape) {
        return T.randn(dt, device, shape);
    }

    Stream<Arguments> rmsShapes() {
        return dtypes(new long[] {1, 32}, new long[] {7, 100}, new long[] {513, 4096}, new long[] {3, 5120}, new long[] {1000, 128}, new long[] {2, 16384});
    }

    @ParameterizedTest
    @MethodSource("rmsShapes")
    void rmsNorm(ScalarType dt, long[] shape) {
        long rows = shape[0], dim = shape[1];
        Tensor x = cuda(dt, rows, dim).mul(new Scalar(3)), w = cuda(dt, dim), dy = cuda(dt, rows, dim);
        Tensor y = nan(x), rstd = torch.full(new long[] {rows}, new Scalar(Double.NaN), T.opts(ScalarType.Float, device));
        K.rmsNormForward(y, rstd, x, w, 1e-6);
        // forward in dt: transformers rounds the normalised value to dt before the weight, and so does the kernel
        T.close(y, RmsNorm.reference(x, w, 1e-6), tol(dt), "rmsnorm forward " + dt);
        // backward through the same graph in dt, as transformers runs it: the output gradient reaches the normalised
        // value as dy·w rounded to dt (a dt product), then float32 to dx. The kernel computes exactly that; against a
        // float32 graph (no rounding of dy·w) bf16 dx differed by up to 8% where dy·w - n·dot cancels
        Tensor x0 = T.leaf(x), w0 = T.leaf(w);
        RmsNorm.reference(x0, w0, 1e-6).backward(dy, new org.bytedeco.pytorch.BoolOptional(), false,
                new org.bytedeco.pytorch.TensorArrayRefOptional());
        Tensor dx = nan(x), dw = nan(w);
        K.rmsNormBackward(dx, dw, dy, x, w, rstd);
        T.close(dx, x0.grad(), tol(dt), "rmsnorm dx " + dt);
        // dw sums `rows` products: float32 sums in another order differ by ~1e-6 relative to the terms (|terms| ~ 1)
        T.close(dw, w0.grad(), new T.Tol(tol(dt).rtol(), 1e-5 * Math.sqrt(rows)), "rmsnorm dw " + dt);
    }

    Stream<Arguments> ropeShapes() {
        return dtypes(new long[] {1, 1, 1, 2}, new long[] {2, 3, 17, 64}, new long[] {1, 32, 333, 128}, new long[] {3, 5, 7, 96});
    }

    @ParameterizedTest
    @MethodSource("ropeShapes")
    void rope(ScalarType dt, long[] s) {
        long b = s[0], h = s[1], t = s[2], hd = s[3];
        Tensor q = cuda(dt, b, t, h, hd).transpose(1, 2);            // strided, as the model's q
        Tensor cos = cuda(dt, b, 1, t, hd), sin = cuda(dt, b, 1, t, hd), dy = cuda(dt, b, h, t, hd);
        Tensor out = nan(q.contiguous());
        K.rope(out, q, cos.select(1, 0), sin.select(1, 0), false);
        // the reference is transformers' formula in dt: each product rounded to dt, then the sum rounded once, as the
        // kernel computes it (round_to(x1·c1) - round_to(x2·s1), stored). A float32 reference rounded once is not what
        // a correct kernel computes: where the two products cancel, their roundings are far more than the result's
        // one ulp (bf16: 3% of elements off by up to 10% of the value). So: one ulp of the result, and for float32 the
        // order of operations
        Tensor q0 = T.leaf(q);
        Tensor want = RotaryEmbedding.reference(q0, cos, sin);
        T.close(out, want, ropeTol(dt), "rope forward " + dt);
        want.backward(dy, new org.bytedeco.pytorch.BoolOptional(), false, new org.bytedeco.pytorch.TensorArrayRefOptional());
        Tensor dx = nan(dy);
        K.rope(dx, dy, cos.select(1, 0), sin.select(1, 0), true);
        T.close(dx, q0.grad(), ropeTol(dt), "rope backward " + dt);
        // in place, cos/sin broadcast over the batch
        Tensor c1 = cos.narrow(0, 0, 1), s1 = sin.narrow(0, 0, 1);
        Tensor x = q.clone(), want1 = RotaryEmbedding.reference(q, c1, s1);
        K.rope(x, x, c1.select(1, 0), s1.select(1, 0), false);
        T.close(x, want1, ropeTol(dt), "rope in place " + dt);
    }

    Stream<Arguments> swigluShapes() {
        return dtypes(new long[] {1}, new long[] {1000}, new long[] {4 * 4096 * 14336 / 64}, new long[] {12345679});
    }

    @ParameterizedTest
    @MethodSource("swigluShapes")
    void swiglu(ScalarType dt, long[] s) {
        Tensor gate = cuda(dt, s[0]).mul(new Scalar(4)), up = cuda(dt, s[0]), dy = cuda(dt, s[0]);
        Tensor y = nan(gate);
        K.swigluForward(y, gate, up);
        Tensor g0 = ref(gate), u0 = ref(up);
        Tensor want = SwiGlu.reference(g0, u0);
        T.close(y, want, tol(dt), "swiglu forward " + dt);
        want.backward(f32(dy), new org.bytedeco.pytorch.BoolOptional(), false, new org.bytedeco.pytorch.TensorArrayRefOptional());
        Tensor dg = nan(gate), du = nan(up);
        K.swigluBackward(dg, du, dy, gate, up);
        T.close(dg, g0.grad(), tol(dt), "swiglu dgate " + dt);
        T.close(du, u0.grad(), tol(dt), "swiglu dup " + dt);
    }

    Stream<Arguments> ceShapes() {
        return dtypes(new long[] {1, 5}, new long[] {7, 1000}, new long[] {33, 32003}, new long[] {64, 128256}, new long[] {3, 151936});
    }

    @ParameterizedTest
    @MethodSource("ceShapes")
    void crossEntropy(ScalarType dt, long[] s) {
        long rows = s[0], v = s[1];
        Tensor logits = cuda(dt, rows, v).mul(new Scalar(4));
        Tensor targets = torch.randint(v, new long[] {rows}, T.opts(ScalarType.Long, device));
        if (rows > 2) targets.narrow(0, 1, 1).fill_(new Scalar(-100));
        Tensor z = logits.to(ScalarType.Float);
        Tensor valid = targets.ne(new Scalar(-100));
        Tensor safe = torch.where(valid, targets, torch.zeros_like(targets));
        Tensor wantLoss = torch.logsumexp(z, new long[] {-1}, false).sub(z.gather(1, safe.unsqueeze(1)).squeeze(1))
                .mul(valid.to(ScalarType.Float));
        Tensor wantGrad = torch.softmax(z, -1, new org.bytedeco.pytorch.ScalarTypeOptional())
                .sub(torch.one_hot(safe, v).to(ScalarType.Float)).mul(valid.to(ScalarType.Float).unsqueeze(1)).mul(new Scalar(0.5));
        Tensor loss = torch.full(new long[] {rows}, new Scalar(Double.NaN), T.opts(ScalarType.Float, device));
        Tensor work = logits.clone();
        K.crossEntropy(loss, work, targets, -100, 0.5);
        // the loss is float32 either way: log-sum-exp minus the target logit (|lse| ~ 20: atol 1e-4)
        T.Tol lossTol = new T.Tol(1e-5, 1e-4);
        T.close(loss, wantLoss, lossTol, "ce loss " + dt);
        // gradient entries are ~1/V (V up to 151,936): an atol far below that, so each one is checked relatively
        T.close(work, wantGrad, new T.Tol(tol(dt).rtol(), 1e-8), "ce grad " + dt);
        // scale 0: loss only, logits untouched
        Tensor keep = logits.clone();
        K.crossEntropy(loss.fill_(new Scalar(Double.NaN)), keep, targets, -100, 0.0);
        T.close(loss, wantLoss, lossTol, "ce loss, no grad " + dt);
        T.close(keep, logits, T.Tol.EXACT, "ce logits untouched without grad");
    }

    /** The op layer on CUDA: kernel paths (values and autograd gradients) equal the same calls with kernels off. */
    @ParameterizedTest
    @MethodSource("opsCases")
    void opsKernelPathsEqualLibTorchPaths(ScalarType dt) {
        Tensor x = cuda(dt, 2, 9, 200), w = cuda(dt, 200);
        Tensor gate = cuda(dt, 2, 9, 300), up = cuda(dt, 2, 9, 300);
        Tensor q = cuda(dt, 2, 9, 3, 64), cos = cuda(dt, 2, 1, 9, 64), sin = cuda(dt, 2, 1, 9, 64);
        Tensor hid = cuda(dt, 37, 200), head = cuda(dt, 5003, 200).mul(new Scalar(0.1));
        Tensor targets = torch.randint(5003, new long[] {37}, T.opts(ScalarType.Long, device));
        targets.narrow(0, 4, 3).fill_(new Scalar(-100));
        Tensor[] grads = new Tensor[2 * 7];
        double[] losses = new double[2];
        for (int pass = 0; pass < 2; pass++) {
            Ops ops = pass == 0 ? Ops.OFF : kernelOps();
            Tensor[] in = {T.leaf(x), T.leaf(w), T.leaf(gate), T.leaf(up), T.leaf(q), T.leaf(hid), T.leaf(head)};
            Tensor qv = in[4].mul(new Scalar(1)).transpose(1, 2);           // non-leaf, strided: rope works in place
            Tensor a = ops.rmsNorm(in[0], in[1], 1e-5).to(ScalarType.Float).sum();
            Tensor b = ops.swiglu(in[2], in[3]).to(ScalarType.Float).pow(new Scalar(2)).sum();
            Tensor c = ops.rope(qv, cos, sin).to(ScalarType.Float).pow(new Scalar(2)).sum();
            Tensor d = ops.crossEntropySum(in[5], in[6], targets, 16);
            Tensor total = a.add(b).add(c).add(d);
            losses[pass] = total.item_double();
            total.backward();
            for (int i = 0; i < 7; i++) grads[pass * 7 + i] = in[i].grad();
        }
        assertEquals(losses[0], losses[1], (dt == ScalarType.Float ? 1e-5 : 1e-2) * Math.abs(losses[0]), "total");
        String[] names = {"x", "w", "gate", "up", "q", "hidden", "head"};
        for (int i = 0; i < 7; i++) {
            // both sides are the op layer in dt, but the LibTorch paths round their intermediates to dt (the kernels do
            // not): where terms cancel, the difference is a few dt ulps of the terms, not of the result, so atol is
            // set from the gradient's own scale (its RMS): 2^-6 of it in bf16, 1e-5 in float32
            double rms = grads[i].to(ScalarType.Float).pow(new Scalar(2)).mean().sqrt().item_double();
            T.Tol t = dt == ScalarType.Float ? new T.Tol(1e-4, 1e-5 * rms) : new T.Tol(3e-2, rms / 64);
            T.close(grads[7 + i], grads[i], t, "d " + names[i] + " " + dt);
        }
    }

    /** A short bf16 LoRA training on CUDA: kernels auto and off give the same loss curve (bf16: 2% per step). */
    @org.junit.jupiter.api.Test
    void loraTrainingLossCurveKernelsOnAndOff() {
        var d = new org.bytedeco.pytorch.Device(device);
        double[] off = KernelTrainingTest.lossCurve(d, dev.jtune.config.Precision.BF16, false, null, 20);
        double[] on = KernelTrainingTest.lossCurve(d, dev.jtune.config.Precision.BF16, true, K instanceof CudaKernels ? null : K, 20);
        KernelTrainingTest.assertSameCurve(off, on, 2e-2);
    }

    Stream<ScalarType> opsCases() {
        return Stream.of(ScalarType.Float, ScalarType.BFloat16);
    }
}
