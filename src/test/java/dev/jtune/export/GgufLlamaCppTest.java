package dev.jtune.export;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ObjectNode;
import dev.jtune.data.ChatTemplate;
import dev.jtune.model.CausalLM;
import dev.jtune.model.ModelConfig;
import dev.jtune.model.ModelLoader;
import dev.jtune.tokenizer.Fixtures;
import dev.jtune.tokenizer.HfTokenizer;
import dev.jtune.util.Tensors;
import org.bytedeco.javacpp.PointerScope;
import org.bytedeco.pytorch.Device;
import org.bytedeco.pytorch.NoGradGuard;
import org.bytedeco.pytorch.global.torch.ScalarType;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.TestInstance;
import org.junit.jupiter.api.io.TempDir;

import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Locale;
import java.util.Map;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * Every architecture's tiny random model, exported to GGUF f32 and f16, loaded by real llama.cpp: the tokenizer
 * gives jtune's ids on accented, emoji and whitespace-run texts (plus the 83 multilingual baseline strings), the
 * logits of the first positions match jtune's forward, greedy continuations are equal, and @huggingface/gguf reads
 * back every metadata key as written.
 */
@SuppressWarnings("try")
@TestInstance(TestInstance.Lifecycle.PER_CLASS)
class GgufLlamaCppTest {
    /**
     * Absolute, on logits of magnitude up to ~1 (random tiny models). Measured: f32 exports differ from jtune's f32
     * forward by up to ~2e-4 at every position, position 0 included (so not attention or RoPE: about half an f16 ulp,
     * some rounding inside llama.cpp's CPU path); a wrong Q/K permutation or tensor mapping differs by ~0.1-1.
     */
    static final double F32_TOL = 1e-3;
    /** f16 weights (and llama.cpp's f16 matmul inputs): measured up to ~4e-4. */
    static final double F16_TOL = 3e-3;
    static final int POSITIONS = 4, GREEDY = 8;

    static final List<String> TEXTS = List.of(
            "¿Dónde está la señora Muñoz? Él comió piñata y café con azúcar.",
            "Hola 👋 mundo 🌍🚀 ¡qué tal! 👨‍👩‍👧",
            "tres   espacios,\t\ttabs\n\n\nnuevas líneas    y fin   ",
            "  leading spaces and trailing  ",
            "números 1234567 y 3.14159, CAPITALES MiXtAs");

    /** @param f16 whether to check an f16 export too (the encoding does not depend on the architecture: two suffice) */
    record Case(String arch, String tokenizer, String pre, boolean f16) {}

    static final List<Case> CASES = List.of(
            new Case("llama", "phi3-mini", "default", false),
            new Case("mistral", "torchtune-tiny", "llama-bpe", true),   // f16 on the small vocabularies: cheaper to load
            new Case("qwen2", "qwen2", "qwen2", true),
            new Case("qwen3", "torchtune-tiny", "llama-bpe", false),
            new Case("gpt2", "gpt2", "gpt-2", false));

    Path work;
    final Map<Case, Path> models = new LinkedHashMap<>();
    final Map<Case, JsonNode> f32 = new LinkedHashMap<>(), f16 = new LinkedHashMap<>();
    final Map<Case, long[]> sequences = new LinkedHashMap<>();
    List<String> allTexts;

    @BeforeAll
    void exportAndRun(@TempDir Path dir) throws Exception {
        work = dir;
        LlamaCpp.assumeInstalled();
        allTexts = new ArrayList<>(TEXTS);
        for (JsonNode n : new ObjectMapper().readTree(Fixtures.dir("baselines").resolve("inputs.json").toFile())) allTexts.add(n.get("text").asText());
        List<ObjectNode> jobs = new ArrayList<>();
        int seed = 1;
        for (Case c : CASES) {
            Path tok = TinyModels.tokenizer(c.tokenizer(), work);
            Path model = TinyModels.write(c.arch(), "tiny", tok, work.resolve(c.arch()), seed++, null);
            models.put(c, model);
            long[] ids;
            try (HfTokenizer t = HfTokenizer.load(model)) {
                ids = Arrays.copyOf(t.encode(TEXTS.get(0), false).ids(), 12);
            }
            sequences.put(c, ids);
            Path a = work.resolve(c.arch() + "-f32.gguf"), b = work.resolve(c.arch() + "-f16.gguf");
            GgufExporter.export(model, null, GgufExporter.Format.GGUF, ExportType.F32, a, null);
            ObjectNode j = LlamaCpp.job(a);
            LlamaCpp.texts(j, allTexts);
            LlamaCpp.ids(j, "logitTokens", ids);
            j.put("logitPositions", POSITIONS);
            LlamaCpp.ids(j, "greedyPrompt", Arrays.copyOf(ids, 5));
            j.put("greedyCount", GREEDY);
            jobs.add(j);
            if (c.f16()) {
                GgufExporter.export(model, null, GgufExporter.Format.GGUF, ExportType.F16, b, null);
                ObjectNode k = LlamaCpp.job(b);
                k.put("parse", false);
                LlamaCpp.ids(k, "logitTokens", ids);
                k.put("logitPositions", POSITIONS);
                jobs.add(k);
            }
        }
        long t0 = System.nanoTime();
        List<JsonNode> out = LlamaCpp.run(work, jobs);
        System.out.printf(Locale.ROOT, "llama.cpp checks: %.1f s%n", (System.nanoTime() - t0) / 1e9);
        int i = 0;
        for (Case c : CASES) {
            f32.put(c, out.get(i++));
            if (c.f16()) f16.put(c, out.get(i++));
        }
    }

    @Test
    void tokenIdsEqualJtunes() {
        for (Case c : CASES) {
            try (HfTokenizer tok = HfTokenizer.load(models.get(c))) {
                JsonNode got = f32.get(c).get("tokens");
                for (int i = 0; i < allTexts.size(); i++) {
                    long[] want = tok.encode(allTexts.get(i), false).ids();
                    long[] have = longs(got.get(i));
                    assertArrayEquals(want, have, c + ": token ids of " + allTexts.get(i));
                }
            }
        }
    }

    @Test
    void logitsAndGreedyMatchJtunesForward() {
        for (Case c : CASES) {
            long[] ids = sequences.get(c);
            try (CausalLM m = ModelLoader.load(models.get(c), ScalarType.Float, new Device("cpu"));
                 NoGradGuard ng = new NoGradGuard(); PointerScope s = new PointerScope()) {
                int v = m.config().vocabSize();
                float[] logits = Tensors.toFloats(m.forward(Tensors.longs(new long[][] {ids})));
                double d32 = maxDiff(logits, v, f32.get(c).get("logProbs"));
                System.out.printf(Locale.ROOT, "%s: max |log-softmax difference| f32 %.2e%n", c.arch(), d32);
                assertTrue(d32 <= F32_TOL, c + ": f32 logits differ by " + d32 + " > " + F32_TOL);
                if (c.f16()) {
                    double d16 = maxDiff(logits, v, f16.get(c).get("logProbs"));
                    System.out.printf(Locale.ROOT, "%s: max |log-softmax difference| f16 %.2e%n", c.arch(), d16);
                    assertTrue(d16 <= F16_TOL, c + ": f16 logits differ by " + d16 + " > " + F16_TOL);
                }

                long[] seq = Arrays.copyOf(ids, 5);
                long[] greedy = new long[GREEDY];
                for (int i = 0; i < GREEDY; i++) {
                    float[] l = Tensors.toFloats(m.forward(Tensors.longs(new long[][] {seq})));
                    int best = 0;
                    int base = (seq.length - 1) * v;
                    for (int k = 1; k < v; k++) if (l[base + k] > l[base + best]) best = k;
                    greedy[i] = best;
                    seq = Arrays.copyOf(seq, seq.length + 1);
                    seq[seq.length - 1] = best;
                }
                assertArrayEquals(greedy, longs(f32.get(c).get("greedy")), c + ": greedy continuation");
            }
        }
    }

    @Test
    void metadataReadsBackAsWritten() {
        for (Case c : CASES) {
            JsonNode md = f32.get(c).get("metadata");
            ModelConfig cfg = ModelConfig.read(models.get(c));
            String arch = GgufArchitecture.name(cfg);
            assertEquals(3, md.get("version").get("value").asInt());
            assertEquals(arch, value(md, "general.architecture").asText());
            assertEquals(0, value(md, "general.file_type").asInt());
            assertEquals(cfg.maxPositions(), value(md, arch + ".context_length").asInt(), c + " context_length");
            assertEquals(cfg.hiddenSize(), value(md, arch + ".embedding_length").asInt());
            assertEquals(cfg.intermediateSize(), value(md, arch + ".feed_forward_length").asInt());
            assertEquals(cfg.numLayers(), value(md, arch + ".block_count").asInt());
            assertEquals(cfg.numHeads(), value(md, arch + ".attention.head_count").asInt());
            if (arch.equals("gpt2")) {
                assertEquals(cfg.normEps(), value(md, "gpt2.attention.layer_norm_epsilon").asDouble(), 1e-9);
            } else {
                assertEquals(cfg.numKvHeads(), value(md, arch + ".attention.head_count_kv").asInt());
                assertEquals(cfg.ropeTheta(), value(md, arch + ".rope.freq_base").asDouble(), 1e-3);
                assertEquals(cfg.normEps(), value(md, arch + ".attention.layer_norm_rms_epsilon").asDouble(), 1e-9);
                assertEquals(cfg.headDim(), value(md, arch + ".rope.dimension_count").asInt());
            }
            assertEquals(c.pre(), value(md, "tokenizer.ggml.pre").asText(), c + " pre-tokenizer");
            assertEquals(c.pre().equals("default") ? "llama" : "gpt2", value(md, "tokenizer.ggml.model").asText());
            try (HfTokenizer tok = HfTokenizer.load(models.get(c))) {
                JsonNode tokens = value(md, "tokenizer.ggml.tokens");
                assertEquals(cfg.vocabSize(), tokens.size());
                for (int id = 0; id < tokens.size(); id++) {
                    String want = tok.idToToken(id).orElse("[PAD" + id + "]");
                    // @huggingface/gguf decodes strings with TextDecoder, which drops a leading byte-order mark
                    // (phi-3 has the token U+FEFF); llama.cpp reads the bytes as written.
                    if (want.startsWith("\uFEFF")) want = want.substring(1);
                    assertEquals(want, tokens.get(id).asText(), c + ": token " + id);
                }
                JsonNode types = value(md, "tokenizer.ggml.token_type");
                for (int id = 0; id < types.size(); id++) {
                    if (tok.isSpecial(id)) assertTrue(types.get(id).asInt() == 3 || types.get(id).asInt() == 2, c + ": special token " + id + " is CONTROL/UNKNOWN");
                }
                if (tok.bosTokenId().isPresent()) assertEquals(tok.bosTokenId().getAsLong(), value(md, "tokenizer.ggml.bos_token_id").asLong());
                if (!tok.eosTokenIds().isEmpty()) assertEquals(tok.eosTokenIds().iterator().next(), value(md, "tokenizer.ggml.eos_token_id").asLong());
                long[] plain = tok.encode("a", false).ids(), special = tok.encode("a", true).ids();
                assertEquals(special.length > plain.length && special[0] != plain[0], value(md, "tokenizer.ggml.add_bos_token").asBoolean());
                assertEquals(ChatTemplate.forTokenizer(tok).source(), value(md, "tokenizer.chat_template").asText());
            }
            // tensors: every parameter once, llama.cpp's names, ggml's reversed shapes, f32
            JsonNode tensors = f32.get(c).get("tensors");
            assertEquals(md.get("tensor_count").get("value").asInt(), tensors.size());
            boolean hasEmbd = false;
            for (JsonNode t : tensors) {
                String name = t.get("name").asText();
                assertTrue(name.matches("(token_embd|position_embd|output_norm|output)\\.(weight|bias)|blk\\.\\d+\\.[a-z_]+\\.(weight|bias)"), name);
                assertEquals(0, t.get("dtype").asInt(), name + " is F32");
                if (name.equals("token_embd.weight")) {
                    hasEmbd = true;
                    assertEquals(List.of((long) cfg.hiddenSize(), (long) cfg.vocabSize()), List.of(t.get("shape").get(0).asLong(), t.get("shape").get(1).asLong()));
                }
            }
            assertTrue(hasEmbd);
            if (c.arch().equals("qwen2")) assertTrue(value(md, "tokenizer.chat_template").asText().contains("<|im_start|>"));
        }
    }

    private static JsonNode value(JsonNode md, String key) {
        JsonNode e = md.get(key);
        assertTrue(e != null, "missing GGUF key " + key);
        return e.get("value");
    }

    /**
     * Max |jtune - llama.cpp| of log-softmax over the first positions' full rows (llama.cpp's side comes
     * as probabilities: logits compared up to their shared shift).
     */
    static double maxDiff(float[] jtuneLogits, int vocab, JsonNode llamaLogProbs) {
        return maxDiff(jtuneLogits, vocab, llamaLogProbs, POSITIONS);
    }

    static double maxDiff(float[] jtuneLogits, int vocab, JsonNode llamaLogProbs, int positions) {
        double max = 0;
        for (int p = 0; p < positions; p++) {
            JsonNode row = llamaLogProbs.get(p);
            assertEquals(vocab, row.size());
            double m = Double.NEGATIVE_INFINITY, z = 0;
            for (int k = 0; k < vocab; k++) m = Math.max(m, jtuneLogits[p * vocab + k]);
            for (int k = 0; k < vocab; k++) z += Math.exp(jtuneLogits[p * vocab + k] - m);
            double lse = m + Math.log(z);
            for (int k = 0; k < vocab; k++) max = Math.max(max, Math.abs(jtuneLogits[p * vocab + k] - lse - row.get(k).asDouble()));
        }
        return max;
    }

    private static long[] longs(JsonNode a) {
        long[] out = new long[a.size()];
        for (int i = 0; i < out.length; i++) out[i] = a.get(i).asLong();
        return out;
    }
}
