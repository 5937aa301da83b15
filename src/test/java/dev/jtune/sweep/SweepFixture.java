package dev.jtune.sweep;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import dev.jtune.cli.CliTest;
import dev.jtune.model.ModelConfig;
import dev.jtune.model.ModelInit;
import dev.jtune.model.ModelWriter;
import dev.jtune.tokenizer.HfTokenizer;
import org.bytedeco.pytorch.global.torch.ScalarType;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

/** A tiny Llama (torchtune's 2000-token tokenizer) and a small question/answer CSV, made in a test's directory. */
final class SweepFixture {
    static final Path TOKENIZER = Path.of("src/test/resources/tokenizers/torchtune-tiny");
    static final ObjectMapper JSON = new ObjectMapper();

    final Path tmp, model, csv;

    SweepFixture(Path tmp) throws IOException {
        this.tmp = tmp;
        model = tmp.resolve("base");
        try (HfTokenizer tok = HfTokenizer.load(TOKENIZER)) {
            ModelConfig c = ModelConfig.parse(ModelInit.presetConfig("llama", "tiny", tok.vocabSize(), null, null), model.resolve("config.json"));
            ModelWriter.save(model, c, ModelInit.randomParameters(c, 5, ScalarType.Float), ScalarType.Float, TOKENIZER, null);
        }
        StringBuilder sb = new StringBuilder("question,answer\n");
        for (int i = 0; i < 40; i++) sb.append("what is item ").append(i).append("?,item ").append(i).append(" is a number; it follows ").append(i - 1).append(".\n");
        csv = Files.writeString(tmp.resolve("qa.csv"), sb.toString());
    }

    /** An experiment: {@code steps} steps, an evaluation and a checkpoint every 2, a loss logged every step. */
    Path experiment(String name, int steps, String... extra) throws IOException {
        Path yaml = tmp.resolve(name + ".yaml");
        List<String> lines = new ArrayList<>(List.of("model:", "  path: " + model, "data:", "  train_file: " + csv,
                "  format: instruction", "  prompt_column: question", "  response_column: answer", "  validation_split: 0.2",
                "  max_seq_length: 48", "training:", "  output_dir: " + tmp.resolve(name + "-run"), "  max_steps: " + steps,
                "  per_device_train_batch_size: 4", "  learning_rate: 3.0e-3", "  lr_scheduler_type: constant",
                "  logging_steps: 1", "  eval_steps: 2", "  save_steps: 2", "  save_total_limit: 2", "  device: cpu", "  seed: 11"));
        lines.addAll(List.of(extra));
        Files.writeString(yaml, String.join("\n", lines) + "\n");
        return yaml;
    }

    static CliTest.Run sweep(String... args) {
        String[] all = new String[args.length + 1];
        all[0] = "sweep";
        System.arraycopy(args, 0, all, 1, args.length);
        return CliTest.run(all);
    }

    static void assertUserError(CliTest.Run r, String... mustContain) {
        assertEquals(2, r.code(), "exit code; stdout: " + r.out() + "\nstderr: " + r.err());
        for (String s : mustContain) assertTrue(r.err().contains(s), "stderr should contain '" + s + "': " + r.err());
        assertFalse(r.err().contains("\tat "), "no stack trace: " + r.err());
    }

    static JsonNode leaderboard(Path dir) throws IOException {
        return JSON.readTree(dir.resolve("leaderboard.json").toFile());
    }

    /** Step → eval_loss of a trial, read from its own metrics.jsonl (independently of the sweep's code). */
    static Map<Long, Double> evalLosses(Path trialDir) throws IOException {
        Map<Long, Double> out = new LinkedHashMap<>();
        for (String line : Files.readAllLines(trialDir.resolve("metrics.jsonl"))) {
            JsonNode n = JSON.readTree(line);
            if (n.has("eval_loss")) out.put(n.get("step").asLong(), n.get("eval_loss").asDouble());
        }
        return out;
    }
}
