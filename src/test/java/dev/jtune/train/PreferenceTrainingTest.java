package dev.jtune.train;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import dev.jtune.config.Experiment;
import dev.jtune.metrics.TrainPoint;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.io.ByteArrayOutputStream;
import java.io.IOException;
import java.io.PrintStream;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * Preference tuning through the whole trainer on a tiny Llama and a real CSV of pairs: the first DPO step's loss is
 * ln 2 (the policy equals its reference: full fine-tuning's frozen copy, LoRA's adapters-off base), the metrics land in
 * metrics.jsonl under TRL's names, gradient accumulation equals the larger batch, and a resumed run continues exactly.
 */
class PreferenceTrainingTest {
    static final ObjectMapper JSON = new ObjectMapper();
    static final double LN2 = Math.log(2);

    @TempDir
    static Path tmp;
    static Path model;
    static Path csv;

    @BeforeAll
    static void setUp() throws IOException {
        model = tmp.resolve("base");
        TrainerTest.writeTinyLlama(model);
        StringBuilder sb = new StringBuilder("prompt,chosen,rejected\n");
        String[] topics = {"mean", "median", "variance", "regression", "overfitting", "recall"};
        for (int i = 0; i < 24; i++) {
            String t = topics[i % topics.length];
            sb.append("what is the ").append(t).append(" number ").append(i).append("?,")
              .append("the ").append(t).append(" is a statistic.,")
              .append("i do not know what ").append(t).append(" is.\n");
        }
        sb.append("same row,same answer,same answer\n");   // chosen == rejected: dropped and reported
        csv = Files.writeString(tmp.resolve("pairs.csv"), sb.toString());
    }

    static Path yaml(String name, String... extra) throws IOException {
        List<String> lines = new ArrayList<>(List.of(
                "model:",
                "  path: " + model,
                "data:",
                "  train_file: " + csv,
                "  format: preference",
                "  validation_split: 0.25",
                "  max_seq_length: 48",
                "training:",
                "  output_dir: " + tmp.resolve(name),
                "  method: dpo",
                "  max_steps: 4",
                "  per_device_train_batch_size: 2",
                "  per_device_eval_batch_size: 4",
                "  learning_rate: 5.0e-3",
                "  lr_scheduler_type: constant",
                "  logging_steps: 1",
                "  eval_steps: 2",
                "  save_steps: 2",
                "  device: cpu",
                "  seed: 3"));
        lines.addAll(List.of(extra));
        return Files.writeString(tmp.resolve(name + ".yaml"), String.join("\n", lines) + "\n");
    }

    static Trainer.Outcome train(Path yaml, String resume, String... sets) {
        ByteArrayOutputStream out = new ByteArrayOutputStream();
        try {
            return new Trainer(Experiment.load(yaml, List.of(sets)), new PrintStream(out, true, StandardCharsets.UTF_8), resume, false).run();
        } finally {
            System.out.print(out.toString(StandardCharsets.UTF_8));
        }
    }

    static List<JsonNode> metrics(String name) throws IOException {
        List<JsonNode> out = new ArrayList<>();
        for (String l : Files.readAllLines(tmp.resolve(name).resolve("metrics.jsonl"))) out.add(JSON.readTree(l));
        return out;
    }

    @Test
    void fullFineTuningStartsAtLn2AndLogsTrlMetrics() throws IOException {
        Trainer.Outcome o = train(yaml("full"), null);
        List<TrainPoint> log = o.trainLog();
        assertEquals(LN2, log.get(0).loss(), 1e-6, "policy == frozen reference at step 1");
        assertTrue(log.get(log.size() - 1).loss() < LN2 - 0.01, "DPO loss falls: " + log);
        JsonNode first = metrics("full").get(0);
        for (String k : new String[] {"rewards/chosen", "rewards/rejected", "rewards/accuracies", "rewards/margins", "logps/chosen", "logps/rejected"}) {
            assertTrue(first.has(k), k + " in " + first);
        }
        assertEquals(0.0, first.get("rewards/margins").asDouble(), 1e-6);
        JsonNode eval = metrics("full").stream().filter(n -> n.has("eval_loss")).reduce((a, b) -> b).orElseThrow();
        assertTrue(eval.has("eval_rewards/accuracies") && eval.has("eval_rewards/margins"), eval.toString());
        assertTrue(eval.get("eval_rewards/margins").asDouble() > 0, "the policy prefers the chosen answers of held-out pairs: " + eval);
        String report = Files.readString(tmp.resolve("full").resolve("report.html"));
        assertTrue(report.contains("<h2>Preferences</h2>") && report.contains("train-rewards-margins")
                && report.contains("eval-rewards-accuracies"), "the report charts margins and accuracy");
    }

    /**
     * Perplexity is the exp of a mean token cross-entropy: a supervised run logs it (eval and test), a DPO run, whose
     * loss is not one, logs and shows none (metrics.jsonl, console, report).
     */
    @Test
    void onlySupervisedRunsLogPerplexity() throws IOException {
        String[] small = {"data.test_split=0.2", "training.max_steps=2", "training.eval_steps=2", "training.save_steps=2"};
        String dpoConsole = trainCapturing(yaml("ppl-dpo"), small);
        List<JsonNode> dpo = metrics("ppl-dpo");
        assertTrue(dpo.stream().anyMatch(n -> n.has("eval_loss")) && dpo.stream().anyMatch(n -> n.has("test_loss")), dpo.toString());
        for (JsonNode n : dpo) {
            n.fieldNames().forEachRemaining(k -> assertFalse(k.contains("perplexity"), "no perplexity in a DPO run: " + n));
        }
        assertFalse(dpoConsole.contains("perplexity"), dpoConsole);
        assertFalse(Files.readString(tmp.resolve("ppl-dpo").resolve("report.html")).contains("perplexity"), "report.html");

        String[] sft = java.util.stream.Stream.concat(java.util.Arrays.stream(small),
                java.util.stream.Stream.of("training.method=sft", "data.format=text", "data.text_column=chosen")).toArray(String[]::new);
        String sftConsole = trainCapturing(yaml("ppl-sft"), sft);
        List<JsonNode> lines = metrics("ppl-sft");
        JsonNode eval = lines.stream().filter(n -> n.has("eval_loss")).findFirst().orElseThrow();
        assertEquals(Math.exp(eval.get("eval_loss").asDouble()), eval.get("eval_perplexity").asDouble(), 1e-9 * eval.get("eval_perplexity").asDouble());
        assertTrue(lines.stream().anyMatch(n -> n.has("test_perplexity")), lines.toString());
        assertTrue(sftConsole.contains("perplexity"), sftConsole);
    }

    /** {@link #train}, returning what the run printed. */
    static String trainCapturing(Path yaml, String... sets) {
        ByteArrayOutputStream out = new ByteArrayOutputStream();
        new Trainer(Experiment.load(yaml, List.of(sets)), new PrintStream(out, true, StandardCharsets.UTF_8), null, false).run();
        return out.toString(StandardCharsets.UTF_8);
    }

    /** ORPO, SimPO (no reference model) and KTO (labelled completions, KL rows) train through the same trainer. */
    @org.junit.jupiter.params.ParameterizedTest
    @org.junit.jupiter.params.provider.ValueSource(strings = {"orpo", "simpo", "kto"})
    void theOtherMethodsTrain(String method) throws IOException {
        String data = "  format: preference";
        if (method.equals("kto")) {
            StringBuilder sb = new StringBuilder("prompt,completion,label\n");
            for (int i = 0; i < 12; i++) sb.append("question ").append(i).append("?,").append(i % 2 == 0 ? "a fine answer" : "rubbish").append(',').append(i % 2 == 0).append('\n');
            Files.writeString(tmp.resolve("kto.csv"), sb.toString());
        }
        Path y = yaml("m-" + method);
        Trainer.Outcome o = train(y, null, "training.method=" + method, "training.max_steps=3", "training.eval_steps=3",
                "training.save_steps=3", method.equals("kto") ? "data.format=kto" : "data.format=preference",
                method.equals("kto") ? "data.train_file=" + tmp.resolve("kto.csv") : "data.format=preference");
        double first = o.trainLog().get(0).loss(), last = o.trainLog().get(2).loss();
        assertTrue(Double.isFinite(first) && last < first, method + ": " + o.trainLog());
        JsonNode line = metrics("m-" + method).get(0);
        if (method.equals("kto")) {   // a batch of only desirable (or undesirable) examples logs that side alone, as TRL
            assertTrue(line.has("rewards/chosen") || line.has("rewards/rejected"), line.toString());
        } else {
            assertTrue(line.has("rewards/chosen") && line.has("rewards/margins") && line.has("rewards/accuracies"), line.toString());
        }
        if (method.equals("orpo")) assertTrue(line.has("log_odds_ratio") && line.has("nll_loss"), line.toString());
        if (method.equals("kto")) assertTrue(line.has("kl"), line.toString());
    }

    /** metric_for_best_model: eval_rewards/margins picks the checkpoint with the largest validation margin. */
    @Test
    void theBestCheckpointCanBeChosenByTheRewardMargin() throws IOException {
        train(yaml("best"), null, "training.metric_for_best_model=eval_rewards/margins", "training.early_stopping_patience=3");
        double best = metrics("best").stream().filter(n -> n.has("eval_rewards/margins"))
                .mapToDouble(n -> n.get("eval_rewards/margins").asDouble()).max().orElseThrow();
        JsonNode state = JSON.readTree(tmp.resolve("best").resolve("checkpoint-4").resolve("trainer_state.json").toFile());
        assertEquals(best, state.get("best_metric").asDouble(), 1e-9, state.toString());
    }

    @Test
    void loraStartsAtLn2WithTheAdaptersOffAsReference() throws IOException {
        Trainer.Outcome o = train(yaml("lora", "lora:", "  enabled: true", "  r: 4", "  alpha: 8"), null);
        assertEquals(LN2, o.trainLog().get(0).loss(), 1e-6);
        assertTrue(o.trainLog().get(3).loss() < LN2, o.trainLog().toString());
    }

    /** Gradient accumulation 2 of one pair per micro-batch (chosen and rejected together) equals one batch of 2 pairs. */
    @Test
    void accumulationEqualsTheLargerBatch() throws IOException {
        Trainer.Outcome big = train(yaml("acc-big", "  gradient_accumulation_steps: 1"), null, "training.per_device_train_batch_size=2",
                "training.max_steps=3");
        Trainer.Outcome acc = train(yaml("acc-small", "  gradient_accumulation_steps: 2"), null, "training.per_device_train_batch_size=1",
                "training.max_steps=3");
        sameRun(big, acc, 3, 1e-5, "acc-big", "acc-small");
    }

    /** Activation checkpointing recomputes the blocks in the backward: the same losses, gradients and reward metrics. */
    @Test
    void activationCheckpointingChangesNothing() throws IOException {
        Trainer.Outcome plain = train(yaml("ckpt-off"), null, "training.max_steps=3");
        Trainer.Outcome ckpt = train(yaml("ckpt-on", "  gradient_checkpointing: true"), null, "training.max_steps=3");
        sameRun(plain, ckpt, 3, 1e-6, "ckpt-off", "ckpt-on");
    }

    /**
     * precompute_ref_log_probs: the reference log-probabilities computed once before training by the policy itself
     * (still the base: no frozen copy is loaded) give the same losses and rewards as the frozen copy evaluated on the
     * fly in every step.
     */
    @Test
    void precomputedReferenceEqualsTheOnTheFlyOne() throws IOException {
        Trainer.Outcome fly = train(yaml("ref-fly"), null, "training.max_steps=3");
        ByteArrayOutputStream console = new ByteArrayOutputStream();
        Trainer.Outcome pre = new Trainer(Experiment.load(yaml("ref-pre"), List.of("training.max_steps=3",
                "preference.precompute_ref_log_probs=true")), new PrintStream(console, true, StandardCharsets.UTF_8), null, false).run();
        String text = console.toString(StandardCharsets.UTF_8);
        assertTrue(text.contains("reference log-probabilities of 48 sequences precomputed with the policy before its first update")
                && text.contains("; reference: precomputed reference log-probabilities (48 sequences)"), text);
        assertEquals(LN2, pre.trainLog().get(0).loss(), 1e-6);
        for (int i = 0; i < 3; i++) assertEquals(fly.trainLog().get(i).loss(), pre.trainLog().get(i).loss(), 1e-6, "step " + (i + 1));
        sameMetrics(metrics("ref-fly"), metrics("ref-pre"), 1e-5, "precomputed reference");
    }

    /**
     * precompute_ref_log_probs across a resume: the resumed run precomputes with the base weights again (its step is
     * assembled before the checkpoint is restored), so steps 3 and 4 are those of the run that never stopped.
     */
    @Test
    void precomputedReferenceSurvivesAResume() throws IOException {
        Trainer.Outcome whole = train(yaml("pre-whole"), null, "preference.precompute_ref_log_probs=true");
        Path cut = yaml("pre-cut");
        train(cut, null, "preference.precompute_ref_log_probs=true", "training.max_steps=2");
        Trainer.Outcome resumed = train(cut, "auto", "preference.precompute_ref_log_probs=true");
        for (int s = 3; s <= 4; s++) {
            int step = s;
            assertEquals(whole.trainLog().stream().filter(p -> p.step() == step).findFirst().orElseThrow().loss(),
                    resumed.trainLog().stream().filter(p -> p.step() == step).findFirst().orElseThrow().loss(), "step " + s + ", bit for bit");
        }
    }

    /** QLoRA: DPO on a base quantized to 4 bits; the reference is that base with the adapters off, so step 1 is ln 2. */
    @Test
    void qloraStartsAtLn2AndLearns() throws IOException {
        ByteArrayOutputStream console = new ByteArrayOutputStream();
        Trainer.Outcome o = new Trainer(Experiment.load(yaml("qlora", "lora:", "  enabled: true", "  r: 4", "  alpha: 8"),
                List.of("model.quantization.load_in_4bit=true", "model.quantization.bnb_4bit_quant_type=nf4", "training.max_steps=6")),
                new PrintStream(console, true, StandardCharsets.UTF_8), null, false).run();
        String text = console.toString(StandardCharsets.UTF_8);
        assertTrue(text.contains("base frozen in 4 bits") && text.contains("reference: the base with the LoRA adapters switched off"), text);
        List<TrainPoint> log = o.trainLog();
        assertEquals(LN2, log.get(0).loss(), 1e-6, "the 4-bit base with adapters off is the policy at step 1");
        assertTrue(log.get(5).loss() < LN2 - 0.01, "DPO on the 4-bit base learns: " + log);
    }

    /** Two runs (output dirs {@code a}, {@code b}) agree step by step: losses and reward metrics within tol, grad norms 10·tol. */
    static void sameRun(Trainer.Outcome want, Trainer.Outcome got, int steps, double tol, String a, String b) throws IOException {
        for (int i = 0; i < steps; i++) {
            assertEquals(want.trainLog().get(i).loss(), got.trainLog().get(i).loss(), tol, b + ", step " + (i + 1));
            assertEquals(want.trainLog().get(i).gradNorm(), got.trainLog().get(i).gradNorm(), 10 * tol, b + ", grad norm, step " + (i + 1));
        }
        sameMetrics(metrics(a), metrics(b), tol, b);
    }

    /**
     * The TRL metrics of two runs' train lines (steps in order) agree within {@code tol} (relative above 1); accuracies only where no pair
     * ties (at step 1 every margin is 0 up to rounding, and {@code chosen > rejected} of a tie is rounding's choice).
     */
    static void sameMetrics(List<JsonNode> want, List<JsonNode> got, double tol, String what) {
        List<JsonNode> a = want.stream().filter(n -> n.has("rewards/margins")).toList();
        List<JsonNode> b = got.stream().filter(n -> n.has("rewards/margins")).toList();
        assertEquals(a.size(), b.size(), what + ": logged lines");
        assertTrue(a.size() >= 3, what + ": " + a);
        for (int i = 0; i < a.size(); i++) {
            for (String k : new String[] {"rewards/chosen", "rewards/rejected", "rewards/margins", "rewards/accuracies", "logps/chosen", "logps/rejected"}) {
                if (k.equals("rewards/accuracies") && Math.abs(a.get(i).get("rewards/margins").asDouble()) < 1e-4) continue;
                double ref = a.get(i).get(k).asDouble();
                assertEquals(ref, b.get(i).get(k).asDouble(), tol * Math.max(1, Math.abs(ref)), what + ", line " + (i + 1) + ": " + k);
            }
        }
    }

    /** A run stopped at step 2 and resumed logs the same losses and reward metrics, bit for bit, as one that never stopped. */
    @Test
    void resumeContinuesExactly() throws IOException {
        Trainer.Outcome whole = train(yaml("whole", "  gradient_checkpointing: true"), null);
        Path cut = yaml("cut", "  gradient_checkpointing: true");
        train(cut, null, "training.max_steps=2");
        Trainer.Outcome resumed = train(cut, "auto");
        List<TrainPoint> a = whole.trainLog(), b = resumed.trainLog();
        assertEquals(4, b.get(b.size() - 1).step());
        for (int s = 3; s <= 4; s++) {
            int step = s;
            double want = a.stream().filter(p -> p.step() == step).findFirst().orElseThrow().loss();
            double got = b.stream().filter(p -> p.step() == step).findFirst().orElseThrow().loss();
            assertEquals(want, got, "step " + s + ", bit for bit");
        }
        List<JsonNode> w = metrics("whole").stream().filter(n -> n.has("rewards/margins")).toList();
        List<JsonNode> c = metrics("cut").stream().filter(n -> n.has("rewards/margins")).toList();
        assertEquals(4, c.size(), "every step logged once: " + c);
        for (int i = 0; i < 4; i++) assertEquals(w.get(i).toString().replaceAll("\"(tokens_per_second|epoch)\":[^,}]*", ""),
                c.get(i).toString().replaceAll("\"(tokens_per_second|epoch)\":[^,}]*", ""), "line " + (i + 1));
    }
}
