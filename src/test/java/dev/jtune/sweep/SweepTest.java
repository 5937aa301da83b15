package dev.jtune.sweep;

import com.fasterxml.jackson.databind.JsonNode;
import dev.jtune.cli.CliTest;
import dev.jtune.config.Experiment;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.HashSet;
import java.util.List;
import java.util.Map;
import java.util.Set;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNotNull;
import static org.junit.jupiter.api.Assertions.assertTrue;

/** `jtune sweep` end to end on a tiny model: random search with ASHA pruning, a grid, and specs refused before any trial. */
class SweepTest {
    @TempDir
    static Path tmp;
    static SweepFixture fx;

    @BeforeAll
    static void setUp() throws IOException {
        fx = new SweepFixture(tmp);
    }

    @Test
    void randomSweepWithAshaPrunesAndPicksTheBest() throws IOException {
        Path yaml = fx.experiment("random", 8);
        Path dir = tmp.resolve("random-sweep");
        CliTest.Run r = SweepFixture.sweep(yaml.toString(), "--param", "training.learning_rate=loguniform(1e-5,3e-2)",
                "--trials", "4", "--prune", "asha", "--eta", "2", "--seed", "3", "--out", dir.toString());
        assertEquals(0, r.code(), r.err() + r.out());
        JsonNode board = SweepFixture.leaderboard(dir);
        assertEquals(4, board.get("trials").size());

        // every trial is a normal run directory; the metric is its last evaluation's eval_loss
        List<JsonNode> complete = new ArrayList<>(), pruned = new ArrayList<>();
        for (JsonNode t : board.get("trials")) {
            Path trialDir = dir.resolve(String.format("trial-%03d", t.get("trial").asInt()));
            for (String f : new String[] {"config.resolved.yaml", "metrics.jsonl", "report.html"}) assertTrue(Files.isRegularFile(trialDir.resolve(f)), trialDir + "/" + f);
            Map<Long, Double> evals = SweepFixture.evalLosses(trialDir);
            double last = new ArrayList<>(evals.values()).get(evals.size() - 1);
            assertEquals(last, t.get("eval_loss").asDouble(), 0.0, "trial " + t.get("trial"));
            Experiment e = Experiment.load(trialDir.resolve("config.resolved.yaml"), List.of());
            assertEquals(Double.parseDouble(t.get("params").get("training.learning_rate").asText()), e.training().learningRate(), 0.0);
            switch (t.get("status").asText()) {
                case "complete" -> complete.add(t);
                case "pruned" -> pruned.add(t);
                default -> throw new AssertionError("unexpected status " + t);
            }
        }
        assertFalse(pruned.isEmpty(), "ASHA pruned no trial: " + board);
        assertFalse(complete.isEmpty(), "no trial completed: " + board);

        // a pruned trial stopped early, says why in its report, and was really worse than the earlier trials at its rung
        for (JsonNode t : pruned) {
            long steps = t.get("steps").asLong();
            assertTrue(steps < 8, "pruned before the end: " + t);
            int n = t.get("trial").asInt();
            Path trialDir = dir.resolve(String.format("trial-%03d", n));
            assertTrue(Files.readString(trialDir.resolve("report.html")).contains("pruned by ASHA at step " + steps), "reason in the report");
            assertTrue(t.get("note").asText().startsWith("pruned by ASHA at step " + steps), t.toString());
            double own = SweepFixture.evalLosses(trialDir).get(steps);
            int better = 0, earlier = 0;
            for (int m = 1; m < n; m++) {
                Double v = SweepFixture.evalLosses(dir.resolve(String.format("trial-%03d", m))).get(steps);
                if (v != null) {
                    earlier++;
                    if (v < own) better++;
                }
            }
            assertTrue(better >= Math.max(1, (earlier + 1) / 2), "trial " + n + " at step " + steps + ": " + better + " of " + earlier
                    + " earlier trials were better, ASHA (eta 2) keeps the best half");
        }

        // the best: the complete trial with the lowest eval_loss; best.yaml is its experiment, and jtune train accepts it
        JsonNode best = complete.stream().min((a, b) -> Double.compare(a.get("eval_loss").asDouble(), b.get("eval_loss").asDouble())).orElseThrow();
        assertEquals(best.get("trial").asInt(), board.get("best_trial").asInt());
        assertEquals(1, board.get("trials").get(0).get("rank").asInt());
        assertEquals(best.get("trial").asInt(), board.get("trials").get(0).get("trial").asInt());
        Experiment bestExp = Experiment.load(dir.resolve("best.yaml"), List.of());
        Experiment trialExp = Experiment.load(dir.resolve(String.format("trial-%03d", best.get("trial").asInt())).resolve("config.resolved.yaml"), List.of());
        assertEquals(trialExp.training().learningRate(), bestExp.training().learningRate(), 0.0);
        assertEquals(dir.resolve("best").toAbsolutePath().normalize(), bestExp.training().outputDir());
        assertTrue(bestExp.sweep().params().isEmpty(), "a trial's experiment holds no sweep");
        assertTrue(r.out().contains("jtune train " + dir.resolve("best.yaml")), r.out());

        // leaderboard.csv: a header and one row per trial, in rank order
        List<String> csv = Files.readAllLines(dir.resolve("leaderboard.csv"));
        assertEquals("rank,trial,status,eval_loss,steps,training.learning_rate,note", csv.get(0));
        assertEquals(5, csv.size());
        assertTrue(csv.get(1).startsWith("1," + best.get("trial").asInt() + ",complete,"), csv.get(1));

        // sweep.html: one page with every trial's curve and the table
        String html = Files.readString(dir.resolve("sweep.html"));
        for (int i = 1; i <= 4; i++) assertTrue(html.contains("class=\"trial-" + i + "\"") || html.contains("trial-00" + i), "trial " + i + " on the chart");
        assertTrue(html.contains("<svg") && html.contains("<table class=\"board\"") && !html.contains("src=\"http"), "self-contained");

        // the same seed plans the same trials
        SweepState again = SweepState.read(dir);
        SweepSpec spec = again.spec;
        List<Map<String, String>> plan = TrialSampler.plan(spec);
        for (int i = 0; i < 4; i++) assertEquals(again.trials.get(i).values, plan.get(i));
    }

    @Test
    void gridCoversExactlyTheProduct() throws IOException {
        // the grid and one key in the file's sweep: section, which jtune train reads and ignores; one more key on the command line
        Path yaml = fx.experiment("grid", 2, "sweep:", "  method: grid", "  params:", "    - training.learning_rate=[1e-3,3e-3]",
                "    - training.warmup_steps=[5]");
        assertEquals(dev.jtune.config.SweepSection.Method.GRID, Experiment.load(yaml, List.of()).sweep().method());
        Path dir = tmp.resolve("grid-sweep");
        CliTest.Run r = SweepFixture.sweep(yaml.toString(), "--param", "training.warmup_steps=int(0,1)",
                "--set", "training.lr_scheduler_type=constant_with_warmup", "--out", dir.toString());
        assertEquals(0, r.code(), r.err() + r.out());
        JsonNode board = SweepFixture.leaderboard(dir);
        Set<String> seen = new HashSet<>();
        for (JsonNode t : board.get("trials")) {
            assertEquals("complete", t.get("status").asText());
            Experiment e = Experiment.load(dir.resolve(String.format("trial-%03d", t.get("trial").asInt())).resolve("config.resolved.yaml"), List.of());
            assertTrue(seen.add(e.training().learningRate() + "/" + e.training().warmupSteps()), "twice: " + t);
            assertEquals("constant_with_warmup", e.training().lrSchedulerType().name().toLowerCase(java.util.Locale.ROOT), "--set applies to every trial");
        }
        Set<String> product = new HashSet<>();
        for (double lr : new double[] {1e-3, 3e-3}) for (int w = 0; w <= 1; w++) product.add(lr + "/" + w);
        assertEquals(product, seen);

        // --trials caps the grid, in the grid's order
        SweepSpec spec = SweepState.read(dir).spec;
        SweepSpec capped = new SweepSpec(spec.experiment(), spec.sets(), spec.params(), spec.method(), 3, spec.prune(), spec.metric(),
                spec.direction(), spec.seed(), spec.eta());
        assertEquals(4, TrialSampler.plan(spec).size());
        assertEquals(TrialSampler.plan(spec).subList(0, 3), TrialSampler.plan(capped));
    }

    /**
     * A value only the run can refuse (a device index that no machine has: validation checks the form "cuda:N", the run
     * looks for the device): failed, and the sweep goes on. (max_seq_length beyond the model's positions, used here
     * first, is refused by validation now, before any trial runs: ModelChecks reads config.json when the file loads.)
     */
    @Test
    void aFailingTrialIsRecordedAndTheSweepGoesOn() throws IOException {
        Path yaml = fx.experiment("failing", 2);
        Path dir = tmp.resolve("failing-sweep");
        CliTest.Run r = SweepFixture.sweep(yaml.toString(), "--method", "grid", "--param", "training.device=[cuda:99,cpu]", "--out", dir.toString());
        assertEquals(0, r.code(), r.err() + r.out());
        JsonNode board = SweepFixture.leaderboard(dir);
        JsonNode first = board.get("trials").get(0), last = board.get("trials").get(1);
        assertEquals(2, first.get("trial").asInt());
        assertEquals("complete", first.get("status").asText());
        assertEquals(1, last.get("trial").asInt());
        assertEquals("failed", last.get("status").asText());
        assertTrue(last.get("note").asText().contains("cuda:99"), last.toString());
        assertTrue(last.get("eval_loss").isNull());
        assertEquals(2, board.get("best_trial").asInt());
    }

    @Test
    void badSpecsExit2BeforeAnyTrialNamingTheParam() throws IOException {
        Path yaml = fx.experiment("bad", 2);
        String[][] cases = {
                {"training.learnin_rate=[1e-3]", "--param training.learnin_rate=[1e-3]", "learning_rate"},
                {"training.learning_rate=uniform(1e-3,1e-3)", "--param training.learning_rate=uniform(1e-3,1e-3)", "empty"},
                {"training.learning_rate=[]", "--param training.learning_rate=[]", "empty"},
                {"training.learning_rate=loguniform(1e-2,1e-4)", "--param training.learning_rate=loguniform(1e-2,1e-4)", "lo 1e-2 > hi 1e-4"},
                {"training.learning_rate=[1e-3,-1]", "--param training.learning_rate=[1e-3,-1]", "training.learning_rate"},
                {"lora.r=int(0,4)", "--param lora.r=int(0,4)", "lora.r"},
                {"training.learning_rate=normal(0,1)", "--param training.learning_rate=normal(0,1)", "uniform(lo,hi)"},
        };
        for (int i = 0; i < cases.length; i++) {
            Path dir = tmp.resolve("bad-" + i);
            CliTest.Run r = SweepFixture.sweep(yaml.toString(), "--method", "grid", "--param", cases[i][0], "--out", dir.toString());
            SweepFixture.assertUserError(r, cases[i][1], cases[i][2]);
            assertFalse(Files.exists(dir.resolve("trial-001")), "no trial ran for " + cases[i][0]);
        }
        Path dir = tmp.resolve("bad-random");
        CliTest.Run r = SweepFixture.sweep(yaml.toString(), "--param", "training.learning_rate=uniform(-1,1e-3)", "--trials", "2", "--out", dir.toString());
        SweepFixture.assertUserError(r, "--param training.learning_rate=uniform(-1,1e-3)", "-1.0");
        SweepFixture.assertUserError(SweepFixture.sweep(yaml.toString(), "--param", "training.learning_rate=[1e-3]", "--out",
                tmp.resolve("no-trials").toString()), "--trials");
        SweepFixture.assertUserError(SweepFixture.sweep(yaml.toString(), "--param", "training.learning_rate=[1e-3]", "--trials", "1",
                "--metric", "accuracy", "--out", tmp.resolve("bad-metric").toString()), "--metric accuracy");
        // a preference run logs no perplexity (its loss is not a token cross-entropy): nothing to rank by
        SweepFixture.assertUserError(SweepFixture.sweep(yaml.toString(), "--set", "training.method=dpo", "--set", "data.format=preference",
                "--param", "training.learning_rate=[1e-3]", "--trials", "1", "--metric", "eval_perplexity",
                "--out", tmp.resolve("dpo-perplexity").toString()), "--metric eval_perplexity", "training.method dpo logs no perplexity");
        assertFalse(Files.exists(tmp.resolve("dpo-perplexity").resolve("trial-001")), "no trial ran");
        assertNotNull(yaml);
    }
}
