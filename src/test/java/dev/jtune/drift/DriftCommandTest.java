package dev.jtune.drift;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import dev.jtune.cli.CliTest;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.Set;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * {@code jtune drift} on a real (short) run of the demo experiment: rows taken from the training file pass, rows about
 * another topic are flagged (exit 3), bad input exits 2 with a message; the JSON names every signal with its value,
 * baseline and threshold.
 */
class DriftCommandTest {
    static final Path DEMO_CSV = Path.of("configs/demo/data-science-qa.csv");
    static final ObjectMapper JSON = new ObjectMapper();

    @TempDir
    static Path tmp;
    static Path run;

    @BeforeAll
    static void trainAShortRun() {
        Path base = tmp.resolve("base");
        assertEquals(0, CliTest.run("init-model", "--arch", "llama", "--tokenizer", "configs/tokenizers/gpt2", "--out", base.toString(), "--seed", "1").code());
        run = tmp.resolve("run");
        CliTest.Run r = CliTest.run("train", "configs/demo.yaml", "--set", "model.path=" + base, "--set", "training.output_dir=" + run,
                "--set", "training.max_steps=4", "--set", "training.eval_steps=4", "--set", "training.save_steps=4",
                "--set", "training.generation_max_length=4", "--set", "training.eval_generation_samples=2");
        assertEquals(0, r.code(), r.err());
    }

    static CliTest.Run drift(String... args) {
        String[] all = new String[args.length + 2];
        all[0] = "drift";
        all[1] = run.toString();
        System.arraycopy(args, 0, all, 2, args.length);
        return CliTest.run(all);
    }

    static Map<String, JsonNode> signals(CliTest.Run r) throws IOException {
        JsonNode j = JSON.readTree(r.out());
        Map<String, JsonNode> out = new HashMap<>();
        for (JsonNode s : j.get("signals")) {
            for (String k : List.of("value", "baseline", "threshold", "crossed", "description")) assertTrue(s.has(k), s.toString());
            out.put(s.get("name").asText(), s);
        }
        return out;
    }

    @Test
    void rowsLikeTheTrainingDataPass() throws IOException {
        List<String> lines = Files.readAllLines(DEMO_CSV);
        Path like = tmp.resolve("like.csv");
        Files.write(like, lines.subList(0, 41));   // header + 40 rows of the training file
        Path html = tmp.resolve("drift.html");
        CliTest.Run r = drift("--data", like.toString(), "--json", "--html", html.toString());
        assertEquals(0, r.code(), r.out() + r.err());
        Map<String, JsonNode> s = signals(r);
        Set<String> inputSignals = Set.of("loss", "perplexity", "prompt_length_ks", "token_js_divergence", "unseen_token_share", "prompt_perplexity");
        assertTrue(s.keySet().containsAll(inputSignals), s.keySet().toString());
        // predict_with_generate's scores of the new rows' answers, against the run's logged test_<metric>
        Set<String> answers = new java.util.HashSet<>(s.keySet());
        answers.removeAll(inputSignals);
        assertEquals(Set.of("answer_exact_match", "answer_token_f1", "answer_rouge_l", "answer_bleu", "answer_chrf"), answers);
        for (JsonNode n : s.values()) assertFalse(n.get("crossed").asBoolean(), n.toString());
        // the loss baseline is the run's own logged test loss
        double logged = Double.NaN;
        for (String line : Files.readAllLines(run.resolve("metrics.jsonl"))) {
            JsonNode n = JSON.readTree(line);
            if (n.has("test_loss")) logged = n.get("test_loss").asDouble();
        }
        assertEquals(logged, s.get("loss").get("baseline").asDouble(), 1e-9);
        // rows of the training file: nearly every token was seen (a few rows fell into the validation and test splits)
        assertTrue(s.get("unseen_token_share").get("value").asDouble() < 0.01, s.get("unseen_token_share").toString());
        String page = Files.readString(html);
        assertTrue(page.contains("token_js_divergence") && page.contains("Within every threshold"), page);
    }

    @Test
    void rowsAboutAnotherTopicAreFlagged() throws IOException {
        Path off = tmp.resolve("cooking.csv");
        StringBuilder sb = new StringBuilder("question,answer\n");
        String[][] rows = {
                {"How long should I knead bread dough?", "Knead it for about ten minutes, until the dough is smooth and springs back."},
                {"Why did my sourdough loaf come out flat?", "The starter was probably too weak or the dough over-proofed before baking."},
                {"What is the best way to caramelise onions?", "Cook them slowly over low heat with butter for forty minutes, stirring now and then."},
                {"Can I freeze fresh basil leaves?", "Yes: blanch them, or chop them into olive oil and freeze the cubes."},
                {"How do I keep a cast-iron skillet from rusting?", "Dry it on the stove after washing and rub a thin film of oil into it."},
                {"Which flour gives the chewiest pizza crust?", "Bread flour, with its higher gluten content, gives the chewiest crust."},
                {"How hot should the oven be for roasting potatoes?", "Around 220 degrees Celsius, with the potatoes parboiled and tossed in goose fat."},
                {"What makes a meringue weep?", "Undissolved sugar or humidity; beat the whites until the sugar has dissolved completely."},
                {"How do you poach an egg without it falling apart?", "Use very fresh eggs, a gentle simmer and a splash of vinegar in the water."},
                {"Why soak dried chickpeas overnight?", "Soaking shortens the cooking time and helps them cook evenly and digest better."},
                {"What herbs go with roast lamb?", "Rosemary, thyme and garlic, pushed into small cuts in the meat before roasting."},
                {"How do I temper dark chocolate?", "Melt it to 45 degrees, cool it to 27 while stirring, then warm it back to 31."},
        };
        for (String[] r : rows) sb.append('"').append(r[0]).append("\",\"").append(r[1]).append("\"\n");
        Files.writeString(off, sb.toString());
        CliTest.Run r = drift("--data", off.toString(), "--json");
        assertEquals(3, r.code(), r.out() + r.err());
        Map<String, JsonNode> s = signals(r);
        assertTrue(s.get("token_js_divergence").get("crossed").asBoolean(), s.toString());
        assertTrue(s.get("unseen_token_share").get("crossed").asBoolean(), s.toString());
        assertTrue(JSON.readTree(r.out()).get("drift").asBoolean());

        // the same prompts from serve's request log (unlabelled): flagged too, and the table says so
        Path log = tmp.resolve("requests.jsonl");
        StringBuilder lines = new StringBuilder();
        for (String[] row : rows) lines.append(JSON.writeValueAsString(Map.of("model", "m", "status", "200", "prompt", row[0]))).append('\n');
        Files.writeString(log, lines.toString());
        CliTest.Run table = drift("--requests", log.toString());
        assertEquals(3, table.code(), table.out() + table.err());
        assertTrue(table.out().contains("token_js_divergence") && table.out().contains("DRIFT"), table.out());
        // a threshold raised past the values lets the same data pass
        CliTest.Run lenient = drift("--requests", log.toString(), "--threshold", "token_js_divergence=1", "--threshold", "unseen_token_share=1",
                "--threshold", "prompt_length_ks=1", "--threshold", "prompt_perplexity=1e12");
        assertEquals(0, lenient.code(), lenient.out() + lenient.err());
    }

    @Test
    void badInputExitsTwoWithAMessage() throws IOException {
        assertUserError(drift("--data", tmp.resolve("missing.csv").toString()), "missing.csv");
        Path latin1 = tmp.resolve("latin1.csv");
        Files.write(latin1, "question,answer\ncaf\u00e9,ol\u00e9\n".getBytes(StandardCharsets.ISO_8859_1));
        assertUserError(drift("--data", latin1.toString()), "latin1.csv");
        Path badLog = tmp.resolve("bad.jsonl");
        Files.writeString(badLog, "{\"prompt\": \"fine\"}\n{not json\n");
        assertUserError(drift("--requests", badLog.toString()), "bad.jsonl:2");
        Path noTexts = tmp.resolve("no-texts.jsonl");
        Files.writeString(noTexts, "{\"model\": \"m\", \"status\": \"200\"}\n");
        assertUserError(drift("--requests", noTexts.toString()), "--log-texts");
        assertUserError(drift("--requests", noTexts.toString(), "--threshold", "vibes=2"), "vibes");
        assertUserError(CliTest.run("drift", tmp.toString(), "--data", DEMO_CSV.toString()), "config.resolved.yaml");
    }

    static void assertUserError(CliTest.Run r, String mustContain) {
        assertEquals(2, r.code(), r.out() + r.err());
        assertTrue(r.err().contains(mustContain), r.err());
        assertFalse(r.err().contains("\tat ") || r.err().contains("Exception"), r.err());
    }
}
