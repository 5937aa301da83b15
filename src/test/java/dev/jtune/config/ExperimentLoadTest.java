package dev.jtune.config;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.dataformat.yaml.YAMLMapper;
import dev.jtune.config.DataSection.Format;
import dev.jtune.config.DataSection.OnBadRow;
import dev.jtune.config.DataSection.OnLongRow;
import dev.jtune.config.Precision;
import dev.jtune.config.TrainingSection.Scheduler;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;

import static dev.jtune.config.ConfigFixture.LLAMA;
import static dev.jtune.config.ConfigFixture.GPT2_TOKENIZER;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNotEquals;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertTrue;

/** Defaults, path resolution, --set overrides and the resolved-YAML round trip. */
class ExperimentLoadTest {
    @TempDir
    Path tmp;
    ConfigFixture fx;

    @BeforeEach
    void setUp() {
        fx = new ConfigFixture(tmp);
    }

    @Test
    void minimalFileGetsEveryDefault() {
        Experiment e = fx.load(fx.minimal("", "", ""));
        assertEquals(tmp.resolve("exp.yaml"), e.file());
        assertEquals(new ModelSection(LLAMA, null, GPT2_TOKENIZER, null, null, null, null), e.model());
        assertEquals(new DataSection(fx.train, null, null, Format.TEXT, "text", "prompt", "response", "messages", null,
                0.1, 0.0, 512, false, false, OnBadRow.SKIP, OnLongRow.TRUNCATE, true, true,
                "conversations", "from", "value", "instruction", "input", "output", null, null), e.data());
        assertEquals(new TrainingSection(fx.out, fx.out.resolve("runs"), 3.0, -1, 8, 8, 1, 5e-5, Scheduler.LINEAR,
                java.util.Map.of(), 0, 0.0, 0.0, null, 0.0, 0.9, 0.999, 1e-8, 1.0, 10, 0, 0, 2, 42L, Precision.AUTO, "auto", null, 0.0, true, 2, 5, dev.jtune.kernels.KernelMode.AUTO, false, false, java.util.Map.of(),
                false, 64, 1, 32, List.of("exact_match", "token_f1", "rouge_l", "bleu", "chrf"), 1800, 0, 25.0,
                TrainingSection.Method.SFT, "loss", null), e.training());
    }

    @Test
    void tokenizerDefaultsToTheModelDirectory() throws Exception {
        Path model = Files.createDirectories(tmp.resolve("model"));
        Files.copy(LLAMA.resolve("config.json"), model.resolve("config.json"));
        Files.copy(GPT2_TOKENIZER.resolve("tokenizer.json"), model.resolve("tokenizer.json"));
        Experiment e = fx.load("model:\n  path: " + model + "\ndata:\n  train_file: " + fx.train
                + "\ntraining:\n  output_dir: " + fx.out + "\n");
        assertEquals(model, e.model().tokenizer());
    }

    @Test
    void relativePathsResolveAgainstTheWorkingDirectory() {
        Path cwd = Path.of("").toAbsolutePath();
        Experiment e = fx.load(fx.minimal("", "", ""), "model.path=src/test/resources/models/./llama-tiny",
                "training.output_dir=runs/x", "training.logging_dir=../logs");
        assertEquals(cwd.resolve("src/test/resources/models/llama-tiny"), e.model().path());
        assertEquals(cwd.resolve("runs/x"), e.training().outputDir());
        assertEquals(cwd.getParent().resolve("logs"), e.training().loggingDir());
        assertTrue(e.model().path().isAbsolute());
    }

    @Test
    void everyValueCanBeSetAndIsTyped() {
        Experiment e = fx.load(fx.minimal("dtype: bfloat16",
                "format: instruction\nsystem_prompt: Be brief.\nmax_seq_length: 1e3\npacking: true\non_long_row: drop",
                "learning_rate: 1e-4\nlr_scheduler_type: Cosine\nmax_steps: 500\nsave_total_limit: null\n"
                        + "precision: bf16\ndevice: cuda:1\nseed: 12345678901\nearly_stopping_patience: 3"));
        assertEquals("bfloat16", e.model().dtype());
        assertEquals(Format.INSTRUCTION, e.data().format());
        assertEquals("Be brief.", e.data().systemPrompt());
        assertEquals(1000, e.data().maxSeqLength());   // 1e3 is a float in YAML, accepted for an integer key
        assertTrue(e.data().packing());
        assertEquals(OnLongRow.DROP, e.data().onLongRow());
        assertEquals(1e-4, e.training().learningRate());
        assertEquals(Scheduler.COSINE, e.training().lrSchedulerType());
        assertEquals(500, e.training().maxSteps());
        assertNull(e.training().saveTotalLimit());
        assertEquals(Precision.BF16, e.training().precision());
        assertEquals("cuda:1", e.training().device());
        assertEquals(12345678901L, e.training().seed());
        assertEquals(3, e.training().earlyStoppingPatience());
    }

    @Test
    void overridesApplyInOrderBeforeValidation() {
        Experiment e = fx.load(fx.with("training", "learning_rate: -1"),   // invalid in the file, fixed by --set
                "training.learning_rate=1e-4", "data.packing=true", "training.save_total_limit=null",
                "data.format=chat", "training.seed=1", "training.seed=7", "data.system_prompt=a=b, c",
                "model.dtype=", "training.warmup_ratio= 0.05 ");
        assertEquals(1e-4, e.training().learningRate());
        assertTrue(e.data().packing());
        assertNull(e.training().saveTotalLimit());
        assertEquals(Format.CHAT, e.data().format());
        assertEquals(7, e.training().seed());
        assertEquals("a=b, c", e.data().systemPrompt());   // only the first '=' separates key from value
        assertNull(e.model().dtype());                      // empty value = YAML null
        assertEquals(0.05, e.training().warmupRatio());
    }

    @Test
    void overridesCanSetKeysAndSectionsTheFileLeavesOut() {
        String yaml = "model:\n  path: " + LLAMA + "\n  tokenizer: " + GPT2_TOKENIZER + "\ndata:\n  train_file: " + fx.train + "\n";
        Experiment e = fx.load(yaml, "training.output_dir=" + fx.out, "training.eval_steps=5", "training.save_steps=10");
        assertEquals(fx.out, e.training().outputDir());
        assertEquals(5, e.training().evalSteps());
    }

    @Test
    void resolvedYamlRoundTrips() {
        Experiment e = fx.load(fx.minimal("dtype: float16",
                "validation_split: 0.25\ntest_split: 0.05\nformat: chat\ndrop_duplicates: false",
                "learning_rate: 3e-4\nnum_train_epochs: 1.5\nwarmup_ratio: 0.1\nearly_stopping_patience: 2\n"
                        + "save_total_limit: null\nadam_epsilon: 1e-6\ndevice: cpu\nprecision: fp32"));
        Path resolved = tmp.resolve("out/config.resolved.yaml");
        e.writeResolved(resolved);
        Experiment back = Experiment.load(resolved, List.of());
        assertEquals(e, back);
        assertEquals(e.hashCode(), back.hashCode());
        assertEquals(resolved, back.file());
        assertEquals(e.toYaml().lines().skip(1).toList(), back.toYaml().lines().skip(1).toList());
    }

    @Test
    void resolvedYamlKeepsStringsThatLookLikeOtherTypes() {
        for (String prompt : List.of("yes", "no", "null", "~", "123", "1e-4", "0x1F", "true", "a: b # c", "- item",
                "multi\nline\n", " padded ", "\"quoted\"", "¿Qué? 你好 🙂", "", "tab\there", "[x]", "%x", "@x")) {
            String quoted = new com.fasterxml.jackson.databind.ObjectMapper().valueToTree(prompt).toString();
            Experiment e = fx.load(fx.with("data", "system_prompt: " + quoted));
            assertEquals(prompt, e.data().systemPrompt());
            Path resolved = tmp.resolve("resolved.yaml");
            e.writeResolved(resolved);
            assertEquals(e, Experiment.load(resolved, List.of()), "round trip of system_prompt " + quoted);
        }
    }

    @Test
    void resolvedYamlHasEveryKeyInTheInputLayout() throws Exception {
        Experiment e = fx.load(fx.minimal("", "", ""));
        JsonNode tree = new YAMLMapper().readTree(e.toYaml());
        assertEquals(Experiment.sectionNames(), names(tree));
        for (String s : Experiment.sectionNames()) assertEquals(Experiment.keys(s), names(tree.get(s)), s);
        assertTrue(e.toYaml().contains("  lr_scheduler_type: linear\n"), e.toYaml());
        assertTrue(e.toYaml().contains("  save_total_limit: 2\n"), e.toYaml());
        assertTrue(e.toYaml().contains("  system_prompt: null\n"), e.toYaml());
        assertTrue(e.toYaml().contains("  logging_dir: " + fx.out.resolve("runs") + "\n"), e.toYaml());
    }

    @Test
    void equalityIgnoresTheFileButNotTheSettings() {
        Experiment a = fx.load(fx.minimal("", "", ""));
        Experiment b = a.withFile(tmp.resolve("elsewhere.yaml"));
        assertEquals(a, b);
        assertNotEquals(a, fx.load(fx.minimal("", "", ""), "training.seed=1"));
    }

    @Test
    void schemaIsSnakeCaseOfTheRecords() {
        assertEquals(List.of("model", "data", "training", "lora", "sweep", "preference"), Experiment.sectionNames());
        assertEquals(List.of("enabled", "r", "alpha", "dropout", "target_modules", "use_rslora", "init_weights", "adapter_path"),
                Experiment.keys("lora"));
        assertTrue(Experiment.keys("training").containsAll(List.of("output_dir", "num_train_epochs",
                "per_device_train_batch_size", "lr_scheduler_type", "adam_beta1", "early_stopping_patience",
                "load_best_model_at_end", "dataloader_num_workers")));
        assertFalse(Experiment.keys("data").contains("trainFile"));
    }

    static List<String> names(JsonNode n) {
        List<String> out = new ArrayList<>();
        n.fieldNames().forEachRemaining(out::add);
        return out;
    }
}
