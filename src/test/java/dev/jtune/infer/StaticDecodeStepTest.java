package dev.jtune.infer;

import dev.jtune.model.CausalLM;
import dev.jtune.model.KvCache;
import dev.jtune.model.ModelConfig;
import dev.jtune.model.ModelInit;
import dev.jtune.model.ModelLoader;
import dev.jtune.util.Tensors;
import org.bytedeco.javacpp.PointerScope;
import org.bytedeco.pytorch.Device;
import org.bytedeco.pytorch.NoGradGuard;
import org.bytedeco.pytorch.Tensor;
import org.bytedeco.pytorch.global.torch;
import org.bytedeco.pytorch.global.torch.ScalarType;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;

import java.nio.file.Path;
import java.util.Set;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * The static-shape decode step (what a CUDA graph captures; eager on the CPU) against the ordinary decode path: the
 * same logits step by step and the same greedy tokens, for one row and for a batch whose rows have different
 * lengths (left padding masked by the key mask); and its bookkeeping: slots written and made visible, the cache's
 * length, the checks on its arguments, and why it stays eager here.
 */
class StaticDecodeStepTest {
    static CausalLM model(String arch) {
        ModelConfig c = ModelConfig.parse(ModelInit.presetConfig(arch, "tiny", 300, null, null), Path.of(arch + "/config.json"));
        return ModelLoader.create(c, ModelInit.randomParameters(c, 11, ScalarType.Float), ScalarType.Float, new Device("cpu"), null);
    }

    @ParameterizedTest
    @ValueSource(strings = {"llama", "qwen2", "gpt2"})
    void oneRowMatchesTheOrdinaryDecodeStepByStep(String arch) {
        try (CausalLM m = model(arch); NoGradGuard ng = new NoGradGuard(); PointerScope scope = new PointerScope()) {
            long[] prompt = {4, 99, 12, 250, 7, 31};
            int p = prompt.length, steps = 8, capacity = p + steps;
            try (KvCache ordinary = m.newCache(1, capacity); KvCache fixed = m.newCache(1, capacity)) {
                Tensor ids = Tensors.longs(new long[][] {prompt});
                Tensor a = m.forward(ids, null, null, ordinary).select(1, p - 1);             // (1, V)
                m.forward(ids, null, null, fixed);
                boolean[] valid = new boolean[capacity];
                for (int i = 0; i < p; i++) valid[i] = true;
                try (StaticDecodeStep step = new StaticDecodeStep(m, fixed, mask(valid), true)) {
                    long next = torch.argmax(a).item_long();
                    for (int s = 0; s < steps; s++) {
                        Tensor want = m.forward(Tensors.longs(new long[][] {{next}}), null, null, ordinary).select(1, 0);   // (1, V)
                        Tensor got = step.step(new long[] {next}, new long[] {p + s}, new long[] {p + s});
                        double diff = got.sub(want).abs().max().item_double();
                        assertTrue(diff < 1e-4, arch + " step " + s + ": logits differ by " + diff);
                        long g = torch.argmax(got).item_long();
                        assertEquals(torch.argmax(want).item_long(), g, arch + " step " + s);
                        assertEquals(p + s + 1, fixed.length(), "the cache advances once per step");
                        next = g;
                    }
                    assertEquals(capacity, step.keyValid().sum().item_long(), "every written slot is visible");
                    assertEquals("not on CUDA", step.fallbackReason());
                    assertEquals(0, step.replays());
                }
            }
        }
    }

    @Test
    void rowsOfDifferentLengthsDecodeAsEachAlone() {
        try (CausalLM m = model("llama"); NoGradGuard ng = new NoGradGuard(); PointerScope scope = new PointerScope()) {
            long[][] prompts = {{8, 16, 23, 42, 77}, {0, 0, 5, 150, 9}};   // row 1: two padding slots, then 3 tokens
            int[] pad = {0, 2};
            int l = 5, steps = 6, capacity = l + steps;
            long[] alone0 = new TextGenerator(m).generate(prompts[0], new TextGenerator.Settings(steps, 0, 1, 0), Set.of(), null);
            long[] alone1 = new TextGenerator(m).generate(new long[] {5, 150, 9}, new TextGenerator.Settings(steps, 0, 1, 0), Set.of(), null);
            boolean[] valid = new boolean[2 * capacity];
            long[][] positions = new long[2][l];
            for (int r = 0; r < 2; r++) {
                for (int j = pad[r]; j < l; j++) valid[r * capacity + j] = true;
                for (int j = 0; j < l; j++) positions[r][j] = Math.max(0, j - pad[r]);
            }
            try (KvCache cache = m.newCache(2, capacity)) {
                // the prompt: query i sees real keys j <= i, and itself (as BatchGenerator does)
                Tensor keyValid = mask(valid).view(2, capacity);
                Tensor promptMask = keyValid.narrow(1, 0, l).unsqueeze(1).unsqueeze(1)
                        .logical_or(torch.eye(l, Tensors.options(ScalarType.Bool, m.device())))
                        .logical_and(torch.ones(new long[] {l, l}, Tensors.options(ScalarType.Bool, m.device())).tril());
                Tensor logits = m.logits(m.hidden(Tensors.longs(prompts), Tensors.longs(positions), promptMask, cache).select(1, l - 1));
                long[] next = Tensors.toLongs(torch.argmax(logits, new org.bytedeco.pytorch.LongOptional(-1), false));
                long[][] got = new long[2][steps];
                try (StaticDecodeStep step = new StaticDecodeStep(m, cache, keyValid, false)) {
                    for (int s = 0; s < steps; s++) {
                        got[0][s] = next[0];
                        got[1][s] = next[1];
                        Tensor out = step.step(next, new long[] {l + s, l - pad[1] + s}, new long[] {l + s, l + s});
                        next = Tensors.toLongs(torch.argmax(out, new org.bytedeco.pytorch.LongOptional(-1), false));
                    }
                    assertEquals("graphs off", step.fallbackReason());
                }
                assertArrayEquals(alone0, got[0], "row 0");
                assertArrayEquals(alone1, got[1], "row 1 (left-padded)");
            }
        }
    }

    @Test
    void argumentsAreChecked() {
        try (CausalLM m = model("llama"); NoGradGuard ng = new NoGradGuard(); PointerScope scope = new PointerScope();
             KvCache cache = m.newCache(1, 4)) {
            m.forward(Tensors.longs(new long[][] {{1, 2}}), null, null, cache);
            try (StaticDecodeStep step = new StaticDecodeStep(m, cache, mask(new boolean[] {true, true, false, false}), true)) {
                assertThrows(IllegalArgumentException.class, () -> step.step(new long[] {1, 2}, new long[] {2}, new long[] {2}));
                IllegalStateException full = assertThrows(IllegalStateException.class, () -> step.step(new long[] {1}, new long[] {4}, new long[] {4}));
                assertTrue(full.getMessage().contains("KV cache full"), full.getMessage());
                assertEquals(2, cache.length(), "a refused step changes nothing");
            }
            assertThrows(IllegalArgumentException.class, () -> new StaticDecodeStep(m, cache, mask(new boolean[5]), true));
        }
    }

    /** (1, n) bool from the flags (one row per capacity when reshaped by the caller). */
    static Tensor mask(boolean[] valid) {
        long[] v = new long[valid.length];
        for (int i = 0; i < v.length; i++) v[i] = valid[i] ? 1 : 0;
        return Tensors.longs(v).view(1, v.length).ne(new org.bytedeco.pytorch.Scalar(0));
    }
}
