package dev.jtune.plan;

import dev.jtune.config.Experiment;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

/** jtune plan for preference runs: the reference model it holds (or not), and pairs of sequences per micro-batch. */
class PreferencePlanTest {
    static final Path LLAMA = Path.of("src/test/resources/models/llama-tiny").toAbsolutePath();
    static final Path TOKENIZER = Path.of("configs/tokenizers/gpt2").toAbsolutePath();

    @TempDir
    Path tmp;

    private MemoryPlanner.Plan plan(String method, String... sets) throws IOException {
        Path data = Files.writeString(tmp.resolve("p.csv"), "prompt,chosen,rejected\nq,a,b\n");
        Path yaml = Files.writeString(tmp.resolve(method + ".yaml"), "model:\n  path: " + LLAMA + "\n  tokenizer: " + TOKENIZER
                + "\ndata:\n  train_file: " + data + "\n  format: " + (method.equals("sft") ? "text" : "preference")
                + "\n  max_seq_length: 64\ntraining:\n  output_dir: " + tmp.resolve("out") + "\n  method: " + method
                + "\n  device: cpu\n  precision: fp32\n  per_device_train_batch_size: 2\n");
        return MemoryPlanner.plan(PlanReport.request(Experiment.load(yaml, List.of(sets))));
    }

    @Test
    void fullFineTuningCountsTheFrozenReferenceAndTwiceTheRows() throws IOException {
        MemoryPlanner.Plan sft = plan("sft"), dpo = plan("dpo");
        long weights = sft.bytes("trainable_weights");   // fp32: the reference copy is as large as the trained weights
        assertEquals(weights, dpo.bytes("reference"));
        assertEquals(2 * sft.bytes("activations"), dpo.bytes("activations"), 0.02 * dpo.bytes("activations"), "pairs: 2 rows per item");
        assertEquals(0, plan("dpo", "preference.precompute_ref_log_probs=true").bytes("reference"));
        assertEquals(0, plan("dpo", "preference.reference_free=true").bytes("reference"));
        assertEquals(0, plan("orpo").bytes("reference"));
        assertEquals(0, plan("dpo", "lora.enabled=true").bytes("reference"), "LoRA: the base with the adapters off");
        PlanReport r = PlanReport.of("x", PlanReport.request(Experiment.load(tmp.resolve("dpo.yaml"), List.of())), new DeviceMemory.Budget(1L << 40, "test"));
        assertTrue(r.table().contains("reference model") && r.table().contains("2 pairs = 4 sequences"), r.table());
    }
}
