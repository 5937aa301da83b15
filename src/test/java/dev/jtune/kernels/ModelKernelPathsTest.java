package dev.jtune.kernels;

import dev.jtune.model.CausalLM;
import dev.jtune.model.ModelLoader;
import dev.jtune.peft.Lora;
import dev.jtune.peft.LoraAdapter;
import dev.jtune.peft.LoraSpec;
import dev.jtune.train.step.CausalLmLoss;
import dev.jtune.util.Tensors;
import org.bytedeco.javacpp.PointerScope;
import org.bytedeco.pytorch.Device;
import org.bytedeco.pytorch.NoGradGuard;
import org.bytedeco.pytorch.Tensor;
import org.bytedeco.pytorch.global.torch.ScalarType;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;

import java.nio.file.Path;
import java.util.List;
import java.util.Map;
import java.util.TreeMap;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;

/**
 * The whole Llama-family model with its ops on the kernel paths ({@link EmulatedKernels} standing in for
 * the CUDA kernels on the CPU) against the same model on the LibTorch paths (kernels: off): the loss and
 * every gradient of a training step, and inference logits. This drives what the op-level tests cannot:
 * RoPE writing in place into the projections' views, Qwen3's q/k RMSNorm feeding RoPE, LoRA adapters
 * around the projections, and a real backward through all the hooks.
 */
class ModelKernelPathsTest {
    static final Path MODELS = Path.of("src/test/resources/models");
    static final Device CPU = new Device("cpu");
    static final long[][] IDS = {{5, 9, 17, 33, 2, 8, 90, 1, 14}, {7, 7, 64, 3, 120, 44, 0, 0, 3}};
    static final long[][] LABELS = {{-100, -100, -100, 33, 2, 8, 90, 1, 14}, {-100, 7, 64, 3, 120, 44, -100, -100, -100}};

    /** Gradients and logits of the two paths: float32 sums in different orders through a whole model. */
    static final T.Tol F32_MODEL = T.Tol.of(ScalarType.Float).times(10);

    /** Loss and gradients of every trainable tensor, by name; runs the backward after the forward's scope closed. */
    private static Map<String, Tensor> step(String name, boolean kernels, boolean lora, double[] loss) {
        Ops ops = kernels ? Ops.withBackend(EmulatedKernels.INSTANCE) : Ops.OFF;
        try (CausalLM m = ModelLoader.load(MODELS.resolve(name), ScalarType.Float, CPU, ops)) {
            Map<String, Tensor> trainable = new TreeMap<>();
            if (lora) {
                // B random (init_lora_weights false) so that A gets a gradient too
                Map<String, LoraAdapter> adapters = Lora.create(m.config(), new LoraSpec(4, 8, 0, List.of("all-linear"), false, false), 3, CPU, "test");
                m.setAdapters(adapters);
                Lora.tensors(adapters).forEach((k, t) -> trainable.put(k, t.set_requires_grad(true)));
            } else {
                m.parameters().forEach((k, t) -> trainable.put(k, t.set_requires_grad(true)));
            }
            Tensor l;
            try (PointerScope s = new PointerScope()) {
                Tensor hidden = m.hidden(Tensors.longs(IDS), null, null, null);
                l = CausalLmLoss.sumAtTargets(m, hidden, Tensors.longs(LABELS));
                l.retainReference();
            }
            System.gc();
            l.backward();
            loss[0] = l.item_double();
            Map<String, Tensor> grads = new TreeMap<>();
            trainable.forEach((k, t) -> {
                Tensor g = t.grad();
                grads.put(k, g.defined() ? g.clone() : null);
            });
            return grads;
        }
    }

    @ParameterizedTest
    @ValueSource(strings = {"llama-tiny", "qwen3-tiny", "qwen2-tiny"})
    void fullTrainingStepMatches(String name) {
        compare(name, false);
    }

    @ParameterizedTest
    @ValueSource(strings = {"llama-tiny", "qwen3-tiny"})
    void loraTrainingStepMatches(String name) {
        compare(name, true);
    }

    private static void compare(String name, boolean lora) {
        double[] want = new double[1], got = new double[1];
        Map<String, Tensor> ref = step(name, false, lora, want);
        Map<String, Tensor> ker = step(name, true, lora, got);
        assertEquals(want[0], got[0], 1e-5 * Math.abs(want[0]), name + " loss");
        assertEquals(ref.keySet(), ker.keySet());
        int compared = 0;
        for (String k : ref.keySet()) {
            Tensor r = ref.get(k), g = ker.get(k);
            assertEquals(r == null, g == null, k + ": gradient on one path only");
            if (r == null) continue;
            T.close(g, r, F32_MODEL, name + " d " + k);
            compared++;
        }
        // every trainable tensor got a gradient on both paths (the hooks handed them on)
        assertFalse(ref.isEmpty());
        assertEquals(ref.size(), compared, name + ": tensors with a gradient");
    }

    @ParameterizedTest
    @ValueSource(strings = {"llama-tiny", "qwen3-tiny"})
    void inferenceLogitsMatch(String name) {
        Tensor[] out = new Tensor[2];
        for (int i = 0; i < 2; i++) {
            Ops ops = i == 1 ? Ops.withBackend(EmulatedKernels.INSTANCE) : Ops.OFF;
            try (CausalLM m = ModelLoader.load(MODELS.resolve(name), ScalarType.Float, CPU, ops); NoGradGuard ng = new NoGradGuard()) {
                out[i] = m.forward(Tensors.longs(IDS)).clone();
            }
        }
        T.close(out[1], out[0], F32_MODEL, name + " logits");
    }
}
