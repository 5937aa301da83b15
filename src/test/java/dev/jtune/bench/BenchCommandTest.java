package dev.jtune.bench;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ObjectNode;
import dev.jtune.cli.CliTest;
import dev.jtune.model.ModelConfig;
import dev.jtune.model.ModelInit;
import dev.jtune.peft.LoraTargets;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNotNull;
import static org.junit.jupiter.api.Assertions.assertTrue;

/** `jtune bench` on the CPU: the tiny shape for a couple of steps, the JSON fields and their sanity, and the FLOPs formula. */
class BenchCommandTest {
    /** The CLI tests' runner: jtune in this JVM with stdout and stderr captured. */
    static CliTest.Run run(String... args) {
        return CliTest.run(args);
    }

    static final ObjectMapper JSON = new ObjectMapper();

    static void assertUserError(CliTest.Run r, String mustContain) {
        assertEquals(2, r.code(), "exit code; stderr: " + r.err());
        assertTrue(r.err().contains(mustContain), "stderr should contain '" + mustContain + "': " + r.err());
        assertFalse(r.err().contains("\tat "), "no stack trace: " + r.err());
    }

    /** bench --method dpo times DPO steps on synthetic pairs; the first loss is ln 2 (LoRA starts as a no-op: policy = reference). */
    @Test
    void dpoIsBenchedOnPairs() throws Exception {
        CliTest.Run r = run("bench", "--shape", "tiny", "--seq-len", "16", "--micro-batch", "2", "--lora-r", "4", "--steps", "1",
                "--warmup", "1", "--gemm-size", "64", "--method", "dpo", "--json");
        assertEquals(0, r.code(), r.err());
        var j = JSON.readTree(r.out());
        assertEquals("dpo", j.get("config").get("method").asText());
        assertEquals(Math.log(2), j.get("loss").get("first").asDouble(), 1e-6, r.out());
        assertUserError(run("bench", "--shape", "tiny", "--seq-len", "16", "--method", "dpo", "--steps", "1"), "add --lora-r N");
    }

    /** bench --gradient-checkpointing records the setting in its JSON, so plan/compare.py predicts the same run. */
    @Test
    void checkpointingIsRecorded() throws Exception {
        CliTest.Run r = run("bench", "--shape", "tiny", "--seq-len", "16", "--steps", "1", "--warmup", "1", "--gemm-size", "64",
                "--gradient-checkpointing", "--json");
        assertEquals(0, r.code(), r.err());
        assertTrue(JSON.readTree(r.out()).get("config").get("gradient_checkpointing").asBoolean(), r.out());
    }

    @Test
    void tinyShapeFullFineTuningJson(@TempDir Path tmp) throws Exception {
        Path jfr = tmp.resolve("p.jfr");
        CliTest.Run r = run("bench", "--arch", "llama", "--shape", "tiny", "--seq-len", "32", "--micro-batch", "2", "--grad-accum", "2",
                "--steps", "3", "--warmup", "1", "--gemm-size", "256", "--profile", jfr.toString(), "--profile-period-ms", "1", "--json");
        assertEquals(0, r.code(), r.err());
        JsonNode j = JSON.readTree(r.out());
        assertEquals("jtune", j.get("tool").asText());
        JsonNode c = j.get("config");
        assertEquals("full", c.get("mode").asText());
        assertEquals("fp32", c.get("precision").asText());
        assertEquals(2 * 32 * 2, c.get("tokens_per_step").asLong());
        assertFalse(c.get("gradient_checkpointing").asBoolean(), "off unless --gradient-checkpointing (plan/compare.py reads it)");
        assertEquals(c.get("parameters").asLong(), c.get("trainable_parameters").asLong());
        assertEquals(3, j.get("steps").get("timed").asInt());
        assertEquals("auto", c.get("kernels").get("mode").asText());
        assertTrue(c.get("kernels").get("rmsNorm").asText().startsWith("LibTorch (CPU tensors)"), c.toString());
        double tps = j.get("tokens_per_s").asDouble();
        assertTrue(tps > 0 && Double.isFinite(tps), "tokens/s " + tps);
        JsonNode st = j.get("step_time_s");
        assertTrue(st.get("p10").asDouble() <= st.get("median").asDouble() && st.get("median").asDouble() <= st.get("p90").asDouble(), st.toString());
        assertEquals(128 / st.get("mean").asDouble(), tps, tps * 1e-6, "tokens/s = tokens per step / mean step time");
        assertEquals(Flops.fullPerToken(Shapes.config("tiny", null), 32), j.get("flops_per_token").get("full_6n_attn").asDouble(), 1e-6);
        assertTrue(j.get("flops_per_token").get("lora_adjusted").isNull());
        // MFU is the model's FLOP/s over the GEMM's, both measured in this run: checked as that ratio, not as <= 1, which a
        // machine shared with other jobs breaks (the GEMM measured while a neighbour ran: 4.2 seen here)
        double model = j.get("model_tflops").get("full_6n_attn").asDouble();
        double fp32 = j.get("gemm").get("fp32_tflops").asDouble(), best = Math.max(fp32, j.get("gemm").get("bf16_tflops").asDouble());
        assertTrue(model > 0 && Double.isFinite(model), "model TFLOP/s " + model);
        assertEquals(model / fp32, j.get("mfu").get("vs_gemm_same_dtype").asDouble(), 1e-9 * model / fp32);
        assertEquals(model / best, j.get("mfu").get("vs_gemm_best").asDouble(), 1e-9 * model / best);
        assertTrue(j.get("mfu").get("vs_datasheet").isNull(), "no datasheet peak on a CPU");
        assertTrue(j.get("gemm").get("fp32_tflops").asDouble() > 0 && j.get("gemm").get("bf16_tflops").asDouble() > 0);
        assertEquals("process_peak_rss", j.get("memory").get("kind").asText());
        assertTrue(j.get("memory").get("peak_bytes").asLong() > 50L << 20, "peak RSS of a JVM with LibTorch");
        assertTrue(j.get("memory").get("step_peak_bytes").asLong() > 50L << 20, j.get("memory").toString());
        assertTrue(Double.isFinite(j.get("loss").get("last").asDouble()));
        JsonNode p = j.get("profile");
        assertNotNull(p);
        assertTrue(Files.size(jfr) > 0);
        assertTrue(p.get("samples").asLong() > 0, p.toString());
        assertTrue(p.get("libtorch").asLong() > 0, p.toString());
    }

    @Test
    void tinyShapeLoraTableAndJson() throws Exception {
        CliTest.Run r = run("bench", "--shape", "tiny", "--lora-r", "4", "--lora-targets", "q_proj,v_proj", "--precision", "bf16", "--seq-len", "16",
                "--steps", "2", "--warmup", "1", "--gemm-size", "128", "--json");
        assertEquals(0, r.code(), r.err());
        JsonNode j = JSON.readTree(r.out());
        assertEquals("lora", j.get("config").get("mode").asText());
        assertEquals("bf16", j.get("config").get("precision").asText());
        assertEquals(4, j.get("config").get("lora_modules").asInt());   // q and v in 2 layers
        ModelConfig cfg = Shapes.config("tiny", null);
        long adapters = Flops.adapterParameters(4, LoraTargets.resolve(cfg, List.of("q_proj", "v_proj"), "t"));
        assertEquals(adapters, j.get("config").get("trainable_parameters").asLong());
        assertEquals(Flops.loraPerToken(cfg, 16, adapters), j.get("flops_per_token").get("lora_adjusted").asDouble(), 1e-6);
        assertEquals("lora_adjusted", j.get("mfu").get("flops").asText());
        assertEquals("bf16", j.get("gemm").get("same_dtype").asText());

        CliTest.Run table = run("bench", "--shape", "tiny", "--seq-len", "16", "--steps", "1", "--warmup", "0", "--gemm-size", "128");
        assertEquals(0, table.code(), table.err());
        assertTrue(table.out().contains("tokens/s") && table.out().contains("MFU") && table.out().contains("load memory") && table.out().contains("step memory"), table.out());
    }

    /**
     * memory.step_peak_bytes: the peak over the timed steps alone (VmHWM reset after warm-up). Each bench runs in a child
     * JVM of its own, so that no earlier test's resident memory sets the baseline. The step's peak is positive, within
     * reach of the load peak (the same process, the same step), and grows with the sequence: 16 × 512 tokens against
     * 16 × 32, by at least half of what jtune plan predicts (~200 MiB of activations and loss buffers; the JVM's own
     * resident set moves by tens of MiB between runs).
     */
    @Test
    void stepPeakIsTheStepsAndGrowsWithSequenceLength(@TempDir Path tmp) throws Exception {
        JsonNode shortRun = benchChild(tmp, "32").get("memory");
        JsonNode longRun = benchChild(tmp, "512").get("memory");
        for (JsonNode m : List.of(shortRun, longRun)) {
            assertEquals("process_peak_rss", m.get("kind").asText(), m.toString());
            long step = m.get("step_peak_bytes").asLong(), start = m.get("step_start_bytes").asLong(), load = m.get("peak_bytes").asLong();
            assertTrue(step > 100L << 20, "a JVM with LibTorch and a model resides in more than 100 MiB: " + m);
            assertTrue(step >= start, "the window's peak is at least what was resident when it opened: " + m);
            assertTrue(step < load + (128L << 20), "the timed steps repeat the warm-up step; their peak is the load's or near it: " + m);
        }
        long grown = longRun.get("step_peak_bytes").asLong() - shortRun.get("step_peak_bytes").asLong();
        long predicted = plannedPeak(512) - plannedPeak(32);
        assertTrue(predicted > 150L << 20, "the plan's growth: " + (predicted >> 20) + " MiB");
        assertTrue(grown > predicted / 2, "16 × 512 tokens need more step memory than 16 × 32: +" + (grown >> 20)
                + " MiB measured, +" + (predicted >> 20) + " MiB planned");
    }

    static long plannedPeak(int seqLen) {
        return dev.jtune.plan.MemoryPlanner.plan(new dev.jtune.plan.PlanRequest(Shapes.config("tiny", null), seqLen, 16, 1, 0, List.of(),
                dev.jtune.config.Precision.FP32, 4, false, false)).totalBytes();
    }

    /** `jtune bench --shape tiny` (full fine-tuning, fp32, micro-batch 16) at a sequence length, in a child JVM. */
    static JsonNode benchChild(Path tmp, String seqLen) throws Exception {
        List<String> cmd = List.of(Path.of(System.getProperty("java.home"), "bin", "java").toString(), "-cp", System.getProperty("java.class.path"),
                "dev.jtune.cli.Main", "bench", "--shape", "tiny", "--seq-len", seqLen, "--micro-batch", "16", "--steps", "2", "--warmup", "1",
                "--gemm-size", "64", "--json");
        Path out = tmp.resolve("bench-" + seqLen + ".json"), err = tmp.resolve("bench-" + seqLen + ".err");
        Process p = new ProcessBuilder(cmd).redirectOutput(out.toFile()).redirectError(err.toFile()).start();
        assertEquals(0, p.waitFor(), Files.readString(err));
        return JSON.readTree(out.toFile());
    }

    /** The formula against a hand computation for the tiny config (hidden 64, 2 layers, 4 heads of 16, 2 KV heads, MLP 176, vocab 50,257, untied). */
    @Test
    void flopsByHand() {
        ModelConfig c = Shapes.config("tiny", null);
        long d = 64, kv = 2 * 16, f = 176, v = 50257, layers = 2, t = 128;
        long perLayer = d * d /* q */ + kv * d /* k */ + kv * d /* v */ + d * d /* o */ + 3 * f * d /* gate, up, down */;
        long n = layers * perLayer + v * d;   // + lm_head (untied); the embedding lookup does no matmul
        assertEquals(3_308_608L, n);
        assertEquals(n, Flops.matmulParameters(c));
        double attn = 12.0 * layers * d * t;
        assertEquals(6.0 * n + attn, Flops.fullPerToken(c, t), 0);
        // LoRA r=8 on all linear layers: each adds 8·(in + out) trained weights; the head is not adapted
        long adapters = layers * 8 * ((d + d) + (d + kv) + (d + kv) + (d + d) + (d + f) + (d + f) + (f + d));
        assertEquals(adapters, Flops.adapterParameters(8, LoraTargets.resolve(c, List.of("all-linear"), "t")));
        assertEquals(4.0 * n + 6.0 * adapters + attn, Flops.loraPerToken(c, t, adapters), 0);
        // tied heads count the embedding once, as the output projection
        ModelConfig gpt2 = Shapes.config("gpt2-124m", "gpt2");
        long g = 768, gl = 12;
        assertEquals(gl * (g * 3 * g + g * g + g * 4 * g + 4 * g * g) + 50257 * g, Flops.matmulParameters(gpt2));
    }

    /** The tiny shape is the demo's base model: init-model's llama tiny preset with the GPT-2 vocabulary. */
    @Test
    void tinyShapeIsTheDemoModel() {
        ObjectNode preset = ModelInit.presetConfig("llama", "tiny", 50257, 50256L, 50256L);
        ObjectNode shape = Shapes.raw("tiny");
        preset.fieldNames().forEachRemaining(k -> {
            if (!k.equals("use_cache")) assertEquals(preset.get(k).toString(), String.valueOf(shape.get(k)), k);
        });
        for (String s : Shapes.names()) Shapes.config(s, null);   // every shape parses
    }

    /** The experiment form: the experiment's model (a directory from init-model), precision, LoRA and batch settings. */
    @Test
    void experimentForm(@TempDir Path tmp) throws Exception {
        Path model = tmp.resolve("m");
        assertEquals(0, run("init-model", "--arch", "llama", "--preset", "tiny", "--tokenizer", "configs/tokenizers/gpt2", "--out", model.toString()).code());
        Path yaml = tmp.resolve("e.yaml");
        Files.writeString(yaml, "model:\n  path: " + model + "\ndata:\n  train_file: configs/demo/data-science-qa.csv\n  max_seq_length: 24\n"
                + "training:\n  output_dir: " + tmp.resolve("out") + "\n  per_device_train_batch_size: 2\n  gradient_accumulation_steps: 2\n"
                + "  precision: bf16\n  device: cpu\n  kernels: off\nlora:\n  enabled: true\n  r: 4\n  target_modules: all-linear\n");
        CliTest.Run r = run("bench", yaml.toString(), "--steps", "2", "--warmup", "1", "--gemm-size", "128", "--json");
        assertEquals(0, r.code(), r.err());
        JsonNode c = JSON.readTree(r.out()).get("config");
        assertEquals("lora", c.get("mode").asText());
        assertEquals("bf16", c.get("precision").asText());
        assertEquals(2 * 24 * 2, c.get("tokens_per_step").asLong());
        assertEquals(14, c.get("lora_modules").asInt());
        assertEquals("off", c.get("kernels").get("mode").asText(), "training.kernels from the experiment");
        assertEquals("LibTorch (kernels: off)", c.get("kernels").get("swiglu").asText());
        assertUserError(run("bench", yaml.toString(), "--kernels", "fast"), "--kernels: unknown value 'fast'; expected auto or off");
        assertUserError(run("bench", yaml.toString(), "--precision", "fp32"), "go with --shape");
    }

    @Test
    void badFlagsExitTwo() {
        assertUserError(run("bench", "--shape", "llama9"), "unknown shape 'llama9'");
        assertUserError(run("bench"), "either an experiment file or --shape");
        assertUserError(run("bench", "--shape", "tiny", "--steps", "0"), "--steps");
        assertUserError(run("bench", "--shape", "tiny", "--precision", "fp8"), "--precision");
        assertUserError(run("bench", "--shape", "tiny", "--seq-len", "100000"), "--seq-len 100000");
        assertUserError(run("bench", "--shape", "tiny", "--micro-batch", "0"), "--micro-batch");
        assertUserError(run("bench", "--shape", "tiny", "--lora-r", "-1"), "--lora-r");
        assertUserError(run("bench", "--shape", "gpt2-124m", "--arch", "llama"), "does not fit");
        assertUserError(run("bench", "--shape", "tiny", "--device", "cuda"), "CUDA cannot be used");
        assertUserError(run("bench", "--shape", "tiny", "--lora-targets", "q_proj"), "--lora-r");
        assertUserError(run("bench", "--shape", "tiny", "--lora-r", "4", "--lora-targets", "nope"), "nope");
        assertUserError(run("bench", "--shape", "tiny", "--steps", "x"), "--steps");
    }
}
