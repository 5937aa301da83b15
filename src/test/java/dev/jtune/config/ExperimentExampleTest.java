package dev.jtune.config;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.dataformat.yaml.YAMLMapper;
import dev.jtune.config.DataSection.Format;
import dev.jtune.config.DataSection.OnBadRow;
import dev.jtune.config.DataSection.OnLongRow;
import dev.jtune.config.Precision;
import dev.jtune.config.TrainingSection.Scheduler;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;

import static dev.jtune.config.ConfigFixture.GPT2_TOKENIZER;
import static dev.jtune.config.ConfigFixture.LLAMA;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

/** configs/example-full.yaml holds every key, loads to exactly the values it shows, and docs/configuration.md documents them all. */
class ExperimentExampleTest {
    static final Path EXAMPLE = Path.of("configs/example-full.yaml");

    @TempDir
    Path tmp;

    @Test
    void exampleLoadsToTheValuesItShows() {
        // The example's model and data paths are the README quick start's; point them at files that exist here.
        Path train = ConfigFixture.write(tmp.resolve("train.jsonl"), "{}\n");
        Path validation = ConfigFixture.write(tmp.resolve("validation.jsonl"), "{}\n");
        Experiment e = Experiment.load(EXAMPLE, List.of("model.path=" + LLAMA, "model.tokenizer=" + GPT2_TOKENIZER,
                "data.train_file=" + train, "data.validation_file=" + validation));
        Path out = Path.of("runs/tiny-llama-sft").toAbsolutePath();
        Experiment expected = new Experiment(EXAMPLE.toAbsolutePath(),
                new ModelSection(LLAMA, null, GPT2_TOKENIZER, null, null, null, null),
                new DataSection(train, validation, null, Format.INSTRUCTION, "text", "prompt", "response", "messages",
                        "You are a helpful assistant.", 0.1, 0.0, 512, false, false, OnBadRow.SKIP, OnLongRow.TRUNCATE,
                        true, true, "conversations", "from", "value", "instruction", "input", "output", null, null),
                new TrainingSection(out, out.resolve("runs"), 3.0, -1, 8, 8, 2, 2e-4, Scheduler.COSINE, java.util.Map.of("num_cycles", 0.5), 0, 0.03, 0.01, null, 0.0,
                        0.9, 0.999, 1e-8, 1.0, 10, 100, 100, 2, 42L, Precision.BF16, "auto", 3, 0.0, true, 2, 5, dev.jtune.kernels.KernelMode.AUTO, false, false,
                        java.util.Map.of("offload", false), true, 64, 1, 32, List.of("exact_match", "token_f1", "rouge_l", "bleu", "chrf"), 1800, 0, 25.0,
                        TrainingSection.Method.SFT, "loss", null),
                new LoraSection(false, 8, 8.0, 0.0, null, false, true, null),

                new dev.jtune.config.SweepSection(List.of(), dev.jtune.config.SweepSection.Method.RANDOM, null,
                        dev.jtune.config.SweepSection.Prune.NONE, "eval_loss", dev.jtune.config.SweepSection.Direction.MINIMIZE, 0L, 3),
                new PreferenceSection(null, null, null, null, null, null, null, null, null, null, null, null,
                        "chosen", "rejected", "completion", "label"));
        assertEquals(expected, e);
        assertEquals(EXAMPLE.toAbsolutePath(), e.file());
    }

    @Test
    void exampleHasEveryKeyInSchemaOrder() throws Exception {
        JsonNode tree = new YAMLMapper().readTree(EXAMPLE.toFile());
        assertEquals(Experiment.sectionNames(), ExperimentLoadTest.names(tree));
        for (String s : Experiment.sectionNames()) assertEquals(Experiment.keys(s), ExperimentLoadTest.names(tree.get(s)), s);
    }

    @Test
    void exampleNamesTheHuggingFaceArgumentOfEveryTrainingKey() throws Exception {
        for (String line : Files.readAllLines(EXAMPLE)) {
            if (line.startsWith("  ") && line.contains(":") && line.contains("# HF")) continue;
            if (line.startsWith("  ") && inTraining(line)) throw new AssertionError("no '# HF' comment: " + line);
        }
    }

    private static boolean inTraining(String line) {
        String key = line.strip().substring(0, line.strip().indexOf(':'));
        return Experiment.keys("training").contains(key);
    }

    @Test
    void configurationPageDocumentsEveryKey() throws Exception {
        String md = Files.readString(Path.of("docs/configuration.md"));
        for (String s : Experiment.sectionNames()) {
            assertTrue(md.contains("## `" + s + ":`"), s);
            for (String k : Experiment.keys(s)) assertTrue(md.contains("| `" + k + "` |"), s + "." + k);
        }
    }
}
