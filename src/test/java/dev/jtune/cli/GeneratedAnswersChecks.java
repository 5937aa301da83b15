package dev.jtune.cli;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import dev.jtune.metrics.TensorBoardWriterTest;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;

import static dev.jtune.cli.CliTest.assertUserError;
import static dev.jtune.cli.CliTest.run;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNotNull;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * What a demo run with {@code predict_with_generate} must leave behind (called by TrainCliTest on its demo run, so
 * that the suite trains the demo once): before/after scores under metrics.jsonl's names, TensorBoard scalars and
 * sample answers as text, the report's tables; and {@code jtune eval --generate} reproducing the logged scores from
 * final/ and from the base model, which it reloads from disk.
 */
final class GeneratedAnswersChecks {
    private GeneratedAnswersChecks() {}

    static final ObjectMapper JSON = new ObjectMapper();
    static final List<String> METRICS = List.of("exact_match", "token_f1", "rouge_l", "bleu", "chrf");

    static void checkRun(Path out, CliTest.Run train, Path base) throws IOException {
        // metrics.jsonl: base_test_ and base_eval_ at step 0, eval_ at each evaluation (steps 3, 6), test_ at the end
        List<JsonNode> lines = new ArrayList<>();
        for (String l : Files.readAllLines(out.resolve("metrics.jsonl"))) lines.add(JSON.readTree(l));
        JsonNode baseTest = only(lines, "base_test_bleu"), baseEval = only(lines, "base_eval_bleu"), test = only(lines, "test_bleu");
        assertEquals(0, baseTest.get("step").asLong());
        assertEquals(6, test.get("step").asLong());
        List<Long> evalSteps = lines.stream().filter(n -> n.has("eval_chrf")).map(n -> n.get("step").asLong()).toList();
        assertEquals(List.of(3L, 6L), evalSteps);
        for (String m : METRICS) {
            for (String prefix : List.of("base_test_", "test_")) {
                JsonNode row = prefix.equals("test_") ? test : baseTest;
                double v = row.get(prefix + m).asDouble(-1);
                assertTrue(v >= 0 && v <= 100, prefix + m + " = " + row);
            }
            assertTrue(baseEval.has("base_eval_" + m), baseEval.toString());
        }
        assertTrue(test.get("test_generation_tokens_per_second").asDouble() > 0, test.toString());
        assertTrue(train.out().contains("base_test answers @ step 0 (29 test prompts)"), train.out());
        assertTrue(train.out().contains("generated answers, test prompts (0-100):"), train.out());

        // TensorBoard: scalars for each round, and the sample answers as text for the text plugin
        List<TensorBoardWriterTest.Decoded> events = TensorBoardWriterTest.decode(TensorBoardWriterTest.onlyEventFile(out.resolve("runs")));
        assertTrue(events.stream().anyMatch(e -> "base/test/rouge_l".equals(e.tag()) && e.simpleValue() != null));
        assertTrue(events.stream().anyMatch(e -> "test/chrf".equals(e.tag()) && e.step() == 6));
        TensorBoardWriterTest.Decoded table = events.stream().filter(e -> "test/answers".equals(e.tag())).findFirst().orElse(null);
        assertNotNull(table, "the test answers as text");
        assertEquals("text", table.pluginName());
        assertTrue(table.text().startsWith("| prompt | reference | answer |\n| --- | --- | --- |\n"), table.text());
        assertEquals(2 + 8, table.text().split("\n").length, "header, rule and 8 sample rows");

        // the report: before/after table and the samples side by side
        String html = Files.readString(out.resolve("report.html"));
        assertTrue(html.contains("<h2>Generated answers</h2>") && html.contains("<th>base model</th><th>fine-tuned</th><th>change</th>"), html);
        assertTrue(html.contains("<tr><th>prompt</th><th>reference</th><th>base model</th><th>fine-tuned</th></tr>"), html);

        // jtune eval --generate scores final/ and the base model as the run did
        CliTest.Run fin = run("eval", "configs/demo.yaml", "--set", "model.path=" + base, "--set", "training.output_dir=" + out,
                "--set", "training.generation_max_length=6", "--set", "training.eval_generation_samples=5", "--generate", "--json");
        assertEquals(0, fin.code(), fin.err());
        JsonNode f = JSON.readTree(fin.out());
        CliTest.Run b = run("eval", "configs/demo.yaml", "--set", "model.path=" + base, "--set", "training.output_dir=" + out,
                "--set", "training.generation_max_length=6", "--set", "training.eval_generation_samples=5", "--generate", "--base", "--json");
        assertEquals(0, b.code(), b.err());
        JsonNode bj = JSON.readTree(b.out());
        assertEquals(base.toString(), bj.get("model").asText());
        for (String m : METRICS) {
            assertEquals(test.get("test_" + m).asDouble(), f.get("test_" + m).asDouble(), 1e-9, "final/ test_" + m);
            assertEquals(baseTest.get("base_test_" + m).asDouble(), bj.get("test_" + m).asDouble(), 1e-9, "base test_" + m);
            assertEquals(baseEval.get("base_eval_" + m).asDouble(), bj.get("eval_" + m).asDouble(), 1e-9, "base eval_" + m);
        }
        assertEquals(29, f.get("test_answers").size());
        assertEquals(5, f.get("eval_answers").size());

        assertUserError(run("eval", "configs/demo.yaml", "--set", "model.path=" + base, "--generate", "--base", "--checkpoint", out.toString()),
                "--base and --checkpoint");
        assertUserError(run("eval", "configs/demo.yaml", "--set", "model.path=" + base, "--set", "training.predict_with_generate=false",
                "--set", "data.format=text", "--generate"), "--generate needs instruction or chat data", "no prompt/answer split");
        assertUserError(run("train", "configs/demo.yaml", "--set", "model.path=" + base, "--set", "data.format=text"),
                "training.predict_with_generate", "no prompt/answer split");
        assertUserError(run("train", "configs/demo.yaml", "--set", "model.path=" + base, "--set", "training.generation_metrics=[bleu, chrf2]"),
                "unknown metric 'chrf2'", "did you mean 'chrf'");
    }

    private static JsonNode only(List<JsonNode> lines, String key) {
        List<JsonNode> found = lines.stream().filter(n -> n.has(key)).toList();
        assertEquals(1, found.size(), key + " in metrics.jsonl: " + found);
        return found.get(0);
    }
}
