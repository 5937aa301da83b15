package dev.jtune.cli;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;

import static dev.jtune.cli.CliTest.assertUserError;
import static dev.jtune.cli.CliTest.run;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

/** `jtune train` and `jtune eval` as a user runs them, on the bundled demo experiment. */
class TrainCliTest {
    static final ObjectMapper JSON = new ObjectMapper();

    @TempDir
    static Path tmp;
    static Path base;

    @BeforeAll
    static void makeBaseModel() {
        base = tmp.resolve("base");
        CliTest.Run r = run("init-model", "--arch", "llama", "--preset", "tiny", "--tokenizer", "configs/tokenizers/gpt2",
                "--out", base.toString(), "--seed", "1");
        assertEquals(0, r.code(), r.err());
    }

    /** The README's demo experiment stays valid: a few steps of it run and write a reloadable final model. */
    @Test
    void demoExperimentTrainsThenEvalsThenGenerates() throws IOException {
        Path out = tmp.resolve("demo-run");
        CliTest.Run train = run("train", "configs/demo.yaml", "--set", "model.path=" + base, "--set", "training.output_dir=" + out,
                "--set", "training.max_steps=6", "--set", "training.eval_steps=3", "--set", "training.save_steps=3",
                "--set", "training.generation_max_length=6", "--set", "training.eval_generation_samples=5");
        assertEquals(0, train.code(), train.err());
        GeneratedAnswersChecks.checkRun(out, train, base);
        assertTrue(train.out().contains("data: 302 rows read, 290 kept, 12 dropped (8 duplicates, 3 empty responses, 1 bad quoting at line 153)"),
                train.out());
        assertTrue(train.out().contains("test: loss"), train.out());
        // the run says which path each op of the op layer takes (training.kernels: auto, on the CPU)
        assertTrue(train.out().contains("kernels: auto; a CPU run"), train.out());
        assertTrue(train.out().contains("  rope              LibTorch (CPU tensors)"), train.out());
        assertTrue(Files.isRegularFile(out.resolve("final/model.safetensors")));

        CliTest.Run eval = run("eval", "configs/demo.yaml", "--set", "model.path=" + base, "--set", "training.output_dir=" + out, "--json");
        assertEquals(0, eval.code(), eval.err());
        JsonNode j = JSON.readTree(eval.out());
        assertEquals(out.resolve("final").toString(), j.get("model").asText());
        assertTrue(j.get("eval_loss").asDouble() > 0 && j.get("test_loss").asDouble() > 0, j.toString());
        // the eval command reproduces the trainer's final test loss from metrics.jsonl
        double logged = Double.NaN;
        for (String line : Files.readAllLines(out.resolve("metrics.jsonl"))) {
            JsonNode n = JSON.readTree(line);
            if (n.has("test_loss")) logged = n.get("test_loss").asDouble();
        }
        assertEquals(logged, j.get("test_loss").asDouble(), 1e-5);

        CliTest.Run gen = run("generate", "--model", out.resolve("final").toString(), "--chat", "--prompt", "¿Qué es la mediana?",
                "--max-new-tokens", "5");
        assertEquals(0, gen.code(), gen.err());
    }

    @Test
    void experimentMistakesExitTwoBeforeAnyWork() throws IOException {
        Path yaml = tmp.resolve("bad.yaml");
        Files.writeString(yaml, "model:\n  path: " + base + "\ndata:\n  train_file: configs/demo/data-science-qa.csv\n"
                + "training:\n  output_dir: " + tmp.resolve("never") + "\n  learning_rat: 0.1\n");
        assertUserError(run("train", yaml.toString()), "learning_rat", "learning_rate", "bad.yaml");
        assertTrue(!Files.exists(tmp.resolve("never")), "nothing written for a refused experiment");
        assertUserError(run("train", "configs/demo.yaml", "--set", "model.path=" + base, "--set", "training.learning_rate=-1"),
                "training.learning_rate");
        assertUserError(run("train", tmp.resolve("missing.yaml").toString()), "missing.yaml");
        assertUserError(run("train", "configs/demo.yaml", "--set", "model.path=" + base, "--set", "data.max_seq_length=100000"),
                "max_seq_length");
        // an output directory that cannot be created (under a regular file; tests run as root, so chmod would not stop them)
        Path file = Files.writeString(tmp.resolve("a-file"), "x");
        assertUserError(run("train", "configs/demo.yaml", "--set", "model.path=" + base, "--set", "training.output_dir=" + file.resolve("run")),
                "a-file");
        // a dataset with nothing left after cleaning
        Path empty = Files.writeString(tmp.resolve("empty.csv"), "question,answer\nwhat?,\nwhy?,   \n");
        assertUserError(run("train", "configs/demo.yaml", "--set", "model.path=" + base, "--set", "data.train_file=" + empty,
                "--set", "training.output_dir=" + tmp.resolve("empty-run")), "empty.csv", "no training examples");
    }

    /**
     * A file jtune cannot write during a run is not a jtune bug: exit 2 naming the path and the system's reason,
     * no stack trace. Here training.logging_dir lies under a regular file, so the TensorBoard directory cannot be
     * made (tests may run as root, where permissions would not stop them). A full disk (ENOSPC) through each
     * writer: MetricsLogTest, TensorBoardWriterTest, HtmlReportTest.
     */
    @Test
    void anUnwritableLoggingDirExitsTwoNamingIt() throws IOException {
        Path aFile = Files.writeString(tmp.resolve("not-a-dir"), "x");
        Path logs = aFile.resolve("logs");
        CliTest.Run train = run("train", "configs/demo.yaml", "--set", "model.path=" + base, "--set", "training.output_dir=" + tmp.resolve("logs-run"),
                "--set", "training.logging_dir=" + logs, "--set", "training.max_steps=2");
        assertUserError(train, logs + ": cannot create the TensorBoard log directory (training.logging_dir): ");
    }

    /** configs/demo-lora.yaml stays valid: adapters train, then merge folds them into a full model with the same logits. */
    @Test
    void demoLoraTrainsThenMerges() throws IOException {
        Path out = tmp.resolve("lora-run");
        CliTest.Run train = run("train", "configs/demo-lora.yaml", "--set", "model.path=" + base, "--set", "training.output_dir=" + out,
                "--set", "training.max_steps=4", "--set", "training.eval_steps=2", "--set", "training.save_steps=2");
        assertEquals(0, train.code(), train.err());
        assertTrue(train.out().contains("LoRA r=16 on 14 modules"), train.out());
        Path adapter = out.resolve("final");
        assertTrue(Files.isRegularFile(adapter.resolve("adapter_config.json")));
        Path merged = tmp.resolve("merged");
        CliTest.Run merge = run("merge", "--model", base.toString(), "--adapter", adapter.toString(), "--out", merged.toString());
        assertEquals(0, merge.code(), merge.err());
        assertTrue(merge.out().contains("merged 14 adapted weights"), merge.out());
        Path text = tmp.resolve("t.txt");
        Files.writeString(text, "¿Qué es la validación cruzada? Cross-validation estimates generalisation.");
        CliTest.Run viaAdapter = run("perplexity", "--model", base.toString(), "--adapter", adapter.toString(), "--text-file", text.toString(), "--json");
        CliTest.Run viaMerged = run("perplexity", "--model", merged.toString(), "--text-file", text.toString(), "--json");
        assertEquals(0, viaAdapter.code(), viaAdapter.err());
        assertEquals(JSON.readTree(viaAdapter.out()).get("mean_nll").asDouble(), JSON.readTree(viaMerged.out()).get("mean_nll").asDouble(), 1e-5);
        assertUserError(run("merge", "--model", base.toString(), "--adapter", tmp.toString(), "--out", tmp.resolve("x").toString()),
                "--adapter", "adapter_config.json");
    }
}
