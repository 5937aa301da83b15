package dev.jtune.train;

import dev.jtune.train.checkpoint.Checkpoints;
import dev.jtune.train.checkpoint.RunManifest;
import dev.jtune.train.step.StepLoss;
import dev.jtune.train.step.Trainable;
import dev.jtune.config.Precision;
import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import dev.jtune.config.Experiment;
import dev.jtune.model.ModelConfig;
import dev.jtune.util.Tensors;
import dev.jtune.util.UserError;
import org.bytedeco.pytorch.global.torch;
import org.bytedeco.pytorch.global.torch.ScalarType;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.io.ByteArrayOutputStream;
import java.io.IOException;
import java.io.PrintStream;
import java.io.RandomAccessFile;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Random;
import java.util.concurrent.TimeUnit;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * Never lose a run: exact resume after SIGKILL of a real child JVM, a clean stop on SIGTERM, damaged
 * checkpoints, numeric faults, out-of-memory messages, and output directories that belong to another run.
 */
class ResumeTest {
    static final ObjectMapper JSON = new ObjectMapper();

    @TempDir
    static Path tmp;
    static Path model, csv;

    @BeforeAll
    static void setUp() throws IOException {
        model = tmp.resolve("base");
        TrainerTest.writeTinyLlama(model);
        StringBuilder sb = new StringBuilder("question,answer\n");
        for (int i = 0; i < 40; i++) sb.append("what is item ").append(i).append("?,item ").append(i).append(" is a number; it follows ").append(i - 1).append(".\n");
        csv = Files.writeString(tmp.resolve("qa.csv"), sb.toString());
    }

    /** An experiment file: 12 steps, checkpoints every 3, a loss logged every step. */
    static Path experiment(String name, String... extra) throws IOException {
        return experiment(name, List.of(), extra);
    }

    /** As above with {@code modelExtra} lines in the model section ("  attention_dropout: 0.1"). */
    static Path experiment(String name, List<String> modelExtra, String... extra) throws IOException {
        Path yaml = tmp.resolve(name + ".yaml");
        List<String> lines = new ArrayList<>(List.of("model:", "  path: " + model));
        lines.addAll(modelExtra);
        lines.addAll(List.of("data:", "  train_file: " + csv,
                "  format: instruction", "  prompt_column: question", "  response_column: answer", "  validation_split: 0.2",
                "  max_seq_length: 48", "training:", "  output_dir: " + tmp.resolve(name), "  max_steps: 12",
                "  per_device_train_batch_size: 4", "  learning_rate: 3.0e-3", "  lr_scheduler_type: cosine", "  warmup_steps: 2",
                "  logging_steps: 1", "  eval_steps: 3", "  save_steps: 3", "  save_total_limit: 3", "  device: cpu", "  seed: 11"));
        lines.addAll(List.of(extra));
        Files.writeString(yaml, String.join("\n", lines) + "\n");
        return yaml;
    }

    /** `jtune train` in a child JVM with one intra-op thread, so that every run sums in the same order. */
    static Process child(Path yaml, Path log, String... args) throws IOException {
        List<String> cmd = new ArrayList<>(List.of(Path.of(System.getProperty("java.home"), "bin", "java").toString(),
                "-cp", System.getProperty("java.class.path"), "dev.jtune.cli.Main", "train", yaml.toString()));
        cmd.addAll(List.of(args));
        ProcessBuilder pb = new ProcessBuilder(cmd).redirectErrorStream(true).redirectOutput(log.toFile());
        pb.environment().put("JTUNE_NUM_THREADS", "1");
        return pb.start();
    }

    /** Train losses by step from metrics.jsonl. */
    static Map<Long, Double> losses(Path outputDir) throws IOException {
        Map<Long, Double> out = new LinkedHashMap<>();
        for (String line : Files.readAllLines(outputDir.resolve("metrics.jsonl"))) {
            JsonNode n = JSON.readTree(line);
            if (n.has("loss")) out.put(n.get("step").asLong(), n.get("loss").asDouble());
        }
        return out;
    }

    static long lastLoggedStep(Path outputDir) throws IOException {
        Path m = outputDir.resolve("metrics.jsonl");
        if (!Files.exists(m)) return 0;
        long last = 0;
        for (String line : Files.readAllLines(m)) {
            try {
                JsonNode n = JSON.readTree(line);
                if (n.has("loss")) last = Math.max(last, n.get("step").asLong());
            } catch (IOException cut) {
                // the child may be writing this line right now
            }
        }
        return last;
    }

    static void waitForStep(Process p, Path outputDir, long step) throws Exception {
        long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(120);
        while (lastLoggedStep(outputDir) < step) {
            assertTrue(p.isAlive(), "the child run ended before step " + step);
            assertTrue(System.nanoTime() < deadline, "no step " + step + " within 120 s");
            Thread.sleep(20);
        }
    }

    /**
     * The exactness test the issue asks for: a real child JVM is killed with SIGKILL at a random step after a
     * checkpoint, `--resume auto` continues it, and every loss after the resume point equals the uninterrupted
     * run bit for bit (fp32, CPU). LoRA with dropout, so the random generator's state matters too.
     */
    /**
     * Then with activation checkpointing and every regulariser of issue 17 on at once (one child-JVM variant, to keep
     * the suite fast): the recompute redraws the dropout masks (LoRA's and the model's attention dropout), NEFTune
     * noise draws from the same checkpointed generator, label smoothing changes the loss, and the generator state
     * still resumes. {@link #regularisersAreWiredThroughAndChangeTheLoss} checks that the keys are really on.
     */
    @org.junit.jupiter.params.ParameterizedTest(name = "{0}")
    @org.junit.jupiter.params.provider.ValueSource(strings = {"plain", "regularised"})
    void sigkillThenResumeGivesTheSameLossesBitForBit(String variant) throws Exception {
        boolean checkpointing = !variant.equals("plain");
        List<String> training = new ArrayList<>(List.of("  gradient_checkpointing: " + checkpointing));
        if (variant.equals("regularised")) training.addAll(REGULARISERS);
        training.addAll(List.of("lora:", "  enabled: true", "  r: 4", "  dropout: 0.1", "  target_modules: all-linear"));
        String[] lora = training.toArray(String[]::new);
        List<String> modelExtra = variant.equals("regularised") ? MODEL_DROPOUT : List.of();
        String whole = "whole-" + variant, cutName = "cut-" + variant;
        Path cut = experiment(cutName, modelExtra, lora);
        Process ref = child(experiment(whole, modelExtra, lora), tmp.resolve(whole + ".log"));
        assertEquals(0, ref.waitFor(), Files.readString(tmp.resolve(whole + ".log")));
        Map<Long, Double> want = losses(tmp.resolve(whole));
        assertEquals(12, want.size());

        int killAt = 4 + new Random().nextInt(5);   // steps 4..8: after the checkpoint at 3 or 6
        Process victim = child(cut, tmp.resolve(cutName + ".log"));
        waitForStep(victim, tmp.resolve(cutName), killAt);
        victim.destroyForcibly().waitFor();   // SIGKILL: no chance to clean up
        long reached = lastLoggedStep(tmp.resolve(cutName));
        assertTrue(reached < 12, "killed before the end (reached " + reached + ")");

        Path resumeLog = tmp.resolve("resume-" + variant + ".log");
        Process resumed = child(cut, resumeLog, "--resume", "auto");
        assertEquals(0, resumed.waitFor(), Files.readString(resumeLog));
        String log = Files.readString(resumeLog);
        assertTrue(log.contains("resume: continuing from"), log);
        Map<Long, Double> got = losses(tmp.resolve(cutName));
        assertEquals(want.keySet(), got.keySet(), "every step logged exactly once");
        for (long s = 1; s <= 12; s++) assertEquals(want.get(s), got.get(s), "step " + s + " (killed after step " + reached + ")");
    }

    /** The training keys of the "regularised" variant, and its model key. */
    static final List<String> REGULARISERS = List.of("  neftune_noise_alpha: 5", "  label_smoothing_factor: 0.1");
    static final List<String> MODEL_DROPOUT = List.of("  attention_dropout: 0.1");

    /**
     * What the "regularised" resume variant relies on (a resume test of settings never applied could not fail): the
     * model keys reach the model a run trains, and label smoothing reaches the run's step (the first loss changes).
     * That each regulariser in the model changes the loss is RegularisationTest's.
     */
    @Test
    void regularisersAreWiredThroughAndChangeTheLoss() throws Exception {
        Experiment exp = Experiment.load(experiment("wired", MODEL_DROPOUT, REGULARISERS.toArray(String[]::new)), List.of());
        ModelConfig config = ModelConfig.read(model);
        try (Trainable t = Trainable.forExperiment(exp, config, new org.bytedeco.pytorch.Device("cpu"), Precision.FP32,
                dev.jtune.kernels.Ops.AUTO)) {
            assertEquals(new dev.jtune.model.ModelDropout(0.1, 0, 0), t.model.dropout());
            assertEquals(5.0, t.model.neftuneNoiseAlpha());
        }
        double plain = train(experiment("wired-plain"), null, false, "training.max_steps=1").trainLog().get(0).loss();
        double smoothed = train(experiment("wired-smoothed"), null, false, "training.max_steps=1", "training.label_smoothing_factor=0.1")
                .trainLog().get(0).loss();
        assertTrue(smoothed != plain, "label smoothing changes the first loss (the same batch, the same weights): " + smoothed + " vs " + plain);
    }


    /** SIGTERM: the current step finishes, a checkpoint is written, exit 0 with the command to resume. */
    @Test
    void sigtermStopsCleanlyWithACheckpoint() throws Exception {
        Path yaml = experiment("term");
        Process p = child(yaml, tmp.resolve("term.log"));
        waitForStep(p, tmp.resolve("term"), 2);
        p.destroy();   // SIGTERM
        assertEquals(0, p.waitFor(), Files.readString(tmp.resolve("term.log")));
        String log = Files.readString(tmp.resolve("term.log"));
        assertTrue(log.contains("SIGTERM: finishing the current step") && log.contains("resume with: jtune train"), log);
        List<Path> cks = Checkpoints.list(tmp.resolve("term"));
        Path last = cks.get(cks.size() - 1);
        assertTrue(Checkpoints.verify(last).isEmpty(), "the checkpoint written on SIGTERM is complete");
        Process resumed = child(yaml, tmp.resolve("term2.log"), "--resume", "auto");
        assertEquals(0, resumed.waitFor(), Files.readString(tmp.resolve("term2.log")));
        assertEquals(12, losses(tmp.resolve("term")).size());
    }

    static Trainer.Outcome train(Path yaml, String resume, boolean overwrite, String... sets) {
        return train(yaml, java.util.function.UnaryOperator.identity(), resume, overwrite, sets);
    }

    static Trainer.Outcome train(Path yaml, java.util.function.UnaryOperator<StepLoss> loss, String resume, boolean overwrite, String... sets) {
        return new Trainer(Experiment.load(yaml, List.of(sets)), new PrintStream(new ByteArrayOutputStream(), true, StandardCharsets.UTF_8),
                resume, overwrite, loss).run();
    }

    /**
     * The run's loss with the sums of optimizer steps (1-based) in {@code steps} made NaN, as a corrupt batch would make
     * them: it counts steps by {@link StepLoss#startStep}, which the step calls once before its first micro-batch.
     */
    static java.util.function.UnaryOperator<StepLoss> poisoned(java.util.function.LongPredicate steps) {
        return real -> new StepLoss() {
            long step;

            @Override
            public long units(dev.jtune.data.Batch b) {
                return real.units(b);
            }

            @Override
            public org.bytedeco.pytorch.Tensor sum(dev.jtune.model.CausalLM model, org.bytedeco.pytorch.Tensor hidden,
                                                   dev.jtune.data.Batch b, dev.jtune.data.TensorBatch tb) {
                org.bytedeco.pytorch.Tensor sum = real.sum(model, hidden, b, tb);
                return steps.test(step) ? sum.mul(new org.bytedeco.pytorch.Scalar(Double.NaN)) : sum;
            }

            @Override
            public void startStep() {
                step++;
                real.startStep();
            }

            @Override
            public java.util.Map<String, Double> stepMetrics() {
                return real.stepMetrics();
            }
        };
    }

    @Test
    void damagedCheckpointIsRefusedByNameAndAutoFallsBack() throws Exception {
        Path yaml = experiment("damaged");
        train(yaml, null, false, "training.max_steps=6");
        List<Path> cks = Checkpoints.list(tmp.resolve("damaged"));
        Path newest = cks.get(cks.size() - 1), previous = cks.get(cks.size() - 2);
        try (RandomAccessFile f = new RandomAccessFile(newest.resolve("model.safetensors").toFile(), "rw")) {
            f.seek(f.length() - 3);
            f.write(0x5A);
        }
        UserError e = assertThrows(UserError.class, () -> train(yaml, newest.toString(), false, "training.max_steps=6"));
        assertTrue(e.getMessage().contains("model.safetensors does not match its hash"), e.getMessage());
        ByteArrayOutputStream out = new ByteArrayOutputStream();
        new Trainer(Experiment.load(yaml, List.of("training.max_steps=6")), new PrintStream(out, true, StandardCharsets.UTF_8), "auto", false).run();
        String log = out.toString(StandardCharsets.UTF_8);
        assertTrue(log.contains("skipping " + newest) && log.contains("continuing from " + previous), log);
    }

    @Test
    void changedDataRefusesToResume() throws Exception {
        Path data = Files.copy(csv, tmp.resolve("changing.csv"));
        Path yaml = experiment("changed", "  max_bad_steps: 5");
        String set = "data.train_file=" + data;
        train(yaml, null, false, set, "training.max_steps=3");
        Files.writeString(data, Files.readString(data) + "one more?,one more row.\n");
        UserError e = assertThrows(UserError.class, () -> train(yaml, "auto", false, set));
        assertTrue(e.getMessage().contains("changing.csv changed since"), e.getMessage());
    }

    /** A NaN loss skips exactly that step and counts it; max_bad_steps in a row stop the run, the last good checkpoint intact. */
    @Test
    void nanStepsAreSkippedThenStopTheRun() throws Exception {
        Trainer.Outcome o = train(experiment("nan-one"), poisoned(s -> s == 4), null, false);
        assertEquals(1, o.skippedSteps());
        assertTrue(Double.isNaN(o.trainLog().get(3).gradNorm()) && Double.isNaN(o.trainLog().get(3).loss()), "step 4 logged as non-finite");
        assertTrue(Double.isFinite(o.trainLog().get(11).loss()), "training goes on");
        // as in transformers (optimizer_step_was_skipped), a skipped step does not advance the schedule
        assertEquals(o.trainLog().get(3).learningRate(), o.trainLog().get(4).learningRate(), "step 5 runs at step 4's rate");
        assertTrue(o.trainLog().get(4).learningRate() != o.trainLog().get(5).learningRate(), "then the cosine goes on");

        Path yaml = experiment("nan-many", "  max_bad_steps: 3");
        UserError e = assertThrows(UserError.class, () -> train(yaml, poisoned(s -> s >= 5), null, false));
        List<Path> cks = Checkpoints.list(tmp.resolve("nan-many"));
        Path last = cks.get(cks.size() - 1);
        assertTrue(e.getMessage().contains("stopping at step 7: 3 consecutive steps") && e.getMessage().contains(last.toString()), e.getMessage());
        assertTrue(Checkpoints.stepOf(last) <= 6, "nothing saved after the run stopped");
        assertTrue(Checkpoints.verify(last).isEmpty(), "the last good checkpoint is intact");
        // skipped steps never touch the weights: the checkpoint holds finite values only
        try (dev.jtune.model.CausalLM m = dev.jtune.model.ModelLoader.load(last, ScalarType.Float, new org.bytedeco.pytorch.Device("cpu"))) {
            for (var t : m.parameters().values()) assertTrue(torch.isfinite(t).all().item_bool(), "finite weights");
        }
    }

    @Test
    void anotherRunsOutputDirIsNotOverwrittenUnlessAsked() throws Exception {
        Path yaml = experiment("owned");
        train(yaml, null, false, "training.max_steps=3");
        Path mine = Files.writeString(tmp.resolve("owned").resolve("notes.txt"), "the user's own file");
        UserError e = assertThrows(UserError.class, () -> train(yaml, null, false, "training.max_steps=3"));
        assertTrue(e.getMessage().contains("--resume auto") && e.getMessage().contains("--overwrite"), e.getMessage());
        train(yaml, null, true, "training.max_steps=3");
        assertTrue(Files.exists(mine), "--overwrite deletes only what jtune wrote");
        assertEquals(3, losses(tmp.resolve("owned")).size(), "metrics.jsonl starts over");
    }

    /** A real allocation failure from LibTorch's CPU allocator is recognised and explained with suggestions. */
    @Test
    void outOfMemoryIsExplained() throws IOException {
        RuntimeException oom = assertThrows(RuntimeException.class,
                () -> torch.empty(new long[] {1L << 48}, Tensors.options(ScalarType.Float), new org.bytedeco.pytorch.MemoryFormatOptional()));
        assertTrue(OutOfMemory.is(oom), oom.getMessage());
        assertFalse(OutOfMemory.is(new IllegalStateException("shape mismatch")));
        Experiment exp = Experiment.load(experiment("oom"), List.of("training.per_device_train_batch_size=8"));
        UserError u = OutOfMemory.explain(oom, exp, 1_000_000, Precision.FP32, new org.bytedeco.pytorch.Device("cpu"));
        assertTrue(u.getMessage().contains("out of host memory") && u.getMessage().contains("per_device_train_batch_size=4")
                && u.getMessage().contains("gradient_accumulation_steps=2") && u.getMessage().contains("lora.enabled=true")
                && u.getMessage().contains("training.precision=bf16"), u.getMessage());
    }

    /** An out-of-memory error in the test evaluation (a real LibTorch allocation failure) is explained, not a stack trace. */
    @Test
    void outOfMemoryInTheTestEvaluationIsExplained() throws Exception {
        Path yaml = experiment("oom-test", "  per_device_eval_batch_size: 8");
        // a callback told of the test loss allocates what no host has: a real LibTorch allocation failure in that phase
        dev.jtune.api.TrainerCallback allocates = new dev.jtune.api.TrainerCallback() {
            @Override
            public void onLog(dev.jtune.api.TrainerState state, java.util.Map<String, Double> logs) {
                if (logs.containsKey("test_loss")) {
                    torch.empty(new long[] {1L << 48}, Tensors.options(ScalarType.Float), new org.bytedeco.pytorch.MemoryFormatOptional());
                }
            }
        };
        UserError u = assertThrows(UserError.class, () -> new Trainer(
                Experiment.load(yaml, List.of("training.max_steps=2", "data.test_split=0.2")),
                new PrintStream(new ByteArrayOutputStream(), true, StandardCharsets.UTF_8), null, false)
                .withCallbacks(List.of(allocates)).run());
        assertTrue(u.getMessage().contains("out of host memory in the test evaluation")
                && u.getMessage().contains("per_device_eval_batch_size=4"), u.getMessage());
    }

    /** A metrics.jsonl line cut by a crash is dropped on resume, and the run says how many and why. */
    @Test
    void malformedMetricsLinesAreCountedOnResume() throws Exception {
        Path yaml = experiment("cut-line");
        train(yaml, null, false, "training.max_steps=6");
        Path metrics = tmp.resolve("cut-line").resolve("metrics.jsonl");
        Files.writeString(metrics, Files.readString(metrics) + "{\"step\": 7, \"lo\n", java.nio.file.StandardOpenOption.TRUNCATE_EXISTING);
        ByteArrayOutputStream out = new ByteArrayOutputStream();
        new Trainer(Experiment.load(yaml, List.of("training.max_steps=6")), new PrintStream(out, true, StandardCharsets.UTF_8),
                tmp.resolve("cut-line").resolve("checkpoint-3").toString(), false).run();
        String log = out.toString(StandardCharsets.UTF_8);
        assertTrue(log.contains("resume: dropped 1 line of " + metrics + " that was not valid JSON"), log);
        assertEquals(6, losses(tmp.resolve("cut-line")).size(), "every step logged once");
    }

    /** The manifest names the training device with its index: its CUDA generator is the one saved and restored. */
    @Test
    void manifestNamesTheTrainingDeviceWithItsIndex() {
        assertEquals("cuda:1", RunManifest.deviceName(new org.bytedeco.pytorch.Device("cuda:1")));
        assertEquals("cuda", RunManifest.deviceName(new org.bytedeco.pytorch.Device("cuda")));
        assertEquals("cpu", RunManifest.deviceName(new org.bytedeco.pytorch.Device("cpu")));
    }
}
