package dev.jtune.train.optim;

import dev.jtune.train.step.Trainable;
import dev.jtune.model.ModelConfig;
import dev.jtune.model.ModelInit;
import dev.jtune.model.ParameterSpec;
import dev.jtune.util.Tensors;
import org.bytedeco.pytorch.AdamWOptions;
import org.bytedeco.pytorch.Generator;
import org.bytedeco.pytorch.GeneratorOptional;
import org.bytedeco.pytorch.NoGradGuard;
import org.bytedeco.pytorch.Tensor;
import org.bytedeco.pytorch.TensorVector;
import org.bytedeco.pytorch.global.torch;
import org.bytedeco.pytorch.global.torch.ScalarType;
import org.junit.jupiter.api.Test;

import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

class AdamWTest {
    private static Tensor randn(Generator g, long... shape) {
        return torch.randn(shape, new GeneratorOptional(g), Tensors.options(ScalarType.Float));
    }

    /** Our AdamW against LibTorch's C++ torch::optim::AdamW, same gradients, 5 steps, fp32. */
    @Test
    void matchesLibTorchAdamW() {
        Generator g = torch.make_generator_cpu(1);
        Tensor init = randn(g, 7, 5);
        Tensor ours = init.clone().requires_grad_(true);
        Tensor theirs = init.clone().requires_grad_(true);
        double lr = 1e-2, wd = 0.1;
        AdamW mine = new AdamW(Map.of("w", ours), n -> true, wd, 0.9, 0.999, 1e-8);
        AdamWOptions opts = new AdamWOptions(lr);
        opts.weight_decay().put(wd);          // betas and eps: PyTorch's defaults (0.9, 0.999), 1e-8
        org.bytedeco.pytorch.AdamW reference = new org.bytedeco.pytorch.AdamW(new TensorVector(theirs), opts);
        for (int step = 0; step < 5; step++) {
            Tensor grad = randn(g, 7, 5);
            try (NoGradGuard ng = new NoGradGuard()) {
                ours.mutable_grad().put(grad.clone());
                theirs.mutable_grad().put(grad.clone());
            }
            mine.step(lr);
            reference.step();
        }
        float[] a = Tensors.toFloats(ours), b = Tensors.toFloats(theirs);
        for (int i = 0; i < a.length; i++) assertEquals(b[i], a[i], 1e-6 * (1 + Math.abs(b[i])), "element " + i);
        assertEquals(5, mine.stepCount());
    }

    /**
     * The fused implementation (aten::_fused_adamw_ through the dispatcher) against the loop, on the CPU: a decayed
     * and a non-decayed group, a tensor without a gradient (left alone by both), a switch of implementation mid-run
     * (the state is shared), 12 steps. To rounding: ATen's CPU kernel is vectorised with a scalar tail that rounds
     * v's update differently in the last bit (seen on a 7-element tensor), so the bound is a few float32 ulps.
     */
    @Test
    void fusedEqualsLoopBitForBit() {
        Generator g = torch.make_generator_cpu(3);
        long[][] shapes = {{64, 48}, {48}, {1000, 33}, {7}, {5, 5}};
        Map<String, Tensor> a = new LinkedHashMap<>(), b = new LinkedHashMap<>();
        for (int i = 0; i < shapes.length; i++) {
            Tensor init = randn(g, shapes[i]);
            a.put("p" + i, init.clone().requires_grad_(true));
            b.put("p" + i, init.clone().requires_grad_(true));
        }
        java.util.function.Predicate<String> decayed = n -> !n.equals("p1") && !n.equals("p3");
        AdamW loop = new AdamW(a, decayed, 0.1, 0.9, 0.999, 1e-8);
        AdamW fused = new AdamW(b, decayed, 0.1, 0.9, 0.999, 1e-8).implementation(AdamW.Impl.FUSED);
        for (int step = 0; step < 12; step++) {
            if (step == 8) fused.implementation(AdamW.Impl.LOOP);      // back and forth: same state, same result
            if (step == 10) fused.implementation(AdamW.Impl.FUSED);
            for (String n : a.keySet()) {
                if (n.equals("p4")) continue;                          // never gets a gradient
                Tensor grad = randn(g, a.get(n).sizes().vec().get());
                try (NoGradGuard ng = new NoGradGuard()) {
                    a.get(n).mutable_grad().put(grad.clone());
                    b.get(n).mutable_grad().put(grad.clone());
                }
            }
            double lr = 1e-2 * (1 + step % 3);
            loop.step(lr);
            fused.step(lr);
        }
        for (String n : a.keySet()) {
            assertClose(a.get(n), b.get(n), n);
            assertClose(loop.state().get("exp_avg." + n), fused.state().get("exp_avg." + n), n + " exp_avg");
            assertClose(loop.state().get("exp_avg_sq." + n), fused.state().get("exp_avg_sq." + n), n + " exp_avg_sq");
        }
        assertEquals(12, fused.stepCount());
        assertTrue(torch.equal(b.get("p4"), a.get("p4")) && Tensors.toFloats(b.get("p4"))[0] == Tensors.toFloats(randnAgain(3, shapes))[0],
                "a tensor without a gradient is not touched");
    }

    private static void assertClose(Tensor want, Tensor got, String what) {
        float[] w = Tensors.toFloats(want), x = Tensors.toFloats(got);
        for (int i = 0; i < w.length; i++) {
            assertEquals(w[i], x[i], 4 * Math.ulp(Math.abs(w[i])) + 1e-30, what + ", element " + i + ": fused and loop differ");
        }
    }

    /** The first values the generator gave p4 (the last tensor drawn before the steps). */
    private static Tensor randnAgain(long seed, long[][] shapes) {
        Generator g = torch.make_generator_cpu(seed);
        Tensor last = null;
        for (long[] s : shapes) last = randn(g, s);
        return last;
    }

    /**
     * transformers' decay rule (Trainer.get_decay_parameter_names) as full fine-tuning builds it ({@link Trainable#fullDecay}):
     * every weight decays, embeddings included, except biases and norm weights. With zero gradients AdamW's update is 0, so
     * only decay moves a parameter: each must end at before·(1 − lr·wd) when the rule, stated here from the names alone,
     * says it decays, and unchanged otherwise.
     */
    @Test
    void weightDecayFollowsTransformersRule() {
        ModelConfig c = ModelConfig.parse(ModelInit.presetConfig("qwen2", "tiny", 100, 1L, 2L), null);
        Map<String, Tensor> params = new LinkedHashMap<>();
        for (Map.Entry<String, Tensor> e : ModelInit.randomParameters(c, 0, ScalarType.Float).entrySet()) {
            Tensor p = e.getValue().add(new org.bytedeco.pytorch.Scalar(0.5)).requires_grad_(true);   // biases non-zero too
            p.mutable_grad().put(torch.zeros_like(p));
            params.put(e.getKey(), p);
        }
        Map<String, float[]> before = new LinkedHashMap<>();
        params.forEach((k, v) -> before.put(k, Tensors.toFloats(v)));
        AdamW opt = new AdamW(params, Trainable.fullDecay(c), 0.1, 0.9, 0.999, 1e-8);
        opt.step(0.5);
        int decays = 0, kept = 0;
        for (String n : params.keySet()) {
            // the rule from the names: Qwen2's biases end in ".bias", its norms are "*layernorm.weight" and "model.norm.weight"
            boolean shouldDecay = !(n.endsWith(".bias") || n.endsWith("layernorm.weight") || n.equals("model.norm.weight"));
            if (shouldDecay) decays++; else kept++;
            float[] now = Tensors.toFloats(params.get(n));
            double factor = shouldDecay ? 1 - 0.5 * 0.1 : 1.0;
            for (int i = 0; i < now.length; i += Math.max(1, now.length / 17)) {
                assertEquals(before.get(n)[i] * factor, now[i], 1e-6, n);
            }
        }
        assertTrue(params.containsKey("model.embed_tokens.weight") && params.containsKey("model.layers.0.self_attn.q_proj.bias"));
        assertTrue(decays > 0 && kept > 0, decays + " decayed, " + kept + " not");
    }

    /** The multi-tensor clipping against the per-tensor formula: many tensors, mixed sizes and dtypes, one without a gradient. */
    @Test
    void clipGradNormOverManyTensorsEqualsThePerTensorFormula() {
        Generator g = torch.make_generator_cpu(11);
        List<Tensor> params = new java.util.ArrayList<>();
        double sq = 0;
        for (int i = 0; i < 40; i++) {
            Tensor p = randn(g, 3 + i, 5).requires_grad_(true);
            params.add(p);
            if (i == 7) continue;                                             // no gradient: not counted, not touched
            Tensor grad = randn(g, 3 + i, 5);
            if (i % 3 == 0) grad = grad.to(ScalarType.BFloat16).to(ScalarType.Float);   // values a bf16 grad would hold
            try (NoGradGuard ng = new NoGradGuard()) {
                p.mutable_grad().put(grad.clone());
            }
            for (float f : Tensors.toFloats(grad)) sq += (double) f * f;
        }
        double want = Math.sqrt(sq);
        List<float[]> before = new java.util.ArrayList<>();
        for (Tensor p : params) before.add(p.grad().defined() ? Tensors.toFloats(p.grad()) : null);
        assertEquals(want, AdamW.clipGradNorm(params, 0.5), want * 1e-6);
        double coef = 0.5 / (want + 1e-6);
        for (int i = 0; i < params.size(); i++) {
            if (before.get(i) == null) {
                assertTrue(!params.get(i).grad().defined(), "tensor without a gradient stays without");
                continue;
            }
            float[] after = Tensors.toFloats(params.get(i).grad());
            for (int k = 0; k < after.length; k++) assertEquals(before.get(i)[k] * coef, after[k], 1e-6, "tensor " + i + " element " + k);
        }
        assertEquals(0.5, AdamW.clipGradNorm(params, 0), 1e-5, "after clipping the norm is the limit");
        Map<String, Tensor> named = new LinkedHashMap<>();
        for (int i = 0; i < params.size(); i++) named.put("p" + i, params.get(i));
        new AdamW(named, n -> true, 0, 0.9, 0.999, 1e-8).zeroGrad();
        assertEquals(0.0, AdamW.clipGradNorm(params, 0), 0.0, "zeroGrad zeroes every gradient");
        assertTrue(!params.get(7).grad().defined(), "and makes none");
    }

    @Test
    void clipGradNormScalesToTheLimitAndReportsTheNormBefore() {
        Tensor a = Tensors.floats(new float[] {3, 0}).requires_grad_(true);
        Tensor b = Tensors.floats(new float[] {0, 4}).requires_grad_(true);
        a.mutable_grad().put(Tensors.floats(new float[] {3, 0}));
        b.mutable_grad().put(Tensors.floats(new float[] {0, 4}));
        assertEquals(5.0, AdamW.clipGradNorm(List.of(a, b), 1.0), 1e-9);
        assertEquals(1.0, Math.hypot(Tensors.toFloats(a.grad())[0], Tensors.toFloats(b.grad())[1]), 1e-5);
        assertEquals(1.0, AdamW.clipGradNorm(List.of(a, b), 0), 1e-5, "0 = measure only");
    }
}
