package dev.jtune.peft;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import dev.jtune.io.SafetensorsFile;
import dev.jtune.io.SafetensorsWriter;
import dev.jtune.model.CausalLM;
import dev.jtune.model.ModelConfig;
import dev.jtune.model.ModelLoader;
import dev.jtune.util.Tensors;
import dev.jtune.util.UserError;
import org.bytedeco.javacpp.PointerScope;
import org.bytedeco.pytorch.Device;
import org.bytedeco.pytorch.NoGradGuard;
import org.bytedeco.pytorch.Tensor;
import org.bytedeco.pytorch.global.torch;
import org.bytedeco.pytorch.global.torch.ScalarType;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

class LoraTest {
    static final Path MODELS = Path.of("src/test/resources/models");
    static final Device CPU = new Device("cpu");
    static final long[][] IDS = {{5, 17, 99, 3, 42, 64, 8, 120, 77, 1}};

    @TempDir
    Path tmp;

    static float[] logits(CausalLM m) {
        try (PointerScope s = new PointerScope(); NoGradGuard ng = new NoGradGuard()) {
            return Tensors.toFloats(m.forward(Tensors.longs(IDS)));
        }
    }

    static void assertClose(float[] want, float[] got, double tol, String what) {
        assertEquals(want.length, got.length);
        double worst = 0;
        for (int i = 0; i < want.length; i++) worst = Math.max(worst, Math.abs(want[i] - got[i]) / (1 + Math.abs(want[i])));
        assertTrue(worst <= tol, what + ": worst relative error " + worst + " > " + tol);
    }

    @ParameterizedTest
    @ValueSource(strings = {"llama-tiny", "gpt2-tiny"})
    void adapterWithZeroBChangesNothing(String name) {
        try (CausalLM m = ModelLoader.load(MODELS.resolve(name), ScalarType.Float, CPU)) {
            float[] base = logits(m);
            LoraSpec spec = new LoraSpec(4, 8, 0, List.of("all-linear"), false, true);
            m.setAdapters(Lora.create(m.config(), spec, 1, CPU, "test"));
            assertArrayEquals(base, logits(m), "B = 0: the adapted model is the base model");
        }
    }

    /** Merged weights give the logits of base + adapter (fp32, 1e-5), for nn.Linear and GPT-2's Conv1D. */
    @ParameterizedTest
    @ValueSource(strings = {"llama-tiny", "qwen2-tiny", "gpt2-tiny"})
    void mergedModelEqualsBasePlusAdapter(String name) {
        Path adapterDir = tmp.resolve("adapter"), merged = tmp.resolve("merged");
        float[] adapted;
        try (CausalLM m = ModelLoader.load(MODELS.resolve(name), ScalarType.Float, CPU)) {
            float[] base = logits(m);
            LoraSpec spec = new LoraSpec(4, 16, 0.1, List.of("all-linear"), false, false);   // B random: a real change
            Map<String, LoraAdapter> adapters = Lora.create(m.config(), spec, 2, CPU, "test");
            m.setAdapters(adapters);
            adapted = logits(m);
            assertFalse(java.util.Arrays.equals(base, adapted), "a random adapter changes the logits");
            PeftAdapter.save(adapterDir, spec, adapters, m.config(), MODELS.resolve(name).toString());
        }
        LoraMerge.merge(MODELS.resolve(name), adapterDir, merged, ScalarType.Float, null);
        try (CausalLM m = ModelLoader.load(merged, ScalarType.Float, CPU)) {
            assertClose(adapted, logits(m), 1e-5, name + " merged vs adapted");
        }
        // and the adapter loads back onto the base to the same logits
        try (CausalLM m = AdapterLoader.load(MODELS.resolve(name), adapterDir, ScalarType.Float, CPU)) {
            assertClose(adapted, logits(m), 1e-6, name + " saved and loaded adapter");
        }
    }

    /** The names in {@code dir} (hidden ones too), to show that a refused merge left nothing behind. */
    static List<String> listing(Path dir) throws IOException {
        try (var s = Files.list(dir)) {
            return s.map(p -> p.getFileName().toString()).sorted().toList();
        }
    }

    /**
     * A real adapter (trained shape: llama-tiny, 2 KV heads) on a base it does not fit (mistral-tiny, 1 KV head):
     * refused naming the tensor and both shapes, before anything is written: --out is not created, and nothing
     * (no hidden temporary directory either) appears beside it.
     */
    @Test
    void mismatchedAdapterIsRefusedBeforeAnythingIsWritten() throws IOException {
        Path adapterDir = tmp.resolve("adapter");
        try (CausalLM m = ModelLoader.load(MODELS.resolve("llama-tiny"), ScalarType.Float, CPU)) {
            LoraSpec spec = new LoraSpec(4, 16, 0, List.of("all-linear"), false, false);
            PeftAdapter.save(adapterDir, spec, Lora.create(m.config(), spec, 2, CPU, "test"), m.config(), "llama-tiny");
        }
        Path parent = tmp.resolve("outputs");
        Files.createDirectories(parent);
        Path out = parent.resolve("merged");
        UserError e = assertThrows(UserError.class, () -> LoraMerge.merge(MODELS.resolve("mistral-tiny"), adapterDir, out, null, null));
        assertTrue(e.getMessage().contains("adapter_model.safetensors") && e.getMessage().contains("k_proj.lora_B.weight")
                && e.getMessage().contains("[16, 4]") && e.getMessage().contains("[8, 4]"), e.getMessage());
        assertFalse(Files.exists(out), "--out not created");
        assertEquals(List.of(), listing(parent), "nothing written beside --out");
    }

    /** --out that cannot take a merged model is refused before any work, and an existing one is left as it was. */
    @Test
    void badOutputDirectoryIsRefusedBeforeAnythingIsWritten() throws IOException {
        Path base = MODELS.resolve("llama-tiny");
        Path adapterDir = tmp.resolve("adapter");
        try (CausalLM m = ModelLoader.load(base, ScalarType.Float, CPU)) {
            LoraSpec spec = new LoraSpec(2, 4, 0, List.of("q_proj"), false, false);
            PeftAdapter.save(adapterDir, spec, Lora.create(m.config(), spec, 2, CPU, "test"), m.config(), "llama-tiny");
        }
        List<String> adapterFiles = listing(adapterDir);
        UserError sameAsAdapter = assertThrows(UserError.class, () -> LoraMerge.merge(base, adapterDir, adapterDir, null, null));
        assertTrue(sameAsAdapter.getMessage().contains("is the adapter directory"), sameAsAdapter.getMessage());
        assertEquals(adapterFiles, listing(adapterDir), "the adapter directory is untouched");

        Path aFile = Files.writeString(tmp.resolve("a-file"), "x");
        UserError isFile = assertThrows(UserError.class, () -> LoraMerge.merge(base, adapterDir, aFile, null, null));
        assertTrue(isFile.getMessage().contains("exists and is not a directory"), isFile.getMessage());
        assertEquals("x", Files.readString(aFile));
        UserError underFile = assertThrows(UserError.class, () -> LoraMerge.merge(base, adapterDir, aFile.resolve("merged"), null, null));
        assertTrue(underFile.getMessage().contains(aFile + " is not a directory"), underFile.getMessage());

        Path full = Files.createDirectories(tmp.resolve("earlier"));
        Files.writeString(full.resolve("notes.txt"), "mine");
        UserError notEmpty = assertThrows(UserError.class, () -> LoraMerge.merge(base, adapterDir, full, null, null));
        assertTrue(notEmpty.getMessage().contains("is not empty"), notEmpty.getMessage());
        assertEquals(List.of("notes.txt"), listing(full));
        assertEquals(List.of("a-file", "adapter", "earlier"), listing(tmp), "no hidden temporary directory left");

        // an empty directory is fine: the merged model takes its place
        Path empty = Files.createDirectories(tmp.resolve("empty"));
        LoraMerge.merge(base, adapterDir, empty, null, null);
        assertTrue(Files.isRegularFile(empty.resolve("model.safetensors")));
        assertEquals(List.of("a-file", "adapter", "earlier", "empty"), listing(tmp));
    }

    /** The files are PEFT's: the config keys PeftModel.from_pretrained reads and the tensor names it expects. */
    @Test
    void savedAdapterHasPeftLayout() throws IOException {
        try (CausalLM m = ModelLoader.load(MODELS.resolve("gpt2-tiny"), ScalarType.Float, CPU)) {
            LoraSpec spec = new LoraSpec(2, 4, 0.05, null, true, true);
            PeftAdapter.save(tmp, spec, Lora.create(m.config(), spec, 3, CPU, "test"), m.config(), "base-dir");
        }
        JsonNode cfg = new ObjectMapper().readTree(tmp.resolve("adapter_config.json").toFile());
        assertEquals("LORA", cfg.get("peft_type").asText());
        assertEquals("CAUSAL_LM", cfg.get("task_type").asText());
        assertEquals(2, cfg.get("r").asInt());
        assertEquals(4.0, cfg.get("lora_alpha").asDouble());
        assertEquals("[\"c_attn\"]", cfg.get("target_modules").toString());
        assertTrue(cfg.get("fan_in_fan_out").asBoolean(), "GPT-2's Conv1D");
        assertTrue(cfg.get("use_rslora").asBoolean());
        assertEquals("none", cfg.get("bias").asText());
        assertEquals("base-dir", cfg.get("base_model_name_or_path").asText());
        try (SafetensorsFile f = SafetensorsFile.open(tmp.resolve("adapter_model.safetensors"))) {
            assertEquals(List.of("base_model.model.transformer.h.0.attn.c_attn.lora_A.weight", "base_model.model.transformer.h.0.attn.c_attn.lora_B.weight",
                    "base_model.model.transformer.h.1.attn.c_attn.lora_A.weight", "base_model.model.transformer.h.1.attn.c_attn.lora_B.weight"),
                    List.copyOf(f.tensors().keySet()));
            assertArrayEquals(new long[] {2, 32}, f.tensors().get("base_model.model.transformer.h.0.attn.c_attn.lora_A.weight").shape());
            assertArrayEquals(new long[] {96, 2}, f.tensors().get("base_model.model.transformer.h.0.attn.c_attn.lora_B.weight").shape());
        }
    }

    /**
     * An adapter laid out as Python PEFT writes it (written here by hand: config with PEFT's own keys, tensors
     * named base_model.model.…lora_A.weight) loads onto the right modules: the logits equal the base model
     * with W + alpha/r · B A put in by hand.
     */
    @Test
    void peftLayoutAdapterLoadsOntoTheRightModules() throws IOException {
        Path base = MODELS.resolve("mistral-tiny");
        Files.writeString(tmp.resolve("adapter_config.json"), """
                {"base_model_name_or_path": "mistral-tiny", "bias": "none", "fan_in_fan_out": false, "inference_mode": true,
                 "init_lora_weights": true, "layers_pattern": null, "layers_to_transform": null, "lora_alpha": 16,
                 "lora_dropout": 0.05, "modules_to_save": null, "peft_type": "LORA", "r": 2, "rank_pattern": {},
                 "alpha_pattern": {}, "revision": null, "target_modules": ["v_proj"], "task_type": "CAUSAL_LM", "use_rslora": false}
                """);
        Tensor a = torch.randn(2, 32).mul(new org.bytedeco.pytorch.Scalar(0.1));
        Tensor b = torch.randn(8, 2).mul(new org.bytedeco.pytorch.Scalar(0.1));    // v_proj: 32 -> 2 kv heads × 4? (8)
        Map<String, Tensor> t = new LinkedHashMap<>();
        t.put("base_model.model.model.layers.1.self_attn.v_proj.lora_A.weight", a);
        t.put("base_model.model.model.layers.1.self_attn.v_proj.lora_B.weight", b);
        SafetensorsWriter.write(tmp.resolve("adapter_model.safetensors"), t, Map.of("format", "pt"));

        PeftAdapter.Loaded loaded;
        try (CausalLM m = ModelLoader.load(base, ScalarType.Float, CPU)) {
            loaded = PeftAdapter.load(tmp, m.config(), CPU, false);
        }
        assertEquals(List.of("model.layers.1.self_attn.v_proj"), List.copyOf(loaded.adapters().keySet()));
        assertEquals(8.0, loaded.spec().scaling());
        // reference: the base weights with the update folded in by hand
        Map<String, Tensor> params = new LinkedHashMap<>();
        float[] want;
        try (CausalLM m = ModelLoader.load(base, ScalarType.Float, CPU)) {
            m.parameters().forEach((k, v) -> params.put(k, v.clone()));
            String w = "model.layers.1.self_attn.v_proj.weight";
            params.put(w, params.get(w).add(torch.matmul(b, a).mul(new org.bytedeco.pytorch.Scalar(8.0))));
            try (CausalLM byHand = ModelLoader.create(m.config(), params, ScalarType.Float, CPU, null)) {
                want = logits(byHand);
            }
        }
        try (CausalLM m = AdapterLoader.load(base, tmp, ScalarType.Float, CPU)) {
            assertClose(want, logits(m), 1e-5, "PEFT adapter vs hand-merged weights");
        }
    }

    @Test
    void targetThatMatchesNothingListsTheLinearModules() {
        ModelConfig c = ModelConfig.read(MODELS.resolve("qwen3-tiny"));
        UserError e = assertThrows(UserError.class, () -> LoraTargets.resolve(c, List.of("q_proj", "query_key_value"), "lora.target_modules"));
        assertTrue(e.getMessage().contains("lora.target_modules") && e.getMessage().contains("[query_key_value]")
                && e.getMessage().contains("[q_proj, k_proj, v_proj, o_proj, gate_proj, up_proj, down_proj]"), e.getMessage());
        assertEquals(14, LoraTargets.resolve(c, List.of("all-linear"), "x").size(), "7 linear modules × 2 layers, no lm_head");
        assertEquals(4, LoraTargets.resolve(c, null, "x").size(), "PEFT's default: q_proj and v_proj");
    }

    @Test
    void adapterForAnotherBaseModelIsRefused() {
        Path adapterDir = tmp.resolve("llama-adapter");
        try (CausalLM m = ModelLoader.load(MODELS.resolve("qwen3-tiny"), ScalarType.Float, CPU)) {
            LoraSpec spec = new LoraSpec(2, 4, 0, List.of("q_proj"), false, true);
            PeftAdapter.save(adapterDir, spec, Lora.create(m.config(), spec, 1, CPU, "t"), m.config(), "qwen3-tiny");
        }
        // qwen3-tiny's q_proj is 32 -> 64; llama-tiny's is 32 -> 32
        UserError e = assertThrows(UserError.class, () -> AdapterLoader.load(MODELS.resolve("llama-tiny"), adapterDir, ScalarType.Float, CPU));
        assertTrue(e.getMessage().contains("lora_B.weight") && e.getMessage().contains("[64, 2]") && e.getMessage().contains("another base model"),
                e.getMessage());
        UserError gpt = assertThrows(UserError.class, () -> AdapterLoader.load(MODELS.resolve("gpt2-tiny"), adapterDir, ScalarType.Float, CPU));
        assertTrue(gpt.getMessage().contains("no linear module 'model.layers.0.self_attn.q_proj'"), gpt.getMessage());
    }
}
