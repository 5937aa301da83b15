package dev.jtune.quant;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import dev.jtune.cli.CliTest;
import dev.jtune.infer.Perplexity;
import dev.jtune.io.WeightFiles;
import dev.jtune.kernels.Ops;
import dev.jtune.model.CausalLM;
import dev.jtune.model.ModelConfig;
import dev.jtune.model.ModelLoader;
import dev.jtune.model.ParameterSpec;
import dev.jtune.peft.AdapterLoader;
import dev.jtune.util.Tensors;
import org.bytedeco.javacpp.PointerScope;
import org.bytedeco.pytorch.Device;
import org.bytedeco.pytorch.NoGradGuard;
import org.bytedeco.pytorch.Tensor;
import org.bytedeco.pytorch.global.torch;
import org.bytedeco.pytorch.global.torch.ScalarType;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.CsvSource;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * A model over a 4-bit base, built by {@link QuantizedModelLoader} (quantized on load, or read pre-quantized) and run
 * by the real commands: its NLL against the independent float64 reference, perplexity and generate on a 4-bit dir,
 * and quantize-on-load against the dense model over the same dequantized weights (GPT-2's Conv1D included).
 */
@SuppressWarnings("try")
class FourBitBaseTest {
    static final ObjectMapper JSON = new ObjectMapper();
    static final Device CPU = new Device("cpu");
    static final Path PYTHON = Path.of("src/test/resources/quant/llama-tiny-nf4-python");

    @TempDir
    static Path tmp;
    static Path llama, llama4;

    @BeforeAll
    static void models() {
        llama = tmp.resolve("llama");
        CliTest.Run r = CliTest.run("init-model", "--arch", "llama", "--preset", "tiny", "--tokenizer", "configs/tokenizers/gpt2",
                "--out", llama.toString(), "--seed", "4");
        assertEquals(0, r.code(), r.err());
        llama4 = tmp.resolve("llama-nf4");
        r = CliTest.run("quantize", "--model", llama.toString(), "--out", llama4.toString(), "--quant-type", "nf4", "--double-quant");
        assertEquals(0, r.code(), r.err());
    }

    /**
     * The Python-written checkpoint (transformers + bitsandbytes layout) loaded as a 4-bit base, scored by the code
     * `jtune perplexity` runs: its mean NLL is the one the independent float64 transcription of Llama computed over
     * the same dequantized weights (1e-4, fp32).
     */
    @Test
    void preQuantizedBaseScoresThePythonNll() throws IOException {
        JsonNode exp = JSON.readTree(PYTHON.resolve("expected.json").toFile());
        long[] ids = new long[exp.get("input_ids").size()];
        for (int i = 0; i < ids.length; i++) ids[i] = exp.get("input_ids").get(i).asLong();
        try (CausalLM m = AdapterLoader.load(PYTHON, null, ScalarType.Float, CPU, Ops.AUTO, null); PointerScope s = new PointerScope()) {
            assertFalse(m.frozenLinears().isEmpty(), "the linear layers are 4-bit");
            assertTrue(m.parameters().keySet().stream().noneMatch(n -> n.contains("_proj.weight")), "no dequantized copy among the parameters");
            Perplexity.Result r = Perplexity.of(m, ids, ids.length, ids.length, e -> {});
            assertEquals(exp.get("mean_nll").asDouble(), r.meanNll(), 1e-4);
        }
    }

    /** The dense model over the dequantized weights of a 4-bit dir (the independent path: no QuantizedProjection). */
    static CausalLM dense(Path dir) {
        QuantizedCheckpoint c = QuantizedCheckpoint.open(dir);
        ModelConfig mc = ModelConfig.read(dir);
        Map<String, Tensor> params = new LinkedHashMap<>();
        for (ParameterSpec.Entry e : ParameterSpec.of(mc).values()) {
            QuantizedTensor q = c.quantized().get(e.name());
            Tensor t = q != null ? FourBitCodec.dequantize(q).to(ScalarType.Float) : c.tensor(e.name()).to(ScalarType.Float);
            if (q != null && mc.family() == ModelConfig.Family.GPT2) t = t.t().contiguous();   // stored as W^T
            t.retainReference();
            params.put(e.name(), t);
        }
        return ModelLoader.create(mc, params, ScalarType.Float, CPU, c);
    }

    /** `jtune perplexity` on a 4-bit dir equals the dense model over its dequantized weights (1e-4, fp32). */
    @Test
    void perplexityCommandOnAFourBitDir() throws IOException {
        Path text = Files.writeString(tmp.resolve("t.txt"), "Quantized bases keep four bits per weight, and the adapters learn the rest.");
        CliTest.Run r = CliTest.run("perplexity", "--model", llama4.toString(), "--text-file", text.toString(), "--json");
        assertEquals(0, r.code(), r.err());
        JsonNode got = JSON.readTree(r.out());
        long[] ids;
        try (dev.jtune.tokenizer.HfTokenizer tok = dev.jtune.tokenizer.HfTokenizer.load(llama4)) {
            ids = tok.encode(Files.readString(text), true).ids();
        }
        double want;
        double unquantized;
        try (CausalLM m = dense(llama4); PointerScope s = new PointerScope()) {
            want = Perplexity.of(m, ids, ids.length, ids.length / 2, e -> {}).meanNll();
        }
        try (CausalLM m = ModelLoader.load(llama, ScalarType.Float, CPU); PointerScope s = new PointerScope()) {
            unquantized = Perplexity.of(m, ids, ids.length, ids.length / 2, e -> {}).meanNll();
        }
        assertEquals(want, got.get("mean_nll").asDouble(), 1e-4);
        assertTrue(Math.abs(unquantized - want) > 1e-5, "quantization changes the weights: " + unquantized + " vs " + want);
    }

    @Test
    void generateOnAFourBitDir() {
        CliTest.Run r = CliTest.run("generate", "--model", llama4.toString(), "--prompt", "Hello", "--max-new-tokens", "4");
        assertEquals(0, r.code(), r.err());
        assertTrue(r.out().startsWith("Hello") && r.out().length() > "Hello\n".length(), r.out());
        CliTest.Run again = CliTest.run("generate", "--model", llama4.toString(), "--prompt", "Hello", "--max-new-tokens", "4");
        assertEquals(r.out(), again.out(), "greedy decoding is deterministic");
    }

    /**
     * Quantize-on-load gives the logits of the dense model over what `jtune quantize` wrote (same codes, bit for bit
     * through the codec): Llama, and GPT-2 whose Conv1D weights are quantized transposed.
     */
    @ParameterizedTest
    @CsvSource({"llama-tiny, nf4, true", "gpt2-tiny, fp4, false", "qwen2-tiny, nf4, false"})
    void quantizeOnLoadMatchesTheWrittenDir(String name, String type, boolean dq) {
        Path src = Path.of("src/test/resources/models/" + name);
        Path out = tmp.resolve(name + "-" + type + (dq ? "-dq" : ""));
        CliTest.Run r = dq ? CliTest.run("quantize", "--model", src.toString(), "--out", out.toString(), "--quant-type", type, "--double-quant")
                : CliTest.run("quantize", "--model", src.toString(), "--out", out.toString(), "--quant-type", type);
        assertEquals(0, r.code(), r.err());
        QuantizationConfig q = new QuantizationConfig(QuantType.parse(type, "test"), dq, "float32", List.of());
        Tensor ids = Tensors.longs(new long[][] {{1, 5, 9, 2, 7, 3, 8}});
        try (CausalLM onLoad = AdapterLoader.load(src, null, ScalarType.Float, CPU, Ops.AUTO, q);
             CausalLM written = dense(out); CausalLM full = ModelLoader.load(src, ScalarType.Float, CPU);
             PointerScope s = new PointerScope(); NoGradGuard ng = new NoGradGuard()) {
            assertEquals(ParameterSpec.of(onLoad.config()).values().stream()
                            .filter(e -> QuantizedModelLoader.quantizes(onLoad.config(), e.name(), List.of("lm_head"))).count(),
                    onLoad.frozenLinears().size());
            assertEquals(full.parameterCount(), onLoad.parameterCount(), "parameters counted at their original size");
            Tensor a = onLoad.forward(ids), b = written.forward(ids), c = full.forward(ids);
            float[] fa = Tensors.toFloats(a), fb = Tensors.toFloats(b), fc = Tensors.toFloats(c);
            double maxDiff = 0;
            for (int i = 0; i < fa.length; i++) {
                assertEquals(fb[i], fa[i], 1e-5 + 1e-4 * Math.abs(fb[i]), "logit " + i);
                maxDiff = Math.max(maxDiff, Math.abs(fc[i] - fa[i]));
            }
            assertTrue(maxDiff > 1e-4, "the 4-bit base differs from the full-precision one");
        }
    }
}
