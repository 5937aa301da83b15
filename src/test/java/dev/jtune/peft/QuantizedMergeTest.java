package dev.jtune.peft;

import com.fasterxml.jackson.databind.ObjectMapper;
import dev.jtune.cli.CliTest;
import dev.jtune.kernels.Ops;
import dev.jtune.model.CausalLM;
import dev.jtune.model.ModelConfig;
import dev.jtune.model.ModelLoader;
import dev.jtune.quant.QuantType;
import dev.jtune.quant.QuantizationConfig;
import dev.jtune.util.Tensors;
import org.bytedeco.javacpp.PointerScope;
import org.bytedeco.pytorch.Device;
import org.bytedeco.pytorch.NoGradGuard;
import org.bytedeco.pytorch.Tensor;
import org.bytedeco.pytorch.global.torch.ScalarType;
import org.junit.jupiter.api.io.TempDir;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import java.util.Map;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * `jtune merge` of an adapter trained on a 4-bit base: by default onto the dequantized weights it was trained
 * against (the merged model gives the logits of the 4-bit base + adapter), with --base onto the original checkpoint
 * (the logits of the 16/32-bit base + adapter); both for quantize-on-load (recorded in the adapter) and a
 * pre-quantized --model; Llama and GPT-2 (Conv1D).
 */
@SuppressWarnings("try")
class QuantizedMergeTest {
    static final Device CPU = new Device("cpu");
    @TempDir
    Path tmp;

    /** Logits of a model for fixed ids, as floats. */
    static float[] logits(CausalLM m) {
        try (PointerScope s = new PointerScope(); NoGradGuard ng = new NoGradGuard()) {
            Tensor ids = Tensors.longs(new long[][] {{1, 5, 9, 2, 7, 3, 8, 4}});
            return Tensors.toFloats(m.forward(ids));
        }
    }

    static double maxDiff(float[] a, float[] b) {
        double d = 0;
        for (int i = 0; i < a.length; i++) d = Math.max(d, Math.abs(a[i] - b[i]));
        return d;
    }

    static void assertClose(float[] want, float[] got, String what) {
        for (int i = 0; i < want.length; i++) assertEquals(want[i], got[i], 2e-5 + 1e-4 * Math.abs(want[i]), what + " logit " + i);
    }

    /** A random adapter (B random too, so it changes the output) on every linear module, saved as training saves it. */
    Path adapter(Path base, String name, QuantizationConfig q) {
        ModelConfig c = ModelConfig.read(base);
        LoraSpec spec = new LoraSpec(4, 8, 0.0, List.of("all-linear"), false, false);
        Map<String, LoraAdapter> a = Lora.create(c, spec, 3, CPU, "test");
        Path dir = tmp.resolve(name);
        PeftAdapter.save(dir, spec, a, c, base.toString(), q);
        return dir;
    }

    @ParameterizedTest
    @ValueSource(strings = {"llama-tiny", "gpt2-tiny"})
    void mergesOntoTheDequantizedBaseByDefaultAndOntoTheOriginalWithBase(String name) throws IOException {
        Path base = Path.of("src/test/resources/models/" + name);
        QuantizationConfig q = new QuantizationConfig(QuantType.NF4, true, "float32", List.of());
        Path a = adapter(base, "qlora", q);
        assertTrue(Files.isRegularFile(a.resolve(PeftAdapter.BASE_QUANTIZATION)));

        Path merged = tmp.resolve("merged"), original = tmp.resolve("original");
        CliTest.Run r = CliTest.run("merge", "--model", base.toString(), "--adapter", a.toString(), "--out", merged.toString());
        assertEquals(0, r.code(), r.err());
        assertTrue(r.out().contains("onto the dequantized 4-bit base"), r.out());
        r = CliTest.run("merge", "--model", base.toString(), "--adapter", a.toString(), "--out", original.toString(), "--base", base.toString());
        assertEquals(0, r.code(), r.err());

        float[] fourBitPlusAdapter, fullPlusAdapter, m4, m16;
        try (CausalLM m = AdapterLoader.load(base, a, ScalarType.Float, CPU, Ops.AUTO)) {   // the adapter's record picks the 4-bit base
            assertFalse(m.frozenLinears().isEmpty(), "the adapter's base is 4-bit");
            fourBitPlusAdapter = logits(m);
        }
        try (CausalLM m = ModelLoader.load(base, ScalarType.Float, CPU)) {
            m.setAdapters(PeftAdapter.load(a, m.config(), CPU, false).adapters());
            fullPlusAdapter = logits(m);
        }
        try (CausalLM m = ModelLoader.load(merged, ScalarType.Float, CPU)) {
            m4 = logits(m);
        }
        try (CausalLM m = ModelLoader.load(original, ScalarType.Float, CPU)) {
            m16 = logits(m);
        }
        assertClose(fourBitPlusAdapter, m4, "default merge = 4-bit base + adapter");
        assertClose(fullPlusAdapter, m16, "--base merge = original base + adapter");
        assertTrue(maxDiff(m4, m16) > 1e-3, "the two merges differ by the quantization error: " + maxDiff(m4, m16));
        assertFalse(new ObjectMapper().readTree(merged.resolve("config.json").toFile()).has("quantization_config"));
    }

    /** A pre-quantized --model (what `jtune quantize` writes): the merge dequantizes with its stored maps. */
    @ParameterizedTest
    @ValueSource(strings = {"llama-tiny", "gpt2-tiny"})
    void mergesOntoAPreQuantizedDirectory(String name) throws IOException {
        Path base = Path.of("src/test/resources/models/" + name);
        Path q = tmp.resolve("q");
        assertEquals(0, CliTest.run("quantize", "--model", base.toString(), "--out", q.toString(), "--quant-type", "fp4").code());
        Path a = adapter(base, "plain", null);
        Path merged = tmp.resolve("merged");
        CliTest.Run r = CliTest.run("merge", "--model", q.toString(), "--adapter", a.toString(), "--out", merged.toString());
        assertEquals(0, r.code(), r.err());
        float[] want, got;
        try (CausalLM m = AdapterLoader.load(q, a, ScalarType.Float, CPU, Ops.AUTO)) {
            want = logits(m);
        }
        try (CausalLM m = ModelLoader.load(merged, ScalarType.Float, CPU)) {
            got = logits(m);
        }
        assertClose(want, got, "merged = pre-quantized base + adapter");
        assertFalse(new ObjectMapper().readTree(merged.resolve("config.json").toFile()).has("quantization_config"));
        // --base onto a 4-bit dir, and --base for a 16-bit adapter, are refused (exit 2) with the reason
        r = CliTest.run("merge", "--model", q.toString(), "--adapter", a.toString(), "--out", tmp.resolve("x").toString(), "--base", q.toString());
        assertEquals(2, r.code(), r.err());
        assertTrue(r.err().contains("is a 4-bit checkpoint"), r.err());
        r = CliTest.run("merge", "--model", base.toString(), "--adapter", a.toString(), "--out", tmp.resolve("y").toString(), "--base", base.toString());
        assertEquals(2, r.code(), r.err());
        assertTrue(r.err().contains("--base is for adapters trained on a 4-bit base"), r.err());
    }
}
