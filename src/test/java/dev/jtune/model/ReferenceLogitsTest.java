package dev.jtune.model;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import dev.jtune.infer.Perplexity;
import dev.jtune.infer.TextGenerator;
import dev.jtune.util.Tensors;
import org.bytedeco.javacpp.PointerScope;
import org.bytedeco.pytorch.Device;
import org.bytedeco.pytorch.NoGradGuard;
import org.bytedeco.pytorch.Tensor;
import org.bytedeco.pytorch.global.torch.ScalarType;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Set;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * Each architecture's logits against references computed independently of this code base (see
 * src/test/python/reference/README.md): a pure-Python float64 transcription of transformers' modeling
 * files, and, where present, transformers itself (reference_logits.transformers.json).
 */
class ReferenceLogitsTest {
    static final Path MODELS = Path.of("src/test/resources/models");
    static final ObjectMapper JSON = new ObjectMapper();

    /** fp32 against a float64 reference: absolute 1e-4 plus 1e-4 relative. */
    static final double FP32_TOL = 1e-4;

    @ParameterizedTest
    @ValueSource(strings = {"llama-tiny", "mistral-tiny", "mistral-window-tiny", "qwen2-tiny", "qwen3-tiny", "gpt2-tiny"})
    void logitsMatchReferences(String name) throws IOException {
        Path dir = MODELS.resolve(name);
        int compared = 0;
        for (String file : new String[] {"reference_logits.json", "reference_logits.transformers.json"}) {
            if (!Files.exists(dir.resolve(file))) continue;
            JsonNode ref = JSON.readTree(dir.resolve(file).toFile());
            try (CausalLM model = ModelLoader.load(dir, ScalarType.Float, new Device("cpu"));
                 PointerScope scope = new PointerScope(); NoGradGuard ng = new NoGradGuard()) {
                JsonNode inputs = ref.get("input_ids");
                for (int s = 0; s < inputs.size(); s++) {
                    long[] ids = longs(inputs.get(s));
                    float[] got = Tensors.toFloats(model.forward(Tensors.longs(new long[][] {ids})));
                    double[] want = doubles(ref.get("logits").get(s));
                    assertEquals(want.length, got.length, name + " sequence " + s + ": logits size");
                    assertClose(want, got, FP32_TOL, name + " (" + file + ") sequence " + s);
                }
            }
            compared++;
        }
        assertTrue(compared >= 1, "no reference logits for " + name);
    }

    /** Greedy decoding through the KV cache reproduces the reference's full-recompute continuation. */
    @ParameterizedTest
    @ValueSource(strings = {"llama-tiny", "mistral-tiny", "mistral-window-tiny", "qwen2-tiny", "qwen3-tiny", "gpt2-tiny"})
    void greedyContinuationMatchesReference(String name) throws IOException {
        Path dir = MODELS.resolve(name);
        JsonNode greedy = JSON.readTree(dir.resolve("reference_logits.json").toFile()).get("greedy");
        long[] prompt = longs(greedy.get("prompt"));
        long[] want = longs(greedy.get("new_tokens"));
        try (CausalLM model = ModelLoader.load(dir, ScalarType.Float, new Device("cpu"))) {
            long[] got = new TextGenerator(model).generate(prompt,
                    new TextGenerator.Settings(want.length, 0, 1, 0), Set.of(), null);
            assertArrayEquals(want, got, name + ": greedy continuation");
        }
    }

    /**
     * Feeding tokens one at a time through the cache gives the same logits as one full forward. For
     * mistral-window-tiny (sliding_window 4 < 9 tokens) the window must hold across the cache: the last chunk's
     * queries at positions 5..8 see keys from the cache (2..4) and their own chunk.
     */
    @ParameterizedTest
    @ValueSource(strings = {"llama-tiny", "qwen3-tiny", "gpt2-tiny", "mistral-window-tiny"})
    void kvCacheDecodingEqualsFullForward(String name) {
        long[] ids = {5, 17, 99, 3, 42, 64, 8, 120, 77};
        try (CausalLM model = ModelLoader.load(MODELS.resolve(name), ScalarType.Float, new Device("cpu"));
             PointerScope scope = new PointerScope(); NoGradGuard ng = new NoGradGuard()) {
            float[] full = Tensors.toFloats(model.forward(Tensors.longs(new long[][] {ids})));
            KvCache cache = model.newCache(1, ids.length);
            int v = model.config().vocabSize();
            // a 4-token prefill (past = 0) then 1 token, then a 4-token chunk with past > 0 (explicit mask path)
            int[][] chunks = {{0, 4}, {4, 5}, {5, 9}};
            for (int[] c : chunks) {
                long[] part = java.util.Arrays.copyOfRange(ids, c[0], c[1]);
                float[] got = Tensors.toFloats(model.forward(Tensors.longs(new long[][] {part}), null, null, cache));
                float[] want = java.util.Arrays.copyOfRange(full, c[0] * v, c[1] * v);
                assertClose(toDouble(want), got, 1e-5, name + " cached chunk " + c[0] + ".." + c[1]);
            }
            assertEquals(ids.length, cache.length());
        }
    }

    /**
     * A sliding window applies on top of an explicit attention mask (a padding or packing mask), as in transformers'
     * masking_utils: the reference logits come back when the plain causal mask is passed explicitly.
     */
    @org.junit.jupiter.api.Test
    void slidingWindowAppliesOnTopOfAnExplicitMask() throws IOException {
        Path dir = MODELS.resolve("mistral-window-tiny");
        JsonNode ref = JSON.readTree(dir.resolve("reference_logits.json").toFile());
        long[] ids = longs(ref.get("input_ids").get(0));
        try (CausalLM model = ModelLoader.load(dir, ScalarType.Float, new Device("cpu"));
             PointerScope scope = new PointerScope(); NoGradGuard ng = new NoGradGuard()) {
            assertTrue(model.config().slidingWindow() > 0 && model.config().slidingWindow() < ids.length, "the window must bite");
            int t = ids.length;
            Tensor causal = org.bytedeco.pytorch.global.torch.ones(new long[] {t, t}, Tensors.options(ScalarType.Bool, new Device("cpu")))
                    .tril().view(1, 1, t, t);                                      // (B, 1, T, S): no window in it
            float[] got = Tensors.toFloats(model.forward(Tensors.longs(new long[][] {ids}), null, causal, null));
            assertClose(doubles(ref.get("logits").get(0)), got, FP32_TOL, "explicit causal mask, window 4");
        }
    }

    /** bf16 compute stays within 2e-2 mean NLL of fp32, as the tolerance for bf16 says. */
    @ParameterizedTest
    @ValueSource(strings = {"llama-tiny", "qwen2-tiny", "gpt2-tiny"})
    void bf16PerplexityCloseToFp32(String name) throws IOException {
        Path dir = MODELS.resolve(name);
        long[] ids = longs(JSON.readTree(dir.resolve("reference_logits.json").toFile()).get("input_ids").get(0));
        double fp32, bf16;
        try (CausalLM m = ModelLoader.load(dir, ScalarType.Float, new Device("cpu"))) {
            fp32 = Perplexity.of(m, ids, ids.length, ids.length, null).meanNll();
        }
        try (CausalLM m = ModelLoader.load(dir, ScalarType.BFloat16, new Device("cpu"))) {
            assertEquals(ScalarType.BFloat16, m.parameters().values().iterator().next().scalar_type().intern());
            bf16 = Perplexity.of(m, ids, ids.length, ids.length, null).meanNll();
        }
        assertEquals(fp32, bf16, 2e-2, name + ": bf16 mean NLL vs fp32");
    }

    /** Mean NLL from the reference logits equals what Perplexity computes, and strided windows agree with one pass. */
    @ParameterizedTest
    @ValueSource(strings = {"llama-tiny", "gpt2-tiny"})
    void perplexityMatchesReferenceLogits(String name) throws IOException {
        Path dir = MODELS.resolve(name);
        JsonNode ref = JSON.readTree(dir.resolve("reference_logits.json").toFile());
        long[] ids = longs(ref.get("input_ids").get(0));
        JsonNode logits = ref.get("logits").get(0);
        double sum = 0;
        for (int t = 0; t + 1 < ids.length; t++) {
            double[] row = doubles(logits.get(t));
            double max = Double.NEGATIVE_INFINITY;
            for (double x : row) max = Math.max(max, x);
            double z = 0;
            for (double x : row) z += Math.exp(x - max);
            sum += -(row[(int) ids[t + 1]] - max - Math.log(z));
        }
        double want = sum / (ids.length - 1);
        try (CausalLM m = ModelLoader.load(dir, ScalarType.Float, new Device("cpu"))) {
            Perplexity.Result one = Perplexity.of(m, ids, ids.length, ids.length, null);
            assertEquals(ids.length, one.tokens());
            assertEquals(ids.length - 1, one.scored());
            assertEquals(want, one.meanNll(), 1e-5);
            // windows of 6 advancing by 3: every token scored exactly once, with less context
            Perplexity.Result strided = Perplexity.of(m, ids, 6, 3, null);
            assertEquals(ids.length - 1, strided.scored());
            assertTrue(Math.abs(strided.meanNll() - want) < 1.0, "strided NLL in the same range");
        }
    }

    static void assertClose(double[] want, float[] got, double tol, String what) {
        double worst = 0;
        int at = -1;
        for (int i = 0; i < want.length; i++) {
            double err = Math.abs(want[i] - got[i]) / (1 + Math.abs(want[i]));
            if (!(err <= worst)) {
                worst = err;
                at = i;
            }
        }
        assertTrue(worst <= tol, what + ": worst error " + worst + " at " + at
                + " (want " + (at < 0 ? "?" : want[at]) + ", got " + (at < 0 ? "?" : got[at]) + "), tolerance " + tol);
    }

    static long[] longs(JsonNode arr) {
        long[] out = new long[arr.size()];
        for (int i = 0; i < out.length; i++) out[i] = arr.get(i).asLong();
        return out;
    }

    /** Flattens a nested array of numbers, row-major. */
    static double[] doubles(JsonNode arr) {
        java.util.List<Double> out = new java.util.ArrayList<>();
        flatten(arr, out);
        return out.stream().mapToDouble(Double::doubleValue).toArray();
    }

    private static void flatten(JsonNode n, java.util.List<Double> out) {
        if (n.isArray()) for (JsonNode c : n) flatten(c, out);
        else out.add(n.asDouble());
    }

    static double[] toDouble(float[] f) {
        double[] d = new double[f.length];
        for (int i = 0; i < f.length; i++) d[i] = f[i];
        return d;
    }
}
