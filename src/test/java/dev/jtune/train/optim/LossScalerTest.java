package dev.jtune.train.optim;

import dev.jtune.util.Tensors;
import org.bytedeco.javacpp.PointerScope;
import org.bytedeco.pytorch.Device;
import org.bytedeco.pytorch.Generator;
import org.bytedeco.pytorch.GeneratorOptional;
import org.bytedeco.pytorch.Scalar;
import org.bytedeco.pytorch.Tensor;
import org.bytedeco.pytorch.global.torch;
import org.bytedeco.pytorch.global.torch.DeviceType;
import org.bytedeco.pytorch.global.torch.ScalarType;
import org.junit.jupiter.api.Test;

import java.util.List;
import java.util.Map;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertSame;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

class LossScalerTest {
    /** Skipped steps per scaler, counted here: the run counts them once, in the training loop, not in LossScaler. */
    private static final Map<LossScaler, Long> SKIPPED = new java.util.IdentityHashMap<>();

    /** {@link LossScaler#unscaleAndCheck}, counting the steps it says to skip. */
    private static boolean check(LossScaler s, List<Tensor> params) {
        boolean ok = s.unscaleAndCheck(params);
        if (!ok) SKIPPED.merge(s, 1L, Long::sum);
        return ok;
    }

    private static long skipped(LossScaler s) {
        return SKIPPED.getOrDefault(s, 0L);
    }

    private static final Device CPU = new Device(DeviceType.CPU);

    private static Tensor param(float... values) {
        return Tensors.floats(values).requires_grad_(true);
    }

    private static void setGrad(Tensor p, float... values) {
        p.mutable_grad().put(Tensors.floats(values).to(p.scalar_type()));
    }

    private static float[] grad(Tensor p) {
        return Tensors.toFloats(p.grad().to(ScalarType.Float));
    }

    /** A finite step: scale 1024 → every gradient divided by 1024 exactly, per dtype group; a parameter without grad is skipped. */
    @Test
    void unscaleDividesGradientsExactly() {
        LossScaler s = new LossScaler(CPU, 1024, 2.0, 0.5, 2000, true);
        Tensor a = param(0, 0, 0, 0), b = param(0, 0), noGrad = param(1, 2);
        Tensor c = Tensors.floats(new float[]{0, 0, 0}).to(ScalarType.BFloat16).requires_grad_(true);
        setGrad(a, 1024f, -2048f, 3f, 0f);
        setGrad(b, 1e-3f, 65536f);
        setGrad(c, 512f, -1024f, 8f);
        assertTrue(check(s, List.of(a, b, noGrad, c)));
        assertArrayEquals(new float[]{1f, -2f, 3f / 1024, 0f}, grad(a));
        assertArrayEquals(new float[]{1e-3f / 1024, 64f}, grad(b));
        assertArrayEquals(new float[]{0.5f, -1f, 8f / 1024}, grad(c));
        assertEquals(ScalarType.BFloat16, c.grad().scalar_type().intern());
        assertFalse(noGrad.grad().defined());
        assertEquals(0, skipped(s));
        s.update();
        assertEquals(1024, s.scaleValue());
        assertEquals(1, s.growthTrackerValue());
    }

    /** fp16 with an injected inf skips exactly that step and halves the scale; the same for NaN. */
    @Test
    void injectedInfOrNanSkipsThatStepAndHalvesTheScale() {
        for (float bad : new float[]{Float.POSITIVE_INFINITY, Float.NEGATIVE_INFINITY, Float.NaN}) {
            LossScaler s = new LossScaler(CPU, 65536, 2.0, 0.5, 2000, true);
            Tensor a = param(0, 0), b = param(0, 0, 0);
            // a finite step first
            setGrad(a, 1, 2);
            setGrad(b, 3, 4, 5);
            assertTrue(check(s, List.of(a, b)));
            s.update();
            assertEquals(65536, s.scaleValue());
            assertEquals(1, s.growthTrackerValue());
            // then one bad element in the second parameter only
            setGrad(a, 1, 2);
            setGrad(b, 3, bad, 5);
            assertFalse(check(s, List.of(a, b)), "non-finite " + bad);
            assertEquals(1, skipped(s));
            s.update();
            assertEquals(32768, s.scaleValue());
            assertEquals(0, s.growthTrackerValue());
            // and the next finite step is taken again, at the lower scale
            setGrad(a, 32768, 0);
            setGrad(b, 0, 0, 0);
            assertTrue(check(s, List.of(a, b)));
            assertArrayEquals(new float[]{1, 0}, grad(a));
            s.update();
            assertEquals(1, skipped(s));
            assertEquals(32768, s.scaleValue());
        }
    }

    /** growthInterval consecutive finite steps double the scale; a non-finite step resets the count. */
    @Test
    void growsAfterIntervalAndNonFiniteResetsTracker() {
        LossScaler s = new LossScaler(CPU, 8, 2.0, 0.5, 3, true);
        Tensor p = param(0);
        double[] expectedScale = {8, 8, 16, 16, 16, 8, 8, 8, 16};
        long[] expectedTracker = {1, 2, 0, 1, 2, 0, 1, 2, 0};
        boolean[] finite = {true, true, true, true, true, false, true, true, true};
        for (int i = 0; i < finite.length; i++) {
            setGrad(p, finite[i] ? 1f : Float.NaN);
            assertEquals(finite[i], check(s, List.of(p)), "step " + i);
            s.update();
            assertEquals(expectedScale[i], s.scaleValue(), "scale after step " + i);
            assertEquals(expectedTracker[i], s.growthTrackerValue(), "tracker after step " + i);
        }
        assertEquals(1, skipped(s));
    }

    /** _amp_update_scale_ keeps the old scale when growing would overflow float32 (tracker still resets). */
    @Test
    void growthThatWouldOverflowKeepsTheScale() {
        double big = Math.scalb(1.0, 127);   // largest power of two in float32
        LossScaler s = new LossScaler(CPU, big, 2.0, 0.5, 1, true);
        Tensor p = param(0);
        setGrad(p, 1);
        assertTrue(check(s, List.of(p)));
        s.update();
        assertEquals(big, s.scaleValue());
        assertEquals(0, s.growthTrackerValue());
    }

    /**
     * End to end with AdamW: scaled loss, backward, unscale, step only when finite, equals the plain fp32
     * update. Scaling by a power of two is exact, so with no overflow the results agree to rounding
     * (checked at 1e-6); with an initial scale of 2^127 the first steps overflow, are skipped, and the
     * run then equals the reference run with that many fewer steps (same batch every step).
     */
    @Test
    void matchesUnscaledAdamWWhenNoOverflow() {
        for (double initScale : new double[]{65536, Math.scalb(1.0, 127)}) {
            Generator gen = torch.make_generator_cpu(7);
            Tensor x = torch.randn(new long[]{8, 5}, new GeneratorOptional(gen), Tensors.options(ScalarType.Float));
            Tensor y = torch.randn(new long[]{8, 3}, new GeneratorOptional(gen), Tensors.options(ScalarType.Float));
            Tensor init = torch.randn(new long[]{5, 3}, new GeneratorOptional(gen), Tensors.options(ScalarType.Float));
            Tensor ours = init.clone().requires_grad_(true);
            Tensor ref = init.clone().requires_grad_(true);
            double lr = 1e-2;
            AdamW optOurs = new AdamW(Map.of("w", ours), n -> true, 0.1, 0.9, 0.999, 1e-8);
            AdamW optRef = new AdamW(Map.of("w", ref), n -> true, 0.1, 0.9, 0.999, 1e-8);
            LossScaler scaler = new LossScaler(CPU, initScale, 2.0, 0.5, 2, true);   // grows every 2 steps
            int steps = 12;
            for (int i = 0; i < steps; i++) {
                scaler.scale(loss(ours, x, y)).backward();
                if (check(scaler, List.of(ours))) {
                    AdamW.clipGradNorm(List.of(ours), 1.0);
                    optOurs.step(lr);
                }
                optOurs.zeroGrad();
                scaler.update();
            }
            long taken = steps - skipped(scaler);
            if (initScale == 65536) assertEquals(0, skipped(scaler));
            else assertTrue(skipped(scaler) > 0 && skipped(scaler) < steps, "skipped " + skipped(scaler));
            assertEquals(taken, optOurs.stepCount());
            for (long i = 0; i < taken; i++) {
                loss(ref, x, y).backward();
                AdamW.clipGradNorm(List.of(ref), 1.0);
                optRef.step(lr);
                optRef.zeroGrad();
            }
            float[] a = Tensors.toFloats(ours), b = Tensors.toFloats(ref), start = Tensors.toFloats(init);
            for (int i = 0; i < a.length; i++) {
                assertEquals(b[i], a[i], 1e-6, "element " + i + " at init scale " + initScale);
                assertTrue(Math.abs(a[i] - start[i]) > 1e-3, "parameters moved");
            }
        }
    }

    private static Tensor loss(Tensor w, Tensor x, Tensor y) {
        // (8,5)@(5,3) → (8,3) → (); a sum, so that at scale ~2^127 the gradients (not only the loss) overflow
        return x.matmul(w).sub(y).pow(new Scalar(2)).sum();
    }

    /**
     * A real fp16 forward (CPU autocast to float16, fp32 parameters): at the default scale 2^16 the fp16 backward
     * of the matmul overflows, the scaler catches it, skips those steps and backs off until the
     * gradients fit; then steps are taken and the parameters move.
     */
    @Test
    void fp16AutocastOverflowIsCaughtAndSkipped() {
        Generator gen = torch.make_generator_cpu(3);
        Tensor x = torch.randn(new long[]{64, 16}, new GeneratorOptional(gen), Tensors.options(ScalarType.Float)).mul(new Scalar(4));
        Tensor y = torch.randn(new long[]{64, 8}, new GeneratorOptional(gen), Tensors.options(ScalarType.Float));
        Tensor w = torch.randn(new long[]{16, 8}, new GeneratorOptional(gen), Tensors.options(ScalarType.Float)).requires_grad_(true);
        Tensor w0 = w.detach().clone();
        AdamW opt = new AdamW(Map.of("w", w), n -> false, 0, 0.9, 0.999, 1e-8);
        LossScaler scaler = new LossScaler(CPU, 65536, 2.0, 0.5, 2000, true);   // GradScaler's default init
        int steps = 20;
        for (int i = 0; i < steps; i++) {
            Tensor loss;
            boolean was = torch.is_autocast_enabled(DeviceType.CPU);
            torch.set_autocast_dtype(DeviceType.CPU, ScalarType.Half);
            torch.set_autocast_enabled(DeviceType.CPU, true);
            torch.increment_nesting();
            try {
                Tensor out = x.matmul(w);                       // (64,8) in fp16 under autocast
                assertEquals(ScalarType.Half, out.scalar_type().intern());
                loss = out.to(ScalarType.Float).sub(y).pow(new Scalar(2)).sum();
            } finally {
                if (torch.decrement_nesting() == 0) torch.clear_cache();
                torch.set_autocast_enabled(DeviceType.CPU, was);
            }
            scaler.scale(loss).backward();
            assertEquals(ScalarType.Float, w.grad().scalar_type().intern());
            if (check(scaler, List.of(w))) opt.step(1e-2);   // here: 13 skips, 65536 → 8, then 7 steps
            opt.zeroGrad();
            scaler.update();
        }
        assertTrue(skipped(scaler) > 0 && skipped(scaler) < steps, "skipped " + skipped(scaler));
        assertEquals(steps - skipped(scaler), opt.stepCount());
        assertEquals(Math.scalb(1.0, 16 - (int) skipped(scaler)), scaler.scaleValue());
        assertTrue(Float.isFinite(Tensors.toFloats(w)[0]) && Math.abs(Tensors.toFloats(w)[0] - Tensors.toFloats(w0)[0]) > 1e-3);
    }

    /** The scaler's tensors outlive the trainer's per-step PointerScopes, also when it is built inside one. */
    @Test
    void survivesPointerScopes() {
        LossScaler s;
        try (PointerScope outer = new PointerScope()) {
            s = new LossScaler(CPU, 256, 2.0, 0.5, 2, true);
        }
        Tensor p = param(0, 0);
        for (int i = 0; i < 5; i++) {
            try (PointerScope step = new PointerScope()) {
                setGrad(p, 256, 512);
                assertTrue(check(s, List.of(p)));
                s.update();
            }
            System.gc();
        }
        assertArrayEquals(new float[]{0.25f, 0.5f}, grad(p));   // last step ran at 1024
        assertEquals(1024, s.scaleValue());
        assertEquals(1, s.growthTrackerValue());
    }

    @Test
    void scaleMultipliesTheLoss() {
        LossScaler s = new LossScaler(CPU, 4096, 2.0, 0.5, 2000, true);
        Tensor l = Tensors.floats(new float[]{1.5f}).reshape(new long[0]);
        assertEquals(1.5 * 4096, s.scale(l).item_double());
        assertEquals(0, s.scale(l).dim());
    }

    /** state()/load(): 0-d float32 scale and 0-d int32 tracker; a loaded scaler continues identically. */
    @Test
    void stateRoundTrip() {
        LossScaler a = new LossScaler(CPU, 1024, 2.0, 0.5, 3, true);
        Tensor p = param(0);
        for (float g : new float[]{1, Float.POSITIVE_INFINITY, 1, 1}) {
            setGrad(p, g);
            a.unscaleAndCheck(List.of(p));
            a.update();
        }
        assertEquals(512, a.scaleValue());
        assertEquals(2, a.growthTrackerValue());
        Map<String, Tensor> st = a.state();
        assertEquals(List.of("scale", "growth_tracker"), List.copyOf(st.keySet()));
        assertEquals(ScalarType.Float, st.get("scale").scalar_type().intern());
        assertEquals(ScalarType.Int, st.get("growth_tracker").scalar_type().intern());
        assertEquals(0, st.get("scale").dim());
        assertEquals(0, st.get("growth_tracker").dim());
        // as a checkpoint would hold them: detached copies
        Map<String, Tensor> saved = Map.of("scale", st.get("scale").clone(), "growth_tracker", st.get("growth_tracker").clone());

        LossScaler b = new LossScaler(CPU, 65536, 2.0, 0.5, 3, true);
        b.load(saved);
        assertEquals(512, b.scaleValue());
        assertEquals(2, b.growthTrackerValue());
        for (LossScaler s : List.of(a, b)) {   // the third finite step grows both
            setGrad(p, 1);
            assertTrue(check(s, List.of(p)));
            s.update();
            assertEquals(1024, s.scaleValue());
            assertEquals(0, s.growthTrackerValue());
        }
        // a (1,)-shaped scale, as older GradScaler checkpoints hold, loads too
        b.load(Map.of("scale", Tensors.floats(new float[]{8}), "growth_tracker", torch.ones(new long[]{1}, Tensors.options(ScalarType.Int))));
        assertEquals(8, b.scaleValue());
        assertEquals(1, b.growthTrackerValue());
        assertThrows(IllegalArgumentException.class, () -> b.load(Map.of("scale", Tensors.floats(new float[]{8}))));
    }

    @Test
    void disabledIsANoOp() {
        LossScaler s = new LossScaler(CPU, 65536, 2.0, 0.5, 2000, false);
        Tensor l = Tensors.floats(new float[]{2.5f});
        assertSame(l, s.scale(l));
        Tensor p = param(0, 0);
        setGrad(p, 3, Float.POSITIVE_INFINITY);
        assertTrue(check(s, List.of(p)));
        assertArrayEquals(new float[]{3, Float.POSITIVE_INFINITY}, grad(p));
        s.update();
        s.update();
        assertEquals(1.0, s.scaleValue());
        assertEquals(0, skipped(s));
        assertTrue(s.state().isEmpty());
        s.load(Map.of());
        assertFalse(s.enabled());
    }

    @Test
    void misuseIsReported() {
        LossScaler s = new LossScaler(CPU, 65536, 2.0, 0.5, 2000, true);
        Tensor p = param(0);
        assertThrows(IllegalStateException.class, s::update);
        setGrad(p, 1);
        check(s, List.of(p));
        assertThrows(IllegalStateException.class, () -> check(s, List.of(p)));
        s.update();
        Tensor h = Tensors.floats(new float[]{0}).to(ScalarType.Half).requires_grad_(true);
        setGrad(h, 1);
        assertThrows(IllegalArgumentException.class, () -> check(s, List.of(h)));
        assertThrows(IllegalArgumentException.class, () -> new LossScaler(CPU, 65536, 1.0, 0.5, 2000, true));
        assertThrows(IllegalArgumentException.class, () -> new LossScaler(CPU, 65536, 2.0, 1.0, 2000, true));
        assertThrows(IllegalArgumentException.class, () -> new LossScaler(CPU, 65536, 2.0, 0.5, 0, true));
    }
}
