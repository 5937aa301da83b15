package dev.jtune.train;

import dev.jtune.train.checkpoint.Checkpoints;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Arrays;
import java.util.HashMap;
import java.util.List;
import java.util.Locale;
import java.util.Map;

import static dev.jtune.train.DataParallelTest.awaitAll;
import static dev.jtune.train.DataParallelTest.compare;
import static dev.jtune.train.DataParallelTest.experiment;
import static dev.jtune.train.DataParallelTest.freePort;
import static dev.jtune.train.DataParallelTest.job;
import static dev.jtune.train.DataParallelTest.log;
import static dev.jtune.train.DataParallelTest.metric;
import static dev.jtune.train.DataParallelTest.rank;
import static dev.jtune.train.DataParallelTest.weights;
import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * ZeRO stage 1 ({@code training.zero_stage: 1}) with REAL processes (Gloo over 127.0.0.1, DataParallelTest's helpers
 * and tiny Llama): the optimizer state sharded across the ranks gives the same bits as plain data parallel (the same
 * all-reduced gradients, the same AdamW arithmetic on each tensor, done by its owner and broadcast), and so one process
 * within DataParallelTest's tolerances; the checkpoint is the file plain data parallel writes; resuming it is exact on
 * the same world size and re-partitions on another.
 *
 * <p>Every run: full fine-tuning, 6 rows per device (one process: 6 × world size), accumulation 2, weight decay 0.1 and
 * clipping at 0.05 (active at every step of these runs: the test checks the logged norms), 2 epochs of the 72 training
 * rows unpacked (so a global batch of 24 or 36 rows divides the epoch: 3 or 2 steps, no uneven tail), an evaluation and
 * a checkpoint at the end of each epoch (the epoch boundary lets another world size resume at the same rows); final/
 * holds the last weights (load_best_model_at_end: false).
 */
class ZeroShardingTest {
    private static final Map<String, Path> runs = new HashMap<>();
    static final double CLIP = 0.05;

    @TempDir
    static Path tmp;

    /** DataParallelTest's helpers write under its directory: point them at this class's (tests of one class run in turn). */
    @BeforeAll
    static void setUp() throws IOException {
        DataParallelTest.tmp = tmp;
        DataParallelTest.setUp();
    }

    /** DataParallelTest's experiment with this class's settings: ZeRO stage {@code zero}, weight decay, clipping, epoch checkpoints. */
    static Path experiment(String name, int batch, int zero) throws IOException {
        Path yaml = DataParallelTest.experiment(name, batch, false, "  weight_decay: 0.1", "  max_grad_norm: " + CLIP,
                "  zero_stage: " + zero, "  load_best_model_at_end: false");
        Files.writeString(yaml, Files.readString(yaml).replace("save_steps: 100", "save_steps: 0").replace("eval_steps: 2", "eval_steps: 0")
                .replace("packing: true", "packing: false").replace("max_steps: 4", "max_steps: -1\n  num_train_epochs: 2"));
        return yaml;
    }

    /**
     * The finished run {@code name} (started once per class, every run of a world size at once): "one" (one process,
     * batch 6·world), "dp" (world ranks, zero_stage 0) or "zero" (world ranks, zero_stage 1). Returns its output_dir.
     */
    static synchronized Path run(String kind, int world) throws Exception {
        String key = kind + world;
        if (!runs.containsKey(key)) {
            String one = "zone" + world, dp = "zdp" + world, zero = "zzero" + world;
            Process ref = rank(experiment(one, 6 * world, 0), 0, 0, 0, log(one, 0));
            List<Process> dpRanks = job(experiment(dp, 6, 0), dp, world);
            List<Process> zeroRanks = job(experiment(zero, 6, 1), zero, world);
            awaitAll(List.of(ref), one);
            awaitAll(dpRanks, dp);
            awaitAll(zeroRanks, zero);
            runs.put("one" + world, DataParallelTest.tmp.resolve(one));
            runs.put("dp" + world, DataParallelTest.tmp.resolve(dp));
            runs.put("zero" + world, DataParallelTest.tmp.resolve(zero));
        }
        return runs.get(key);
    }

    /** 2 and 3 ranks: ZeRO-1 equals plain data parallel bit for bit, and one process within tolerances. */
    @ParameterizedTest(name = "{0} ranks")
    @ValueSource(ints = {2, 3})
    void shardedOptimizerStateGivesThePlainDataParallelResults(int world) throws Exception {
        Path zero = run("zero", world), dp = run("dp", world), one = run("one", world);
        for (int r = 0; r < world; r++) {
            String l = Files.readString(log(zero.getFileName().toString(), r));
            assertTrue(l.contains("ZeRO stage 1: optimizer state sharded over " + world + " ranks; rank " + r + " keeps "), l);
            if (r > 0) assertTrue(l.contains("rank " + r + ": trained weights identical to rank 0's"), l);
            assertTrue(!Files.readString(log(dp.getFileName().toString(), r)).contains("ZeRO"), "plain data parallel says nothing of ZeRO");
        }
        // clipping is active: every step's norm is above the clipping norm (so the global norm matters to the update)
        Map<Long, Double> norms = metric(zero, "grad_norm");
        assertEquals(world == 2 ? 6 : 4, norms.size(), "2 epochs of 72 rows, 24 or 36 a step");
        norms.forEach((s, n) -> assertTrue(n > CLIP, "step " + s + ": grad_norm " + n + " <= " + CLIP));

        // the same bits as plain data parallel: losses, gradient norms, final weights, and the checkpoint's optimizer state
        assertEquals(metric(dp, "loss"), metric(zero, "loss"));
        assertEquals(metric(dp, "grad_norm"), norms);
        assertSameTensors(dp.resolve("final").resolve("model.safetensors"), zero.resolve("final").resolve("model.safetensors"));
        List<Path> cks = Checkpoints.list(zero);
        assertTrue(!cks.isEmpty(), "a checkpoint at the end of the first epoch");
        for (Path ck : cks) {
            assertSameTensors(dp.resolve(ck.getFileName()).resolve("optimizer.safetensors"), ck.resolve("optimizer.safetensors"));
        }

        // and one process with the same global batch within DataParallelTest's tolerances (float sums in another order)
        double loss = compare(metric(one, "loss"), metric(zero, "loss"), "train loss");
        double worst = assertClose(one.resolve("final").resolve("model.safetensors"), zero.resolve("final").resolve("model.safetensors"));
        System.out.printf(Locale.ROOT, "ZeRO-1, %d ranks: identical to plain data parallel (losses, norms, weights, optimizer state); "
                + "vs one process: max |Δ| train loss %.3g, final weights %.3g%n", world, loss, worst);
    }

    /** The checkpoint at the end of epoch 1 of the 2-rank ZeRO run, resumed on 2 ranks with ZeRO: the rest of the run, bit for bit. */
    @Test
    void resumeOnTheSameWorldSizeIsExact() throws Exception {
        Path whole = run("zero", 2);
        Path ck = Checkpoints.list(whole).get(0);
        assertEquals(3, Checkpoints.stepOf(ck), "the end of the first epoch");
        Path copy = copyCheckpoint(ck, "zresume2");
        List<Process> ranks = job(experiment("zresume2", 6, 1), "zresume2", 2, "--resume", copy.toString());
        awaitAll(ranks, "zresume2");
        Path resumed = copy.getParent();
        // a fresh output_dir: its metrics.jsonl holds the steps after the checkpoint
        Map<Long, Double> got = metric(resumed, "loss");
        assertEquals(List.of(4L, 5L, 6L), List.copyOf(got.keySet()), "the rest of the steps, each once");
        for (long s : got.keySet()) assertEquals(metric(whole, "loss").get(s), got.get(s), "step " + s);
        assertSameTensors(whole.resolve("final").resolve("model.safetensors"), resumed.resolve("final").resolve("model.safetensors"));
        assertTrue(Files.readString(log("zresume2", 1)).contains("rank 1: trained weights identical to rank 0's"));
    }

    /**
     * The 3-rank ZeRO run's epoch checkpoint (three shards' state in one file) continued by 2 ranks with ZeRO and 9 rows
     * per device (the same global batch of 36; at an epoch boundary the data position is the same): the state is
     * re-partitioned over 2 ranks, and the rest of the run matches the uninterrupted one within the tolerances of another
     * summation order. A wrongly loaded optimizer state would change the steps after the first resumed one.
     */
    @Test
    void resumeOnAnotherWorldSizeRepartitionsTheState() throws Exception {
        Path whole = run("zero", 3);
        Path ck = Checkpoints.list(whole).get(0);
        assertEquals(2, Checkpoints.stepOf(ck), "the end of the first epoch");
        Path copy = copyCheckpoint(ck, "zresume3on2");
        List<Process> ranks = job(experiment("zresume3on2", 9, 1), "zresume3on2", 2, "--resume", copy.toString());
        awaitAll(ranks, "zresume3on2");
        String log0 = Files.readString(log("zresume3on2", 0));
        assertTrue(log0.contains("warning: resuming a run of world size 3 on 2 ranks"), log0);
        assertTrue(log0.contains("ZeRO stage 1: optimizer state sharded over 2 ranks"), log0);
        Map<Long, Double> want = new java.util.TreeMap<>(metric(whole, "loss"));
        want.keySet().retainAll(List.of(3L, 4L));   // the resumed output_dir logs the steps after the checkpoint
        double d = compare(want, metric(copy.getParent(), "loss"), "train loss after a 3 → 2 rank resume");
        // the final weights: two AdamW steps after the resume, on the re-partitioned state (a lost or misplaced moment
        // would move them by about the learning rate, 3e-3, far outside the tolerance)
        double worst = assertClose(whole.resolve("final").resolve("model.safetensors"), copy.getParent().resolve("final").resolve("model.safetensors"));
        assertTrue(Files.readString(log("zresume3on2", 1)).contains("rank 1: trained weights identical to rank 0's"));
        System.out.printf(Locale.ROOT, "ZeRO-1 checkpoint of 3 ranks resumed on 2: max |Δ| train loss %.3g, final weights %.3g%n", d, worst);
    }

    static Path copyCheckpoint(Path ck, String outputName) throws IOException {
        Path copy = DataParallelTest.tmp.resolve(outputName).resolve(ck.getFileName());
        Files.createDirectories(copy.getParent());
        try (var files = Files.walk(ck)) {
            for (Path f : files.toList()) Files.copy(f, copy.resolve(ck.relativize(f).toString()));
        }
        return copy;
    }

    /** The same tensor names, every element within DataParallelTest's tolerances; returns the largest |got − want|. */
    static double assertClose(Path wantFile, Path gotFile) {
        Map<String, float[]> want = weights(wantFile), got = weights(gotFile);
        assertEquals(want.keySet(), got.keySet());
        double worst = 0;
        for (String k : want.keySet()) {
            float[] w = want.get(k), g = got.get(k);
            for (int i = 0; i < w.length; i++) {
                double d = Math.abs(g[i] - w[i]);
                assertTrue(d <= DataParallelTest.ATOL + DataParallelTest.RTOL * Math.abs(w[i]), k + "[" + i + "]: " + g[i] + " vs " + w[i]);
                worst = Math.max(worst, d);
            }
        }
        return worst;
    }

    /** The same tensor names and the same bits. */
    static void assertSameTensors(Path want, Path got) {
        Map<String, float[]> w = weights(want), g = weights(got);
        assertEquals(w.keySet(), g.keySet(), got + " vs " + want);
        for (String k : w.keySet()) assertTrue(Arrays.equals(w.get(k), g.get(k)), k + " differs: " + got + " vs " + want);
    }
}
