package dev.jtune.plan;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import dev.jtune.bench.Shapes;
import dev.jtune.cli.CliTest;
import dev.jtune.config.Precision;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.TimeUnit;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

/** `jtune plan` (shape and experiment forms, table and JSON, bad flags) and the memory check `jtune train` makes. */
class PlanCommandTest {
    static final ObjectMapper JSON = new ObjectMapper();

    static void assertUserError(CliTest.Run r, String mustContain) {
        assertEquals(2, r.code(), "exit code; stderr: " + r.err());
        assertTrue(r.err().contains(mustContain), "stderr should contain '" + mustContain + "': " + r.err());
        assertFalse(r.err().contains("\tat "), "no stack trace: " + r.err());
    }

    @Test
    void shapeJsonIsThePlannersPlan() throws Exception {
        CliTest.Run r = CliTest.run("plan", "--shape", "tiny", "--seq-len", "128", "--micro-batch", "8", "--lora-r", "8", "--precision", "bf16",
                "--memory", "24GiB", "--json");
        assertEquals(0, r.code(), r.err());
        JsonNode j = JSON.readTree(r.out());
        MemoryPlanner.Plan p = MemoryPlanner.plan(new PlanRequest(Shapes.config("tiny", null), 128, 8, 1, 8, List.of("all-linear"),
                Precision.BF16, 2, false, false));
        assertEquals(p.totalBytes(), j.get("total_bytes").asLong());
        for (MemoryPlanner.Part part : p.parts()) assertEquals(part.bytes(), j.get("breakdown").get(part.key()).get("bytes").asLong(), part.key());
        assertTrue(j.get("fits").asBoolean());
        assertEquals(24L << 30, j.get("memory_bytes").asLong());
        assertEquals(512, j.get("longest_seq_len").asInt(), "the tiny model's 512 positions fit in 24 GiB");
        assertEquals("lora", j.get("config").get("mode").asText());
        assertEquals(0, j.get("suggestions").size());
    }

    @Test
    void tooLargeSaysWhatToChange() {
        CliTest.Run r = CliTest.run("plan", "--shape", "llama3-8b", "--seq-len", "4096", "--micro-batch", "4", "--memory", "24GiB");
        assertEquals(0, r.code(), r.err());
        String out = r.out();
        for (String s : new String[] {"frozen weights", "trainable weights", "gradients", "optimizer state", "activations", "loss chunk",
                "workspace headroom", "predicted peak", "does NOT fit", "training.gradient_checkpointing: true", "LoRA (lora.enabled: true"}) {
            assertTrue(out.contains(s), "'" + s + "' in:\n" + out);
        }
        CliTest.Run lora = CliTest.run("plan", "--shape", "llama3-8b", "--lora-r", "16", "--precision", "bf16", "--seq-len", "256",
                "--micro-batch", "8", "--memory", "24GiB");
        assertTrue(lora.out().contains("a 4-bit base (QLoRA: model.quantization.load_in_4bit: true"), lora.out());
        assertTrue(lora.out().contains("per_device_train_batch_size: "), lora.out());
    }

    @Test
    void badFlagsExitTwo() {
        assertUserError(CliTest.run("plan"), "either an experiment file or --shape");
        assertUserError(CliTest.run("plan", "--shape", "nope"), "unknown shape 'nope'");
        assertUserError(CliTest.run("plan", "--shape", "tiny", "--memory", "much"), "--memory: cannot read 'much'");
        assertUserError(CliTest.run("plan", "--shape", "tiny", "--precision", "fp8"), "--precision");
        assertUserError(CliTest.run("plan", "--shape", "tiny", "--seq-len", "4096"), "--seq-len 4096");
        assertUserError(CliTest.run("plan", "--shape", "tiny", "--micro-batch", "0"), "--micro-batch");
        assertUserError(CliTest.run("plan", "--shape", "tiny", "--device", "tpu"), "--device");
        assertUserError(CliTest.run("plan", "x.yaml", "--seq-len", "8"), "go with --shape");
    }

    static Path experiment(Path tmp) throws Exception {
        Path model = tmp.resolve("m");
        CliTest.Run init = CliTest.run("init-model", "--arch", "llama", "--preset", "tiny", "--tokenizer", "configs/tokenizers/gpt2", "--out", model.toString());
        assertEquals(0, init.code(), init.err());
        Path yaml = tmp.resolve("e.yaml");
        Files.writeString(yaml, "model:\n  path: " + model + "\ndata:\n  train_file: configs/demo/data-science-qa.csv\n  format: instruction\n"
                + "  prompt_column: question\n  response_column: answer\n  max_seq_length: 64\n"
                + "training:\n  output_dir: " + tmp.resolve("out") + "\n  per_device_train_batch_size: 4\n  max_steps: 1\n  device: cpu\n"
                + "  eval_steps: 1\n  save_steps: 1\n");
        return yaml;
    }

    /** The experiment form reads the model's config.json and the experiment's batch; a small --memory does not fit. */
    @Test
    void experimentForm(@TempDir Path tmp) throws Exception {
        Path yaml = experiment(tmp);
        CliTest.Run r = CliTest.run("plan", yaml.toString(), "--memory", "64MiB", "--json");
        assertEquals(0, r.code(), r.err());
        JsonNode j = JSON.readTree(r.out());
        assertEquals(64, j.get("config").get("seq_len").asInt());
        assertEquals(4, j.get("config").get("micro_batch").asInt());
        assertEquals("full", j.get("config").get("mode").asText());
        assertFalse(j.get("fits").asBoolean());
        assertTrue(j.get("suggestions").size() > 0);
        assertFalse(Files.exists(tmp.resolve("out")), "plan writes nothing");
    }

    /**
     * `jtune train` refuses a run its plan says cannot fit, before it loads anything or makes output_dir (exit 2, the
     * breakdown and what to change); training.skip_memory_check: true starts it anyway. The budget comes from
     * JTUNE_DEVICE_MEMORY, so the trains run in child JVMs (the variable cannot be set inside this one).
     */
    @Test
    void trainRefusesARunThatCannotFit(@TempDir Path tmp) throws Exception {
        Path yaml = experiment(tmp);
        Child refused = child(tmp, "refused", yaml);
        assertEquals(2, refused.code, refused.output);
        assertTrue(refused.output.contains("the memory plan predicts this run does not fit"), refused.output);
        assertTrue(refused.output.contains("does NOT fit") && refused.output.contains("JTUNE_DEVICE_MEMORY=64MiB"), refused.output);
        assertTrue(refused.output.contains("training.skip_memory_check: true starts it anyway"), refused.output);
        assertFalse(refused.output.contains("\tat "), refused.output);
        assertFalse(Files.exists(tmp.resolve("out")), "refused before anything was written");

        Child skipped = child(tmp, "skipped", yaml, "--set", "training.skip_memory_check=true");
        assertEquals(0, skipped.code, skipped.output);
        assertTrue(Files.isDirectory(tmp.resolve("out").resolve("final")), skipped.output);
    }

    record Child(int code, String output) {}

    static Child child(Path tmp, String name, Path yaml, String... args) throws Exception {
        List<String> cmd = new ArrayList<>(List.of(Path.of(System.getProperty("java.home"), "bin", "java").toString(), "-cp",
                System.getProperty("java.class.path"), "dev.jtune.cli.Main", "train", yaml.toString()));
        cmd.addAll(List.of(args));
        Path log = tmp.resolve(name + ".log");
        ProcessBuilder pb = new ProcessBuilder(cmd).redirectErrorStream(true).redirectOutput(log.toFile());
        pb.environment().put(DeviceMemory.ENV, "64MiB");
        Process p = pb.start();
        if (!p.waitFor(10, TimeUnit.MINUTES)) {
            p.destroyForcibly();
            throw new AssertionError("train did not finish: " + Files.readString(log));
        }
        return new Child(p.exitValue(), Files.readString(log));
    }
}
