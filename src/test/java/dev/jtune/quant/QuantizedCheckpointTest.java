package dev.jtune.quant;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import dev.jtune.cli.CliTest;
import dev.jtune.io.SafetensorsFile;
import dev.jtune.io.WeightFiles;
import dev.jtune.model.CausalLM;
import dev.jtune.model.ModelConfig;
import dev.jtune.model.ModelLoader;
import dev.jtune.model.ParameterSpec;
import dev.jtune.util.Tensors;
import org.bytedeco.pytorch.Device;
import org.bytedeco.pytorch.NoGradGuard;
import org.bytedeco.pytorch.Scalar;
import org.bytedeco.pytorch.global.torch.ScalarType;
import org.bytedeco.javacpp.PointerScope;
import org.bytedeco.pytorch.Tensor;
import org.bytedeco.pytorch.global.torch;
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

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * {@code jtune quantize} then reading the directory back: every quantized weight's stored tensors equal
 * the codec's output for the original weight, its dequantized values equal the codec's bit for bit, the
 * unquantized tensors equal the originals, config.json carries transformers' quantization_config, and the
 * tokenizer files travel along.
 */
@SuppressWarnings("try")
class QuantizedCheckpointTest {
    static final ObjectMapper JSON = new ObjectMapper();
    @TempDir
    Path tmp;

    @ParameterizedTest
    @CsvSource({"llama-tiny,nf4,true", "llama-tiny,fp4,false", "qwen3-tiny,nf4,false", "qwen2-tiny,fp4,true",
            "mistral-tiny,nf4,true"})
    void quantizeThenReadBackGivesTheCodecsValues(String model, String quantType, boolean doubleQuant) throws IOException {
        Path in = Path.of("src/test/resources/models", model);
        Path out = tmp.resolve("q");
        QuantType type = QuantType.parse(quantType, "test");
        ModelQuantizer.Result r = ModelQuantizer.quantize(in, out, type, doubleQuant, List.of(), ModelQuantizer.MAX_SHARD_BYTES);
        assertFalse(r.quantized().isEmpty());
        try (PointerScope scope = new PointerScope();
             WeightFiles original = WeightFiles.open(in);
             QuantizedCheckpoint c = QuantizedCheckpoint.open(out)) {
            assertEquals(type, c.config().type());
            assertEquals(doubleQuant, c.config().doubleQuant());
            assertEquals(r.quantized(), List.copyOf(c.quantized().keySet()));
            long params = 0;
            for (String name : original.names()) params += original.info(name).numel();
            assertEquals(params, c.parameterCount(), "every parameter is counted once");
            for (String name : original.names()) {
                Tensor w = original.tensor(name);
                QuantizedTensor stored = c.quantized().get(name);
                if (stored == null) {
                    assertTrue(torch.equal(w, c.tensor(name)), name + " is stored as it was");
                    assertFalse(name.contains("_proj.weight"), name + ": every decoder projection is quantized");
                    continue;
                }
                QuantizedTensor expected = FourBitCodec.quantize(w, type, doubleQuant, name);
                assertEquals(expected.state(), stored.state(), name);
                assertArrayEquals(Tensors.shape(w), stored.state().shape(), name);
                assertTrue(torch.equal(expected.packed(), stored.packed()), name + ": packed codes");
                assertTrue(torch.equal(expected.absmax(), stored.absmax()), name + ": absmax");
                assertTrue(torch.equal(expected.quantMap(), stored.quantMap()), name + ": quant map");
                if (doubleQuant) {
                    assertTrue(torch.equal(expected.nestedAbsmax(), stored.nestedAbsmax()), name + ": nested absmax");
                    assertTrue(torch.equal(expected.nestedQuantMap(), stored.nestedQuantMap()), name + ": nested map");
                }
                Tensor fromFile = c.dequantize(name);
                Tensor fromCodec = FourBitCodec.dequantize(expected);
                assertTrue(torch.equal(fromCodec, fromFile), name + ": dequantized values equal the codec's exactly");
                // and they are a 4-bit approximation of the weight: within half a code step of absmax per block
                float maxErr = torch.max(fromFile.sub(w).abs()).item_float();
                float maxAbs = torch.max(w.abs()).item_float();
                assertTrue(maxErr <= 0.5f * maxAbs * 1.01f, name + ": max error " + maxErr + " vs max |w| " + maxAbs);
            }
        }
        JsonNode qc = JSON.readTree(out.resolve("config.json").toFile()).get("quantization_config");
        assertEquals("bitsandbytes", qc.get("quant_method").asText());
        assertTrue(qc.get("load_in_4bit").asBoolean());
        assertEquals(quantType, qc.get("bnb_4bit_quant_type").asText());
        assertEquals(doubleQuant, qc.get("bnb_4bit_use_double_quant").asBoolean());
        assertEquals("uint8", qc.get("bnb_4bit_quant_storage").asText());
        assertEquals("[\"lm_head\"]", qc.get("llm_int8_skip_modules").toString());
        assertTrue(Files.isRegularFile(out.resolve("generation_config.json")));
    }

    /**
     * A checkpoint written by the independent Python quantizer and safetensors writer
     * ({@code src/test/python/quant/write_bnb_checkpoint.py}): jtune reads it, dequantizes every weight to
     * the Python values exactly, and its own {@code quantize} of the same model writes identical tensors.
     */
    @Test
    void readsACheckpointItDidNotWriteAndWritesTheSameOne() throws IOException {
        Path python = Path.of("src/test/resources/quant/llama-tiny-nf4-python");
        JsonNode expected = JSON.readTree(python.resolve("expected.json").toFile()).get("dequantized_f32");
        Path ours = tmp.resolve("ours");
        ModelQuantizer.quantize(Path.of("src/test/resources/models/llama-tiny"), ours, QuantType.NF4, true, List.of(),
                ModelQuantizer.MAX_SHARD_BYTES);
        try (PointerScope scope = new PointerScope();
             QuantizedCheckpoint theirs = QuantizedCheckpoint.open(python);
             QuantizedCheckpoint mine = QuantizedCheckpoint.open(ours)) {
            assertEquals(expected.size(), theirs.quantized().size());
            assertEquals(List.of("lm_head"), theirs.config().effectiveSkipModules(), "llm_int8_skip_modules null = the head");
            for (Map.Entry<String, QuantizedTensor> e : theirs.quantized().entrySet()) {
                String name = e.getKey();
                FourBitReferenceTest.assertValues(FourBitReferenceTest.f32(expected.get(name).asText()),
                        Tensors.toFloats(theirs.dequantize(name)), name + " (python file)");
                QuantizedTensor a = e.getValue(), b = mine.quantized().get(name);
                assertEquals(a.state(), b.state(), name);
                assertTrue(torch.equal(a.packed(), b.packed()) && torch.equal(a.absmax(), b.absmax())
                        && torch.equal(a.quantMap(), b.quantMap()) && torch.equal(a.nestedAbsmax(), b.nestedAbsmax())
                        && torch.equal(a.nestedQuantMap(), b.nestedQuantMap()), name + ": the same tensors as jtune writes");
            }
            assertEquals(theirs.plain(), mine.plain());
            for (String p : theirs.plain()) assertTrue(torch.equal(theirs.tensor(p), mine.tensor(p)), p);
        }
    }

    /**
     * The model over the dequantized weights of the Python-written checkpoint gives the logits and mean NLL
     * the independent float64 transcription of transformers' Llama computed over the same weights (1e-4, fp32);
     * the same weights unpacked with the nibbles swapped do not (the test can fail).
     */
    @Test
    void modelOnDequantizedWeightsGivesTheIndependentLogits() throws IOException {
        Path python = Path.of("src/test/resources/quant/llama-tiny-nf4-python");
        JsonNode exp = JSON.readTree(python.resolve("expected.json").toFile());
        long[] ids = new long[exp.get("input_ids").size()];
        for (int i = 0; i < ids.length; i++) ids[i] = exp.get("input_ids").get(i).asLong();
        double[] nll = new double[2];
        for (int swapped = 0; swapped < 2; swapped++) {
            QuantizedCheckpoint c = QuantizedCheckpoint.open(python);
            ModelConfig mc = ModelConfig.read(python);
            Map<String, Tensor> params = new LinkedHashMap<>();
            for (ParameterSpec.Entry e : ParameterSpec.of(mc).values()) {
                QuantizedTensor q = c.quantized().get(e.name());
                if (q != null && swapped == 1) {
                    Tensor p = q.packed();
                    Tensor wrong = p.bitwise_and(new Scalar(15)).bitwise_left_shift(new Scalar(4)).bitwise_or(p.bitwise_right_shift(new Scalar(4)));
                    q = new QuantizedTensor(q.state(), wrong, q.absmax(), q.quantMap(), q.nestedAbsmax(), q.nestedQuantMap());
                }
                Tensor t = q != null ? FourBitCodec.dequantize(q) : c.tensor(e.name());
                t.retainReference();
                params.put(e.name(), t);
            }
            try (CausalLM model = ModelLoader.create(mc, params, ScalarType.Float, new Device("cpu"), c);
                 PointerScope scope = new PointerScope(); NoGradGuard ng = new NoGradGuard()) {
                float[] got = Tensors.toFloats(model.forward(Tensors.longs(new long[][] {ids})));
                int v = (int) mc.vocabSize();
                double sum = 0;
                for (int t = 0; t + 1 < ids.length; t++) {
                    double m = Double.NEGATIVE_INFINITY, z = 0;
                    for (int k = 0; k < v; k++) m = Math.max(m, got[t * v + k]);
                    for (int k = 0; k < v; k++) z += Math.exp(got[t * v + k] - m);
                    sum += m + Math.log(z) - got[t * v + (int) ids[t + 1]];
                    if (swapped == 0) {
                        for (int k = 0; k < v; k++) {
                            double want = exp.get("logits").get(t).get(k).asDouble();
                            assertEquals(want, got[t * v + k], 1e-4 * (1 + Math.abs(want)), "logit [" + t + ", " + k + "]");
                        }
                    }
                }
                nll[swapped] = sum / (ids.length - 1);
            }
        }
        assertEquals(exp.get("mean_nll").asDouble(), nll[0], 1e-4, "mean NLL over the dequantized weights");
        assertTrue(Math.abs(nll[1] - nll[0]) > 1e-2, "swapped nibbles must change the NLL: " + nll[1] + " vs " + nll[0]);
    }

    @Test
    void storedLayoutIsBitsandbytes() throws IOException {
        Path out = tmp.resolve("q");
        ModelQuantizer.quantize(Path.of("src/test/resources/models/llama-tiny"), out, QuantType.NF4, true, List.of(),
                ModelQuantizer.MAX_SHARD_BYTES);
        try (PointerScope scope = new PointerScope(); SafetensorsFile f = SafetensorsFile.open(out.resolve("model.safetensors"))) {
            String w = "model.layers.0.mlp.down_proj.weight";   // (32, 64): 2048 values, 32 blocks
            assertArrayEquals(new long[] {1024, 1}, f.info(w).shape());
            assertEquals("U8", f.info(w).dtype().name());
            assertArrayEquals(new long[] {32}, f.info(w + ".absmax").shape());
            assertEquals("U8", f.info(w + ".absmax").dtype().name());
            assertArrayEquals(new long[] {16}, f.info(w + ".quant_map").shape());
            assertArrayEquals(new long[] {1}, f.info(w + ".nested_absmax").shape());
            assertArrayEquals(new long[] {256}, f.info(w + ".nested_quant_map").shape());
            String json = new String(dev.jtune.util.Tensors.toBytes(f.tensor(w + ".quant_state.bitsandbytes__nf4")), java.nio.charset.StandardCharsets.UTF_8);
            assertTrue(json.startsWith("{\"quant_type\": \"nf4\", \"blocksize\": 64, \"dtype\": \"float32\", \"shape\": [32, 64], "
                    + "\"nested_blocksize\": 256, \"nested_dtype\": \"float32\", \"nested_offset\": "), json);
            assertEquals("pt", f.metadata().get("format"));
            assertEquals("F32", f.info("lm_head.weight").dtype().name(), "the output head stays unquantized");
            assertEquals("F32", f.info("model.embed_tokens.weight").dtype().name());
        }
    }

    @Test
    void cliQuantizeInspectAndMistakes() throws IOException {
        Path base = tmp.resolve("base");
        CliTest.Run init = CliTest.run("init-model", "--arch", "llama", "--preset", "tiny", "--tokenizer", "configs/tokenizers/gpt2",
                "--out", base.toString(), "--seed", "5");
        assertEquals(0, init.code(), init.err());
        Path out = tmp.resolve("nf4");
        CliTest.Run q = CliTest.run("quantize", "--model", base.toString(), "--out", out.toString(), "--double-quant");
        assertEquals(0, q.code(), q.err());
        assertTrue(q.out().contains("to nf4 with double quantization") && q.out().contains("bytes per parameter"), q.out());
        for (String f : new String[] {"tokenizer.json", "tokenizer_config.json", "config.json", "model.safetensors"}) {
            assertTrue(Files.isRegularFile(out.resolve(f)), f);
        }
        CliTest.Run table = CliTest.run("inspect", out.toString());
        assertEquals(0, table.code(), table.err());
        assertTrue(table.out().contains("4-bit nf4 with double quantization") && table.out().contains("model.layers.*.mlp.up_proj")
                && table.out().contains("kept 16/32-bit lm_head"), table.out());
        JsonNode j = JSON.readTree(CliTest.run("inspect", "--json", out.toString()).out());
        long quantizedParams = j.get("quantized_parameters").asLong();
        long quantizedBytes = j.get("quantized_bytes").asLong();
        assertEquals(j.get("quantized_modules").size(), 7 * 2);
        // NF4 + double quant: 0.5 B per value + 1 B per 64 (absmax code) + per weight 4·16 + 4·256 + 4 + JSON
        assertTrue(quantizedBytes > quantizedParams / 2 && quantizedBytes < quantizedParams / 2 + quantizedParams / 64 + 14 * 1400,
                quantizedBytes + " bytes for " + quantizedParams);
        assertEquals(j.get("weight_bytes").asDouble() / j.get("parameters").asDouble(), j.get("bytes_per_parameter").asDouble(), 1e-12);

        assertUserError(CliTest.run("quantize", "--model", base.toString(), "--out", out.toString()), "not empty");
        assertUserError(CliTest.run("quantize", "--model", base.toString(), "--out", tmp.resolve("x").toString(), "--quant-type", "int4"),
                "--quant-type", "int4", "nf4 or fp4");
        assertUserError(CliTest.run("quantize", "--model", out.toString(), "--out", tmp.resolve("y").toString()), "already quantized");
        Path gpt2 = tmp.resolve("gpt2");
        assertEquals(0, CliTest.run("init-model", "--arch", "gpt2", "--preset", "tiny", "--tokenizer", "configs/tokenizers/gpt2",
                "--out", gpt2.toString()).code());
        // GPT-2's Conv1D weights (stored (in, out)) are quantized as W^T, as bitsandbytes stores them: state shape (out, in)
        CliTest.Run g = CliTest.run("quantize", "--model", gpt2.toString(), "--out", tmp.resolve("z").toString());
        assertEquals(0, g.code(), g.err());
        try (QuantizedCheckpoint c = QuantizedCheckpoint.open(tmp.resolve("z"))) {
            long d = ModelConfig.read(gpt2).hiddenSize();
            assertArrayEquals(new long[] {3 * d, d}, c.quantized().get("transformer.h.0.attn.c_attn.weight").state().shape());
        }
    }

    static void assertUserError(CliTest.Run r, String... mustContain) {
        assertEquals(2, r.code(), "exit code; stderr: " + r.err());
        for (String s : mustContain) assertTrue(r.err().contains(s), "stderr should contain '" + s + "': " + r.err());
        assertFalse(r.err().contains("\tat "), "no stack trace: " + r.err());
    }

}
