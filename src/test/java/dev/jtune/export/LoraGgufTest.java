package dev.jtune.export;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.node.ObjectNode;
import dev.jtune.model.CausalLM;
import dev.jtune.model.ModelLoader;
import dev.jtune.peft.Lora;
import dev.jtune.peft.LoraAdapter;
import dev.jtune.peft.LoraSpec;
import dev.jtune.peft.PeftAdapter;
import dev.jtune.tokenizer.HfTokenizer;
import dev.jtune.util.Tensors;
import org.bytedeco.javacpp.PointerScope;
import org.bytedeco.pytorch.Device;
import org.bytedeco.pytorch.NoGradGuard;
import org.bytedeco.pytorch.global.torch.ScalarType;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.Locale;
import java.util.Map;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * LoRA in llama.cpp: {@code --format gguf-lora} applied to the base GGUF (llama.cpp's --lora) gives the
 * log-probabilities of the merged export and of jtune's adapted model, for a Llama (q/k rows permuted: B's rows
 * are) and GPT-2 (Conv1D weights: A and B keep PEFT's layout); the adapter's metadata says what llama.cpp reads.
 */
@SuppressWarnings("try")
class LoraGgufTest {
    static final int POSITIONS = 4;
    /** f32 everywhere; llama.cpp computes the adapter as B(Ax) beside Wx, the merged file as (W + BA)x. */
    static final double TOL = 1e-3;

    @TempDir
    Path work;

    @Test
    void adapterGgufInLlamaCppEqualsMergedExport() throws Exception {
        LlamaCpp.assumeInstalled();
        List<String> archs = List.of("llama", "gpt2");
        List<ObjectNode> jobs = new ArrayList<>();
        List<float[]> adapted = new ArrayList<>();
        List<long[]> seqs = new ArrayList<>();
        List<Integer> vocabs = new ArrayList<>();
        int seed = 3;
        for (String arch : archs) {
            Path tok = TinyModels.tokenizer(arch.equals("gpt2") ? "gpt2" : "torchtune-tiny", work);
            Path model = TinyModels.write(arch, "tiny", tok, work.resolve(arch), seed++, null);
            Path adapterDir = work.resolve(arch + "-adapter");
            long[] ids;
            try (HfTokenizer t = HfTokenizer.load(model)) {
                ids = Arrays.copyOf(t.encode("El pingüino comió ñoquis con jamón 🐧 y luego durmió.", false).ids(), 8);
            }
            seqs.add(ids);
            try (CausalLM m = ModelLoader.load(model, ScalarType.Float, new Device("cpu")); NoGradGuard ng = new NoGradGuard();
                 PointerScope s = new PointerScope()) {
                LoraSpec spec = new LoraSpec(4, 8, 0.0, List.of("all-linear"), false, false);   // B random: a real change
                Map<String, LoraAdapter> adapters = Lora.create(m.config(), spec, 5, new Device("cpu"), "test");
                m.setAdapters(adapters);
                adapted.add(Tensors.toFloats(m.forward(Tensors.longs(new long[][] {ids}))));
                vocabs.add(m.config().vocabSize());
                PeftAdapter.save(adapterDir, spec, adapters, m.config(), model.toString());
            }
            Path base = work.resolve(arch + "-base.gguf"), merged = work.resolve(arch + "-merged.gguf"), lora = work.resolve(arch + "-lora.gguf");
            GgufExporter.export(model, null, GgufExporter.Format.GGUF, ExportType.F32, base, null);
            GgufExporter.export(model, adapterDir, GgufExporter.Format.GGUF, ExportType.F32, merged, null);
            GgufExporter.export(model, adapterDir, GgufExporter.Format.GGUF_LORA, ExportType.F32, lora, null);
            for (Path[] p : new Path[][] {{merged, null}, {base, lora}, {base, null}}) {
                ObjectNode j = LlamaCpp.job(p[0]);
                j.put("parse", false);
                if (p[1] != null) j.put("lora", p[1].toAbsolutePath().toString());
                LlamaCpp.ids(j, "logitTokens", ids);
                j.put("logitPositions", POSITIONS);
                jobs.add(j);
            }
        }
        List<JsonNode> out = LlamaCpp.run(work, jobs);
        for (int a = 0; a < archs.size(); a++) {
            JsonNode merged = out.get(3 * a), withLora = out.get(3 * a + 1), base = out.get(3 * a + 2);
            int v = vocabs.get(a);
            double dMerged = GgufLlamaCppTest.maxDiff(adapted.get(a), v, merged.get("logProbs"), POSITIONS);
            double dLora = GgufLlamaCppTest.maxDiff(adapted.get(a), v, withLora.get("logProbs"), POSITIONS);
            double dBase = GgufLlamaCppTest.maxDiff(adapted.get(a), v, base.get("logProbs"), POSITIONS);
            System.out.printf(Locale.ROOT, "%s: max |log-softmax difference| from jtune's adapted model: merged GGUF %.2e, base + LoRA GGUF %.2e, base alone %.2e%n",
                    archs.get(a), dMerged, dLora, dBase);
            assertTrue(dMerged <= TOL, archs.get(a) + ": merged export differs by " + dMerged);
            assertTrue(dLora <= TOL, archs.get(a) + ": base + LoRA GGUF differs by " + dLora);
            assertTrue(dBase > 10 * TOL, archs.get(a) + ": the adapter must change the model for this test to mean anything (" + dBase + ")");

            JsonNode md = withLora.get("lora").get("metadata");
            assertEquals("adapter", md.get("general.type").get("value").asText());
            assertEquals("lora", md.get("adapter.type").get("value").asText());
            assertEquals(8.0, md.get("adapter.lora.alpha").get("value").asDouble(), 1e-6);
            assertEquals(archs.get(a), md.get("general.architecture").get("value").asText());
            for (JsonNode t : withLora.get("lora").get("tensors")) {
                String name = t.get("name").asText();
                assertTrue(name.matches("blk\\.\\d+\\.[a-z_]+\\.weight\\.lora_[ab]"), name);
                // GGUF shapes are innermost first: lora_a (r, in) reads [in, r], lora_b (out, r) reads [r, out]
                int rank = name.endsWith("lora_a") ? t.get("shape").get(1).asInt() : t.get("shape").get(0).asInt();
                assertEquals(4, rank, name + ": rank");
            }
        }
    }
}
