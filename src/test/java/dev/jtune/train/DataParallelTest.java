package dev.jtune.train;

import dev.jtune.train.checkpoint.Checkpoints;
import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import dev.jtune.io.SafetensorsFile;
import dev.jtune.util.Tensors;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.CsvSource;

import java.io.IOException;
import java.net.ServerSocket;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.concurrent.TimeUnit;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * Data-parallel training with REAL processes: child JVMs started with torchrun's variables (RANK, LOCAL_RANK,
 * WORLD_SIZE, LOCAL_WORLD_SIZE, MASTER_ADDR=127.0.0.1, a free MASTER_PORT), Gloo over the loopback, each rank on one
 * intra-op thread. Compared with one process that trains on the same global batch (per_device_train_batch_size × world
 * size), with gradient accumulation and packing: the same losses, evaluation losses and final weights up to the order
 * of float sums (fp32); the weights identical across ranks; a rank killed with SIGKILL makes the others exit 1 naming
 * it and the collective; SIGTERM to one rank stops all with one checkpoint and exit 0, and the resume is exact.
 */
class DataParallelTest {
    static final ObjectMapper JSON = new ObjectMapper();
    /**
     * What N ranks may differ from one process by, elementwise (atol + rtol·|ref|). N ranks sum each gradient in a
     * different order than one process (per-rank partial sums, then the all-reduce), so the results agree to float32
     * rounding, not bit for bit; measured on this machine: see the report printed by each test (~1e-7 after 4 steps).
     */
    static final double ATOL = 1e-6, RTOL = 1e-5;

    @TempDir
    static Path tmp;
    static Path model, csv;

    @BeforeAll
    static void setUp() throws IOException {
        model = tmp.resolve("base");
        TrainerTest.writeTinyLlama(model);
        StringBuilder sb = new StringBuilder("question,answer\n");
        for (int i = 0; i < 90; i++) {
            sb.append("what is item ").append(i).append("?,item ").append(i).append(i % 3 == 0 ? " is a number." : " is a number; it follows ")
                    .append(i % 3 == 0 ? "" : (i - 1) + ".").append('\n');
        }
        csv = Files.writeString(tmp.resolve("qa.csv"), sb.toString());
    }

    /** 4 steps of packed rows, accumulation 2, an evaluation every 2 steps; full fine-tuning or LoRA. */
    static Path experiment(String name, int batch, boolean lora, String... extra) throws IOException {
        Path yaml = tmp.resolve(name + ".yaml");
        List<String> lines = new ArrayList<>(List.of("model:", "  path: " + model, "data:", "  train_file: " + csv,
                "  format: instruction", "  prompt_column: question", "  response_column: answer", "  validation_split: 0.2",
                "  max_seq_length: 48", "  packing: true", "training:", "  output_dir: " + tmp.resolve(name), "  max_steps: 4",
                "  per_device_train_batch_size: " + batch, "  gradient_accumulation_steps: 2", "  per_device_eval_batch_size: 2",
                "  learning_rate: 3.0e-3", "  lr_scheduler_type: cosine", "  warmup_steps: 1", "  logging_steps: 1",
                "  eval_steps: 2", "  save_steps: 100", "  device: cpu", "  precision: fp32", "  seed: 11", "  ddp_timeout: 30"));
        if (lora) lines.addAll(List.of("lora:", "  enabled: true", "  r: 4", "  target_modules: all-linear"));
        lines.addAll(List.of(extra));
        Files.writeString(yaml, String.join("\n", lines) + "\n");
        return yaml;
    }

    static int freePort() throws IOException {
        try (ServerSocket s = new ServerSocket(0)) {
            return s.getLocalPort();
        }
    }

    /** `jtune train` as rank {@code rank} of {@code world} (or a plain process when world is 0), output to {@code log}. */
    static Process rank(Path yaml, int rank, int world, int port, Path log, String... args) throws IOException {
        List<String> cmd = new ArrayList<>(List.of(Path.of(System.getProperty("java.home"), "bin", "java").toString(),
                "-cp", System.getProperty("java.class.path"), "dev.jtune.cli.Main", "train", yaml.toString()));
        cmd.addAll(List.of(args));
        ProcessBuilder pb = new ProcessBuilder(cmd).redirectErrorStream(true).redirectOutput(log.toFile());
        Map<String, String> env = pb.environment();
        env.put("JTUNE_NUM_THREADS", "1");
        for (String k : List.of("RANK", "LOCAL_RANK", "WORLD_SIZE", "LOCAL_WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT",
                "SLURM_PROCID", "SLURM_NTASKS", "TORCHELASTIC_USE_AGENT_STORE", "TORCHELASTIC_RESTART_COUNT")) {
            env.remove(k);
        }
        if (world > 0) {
            env.put("RANK", String.valueOf(rank));
            env.put("LOCAL_RANK", String.valueOf(rank));
            env.put("WORLD_SIZE", String.valueOf(world));
            env.put("LOCAL_WORLD_SIZE", String.valueOf(world));
            env.put("MASTER_ADDR", "127.0.0.1");
            env.put("MASTER_PORT", String.valueOf(port));
        }
        return pb.start();
    }

    /** All ranks of one job; logs are {@code <name>.rank<r>.log}. */
    static List<Process> job(Path yaml, String name, int world, String... args) throws IOException {
        int port = freePort();
        List<Process> ps = new ArrayList<>();
        for (int r = 0; r < world; r++) ps.add(rank(yaml, r, world, port, log(name, r), args));
        return ps;
    }

    /**
     * A run of {@code world} ranks long enough to be interrupted (400 steps) with {@code ddp_timeout} seconds, started and
     * past step 2 on rank 0: for the fault tests.
     */
    static List<Process> runningJob(String name, boolean lora, int world, int ddpTimeout) throws Exception {
        Path yaml = experiment(name, 2, lora);
        Files.writeString(yaml, Files.readString(yaml).replace("max_steps: 4", "max_steps: 400")
                .replace("ddp_timeout: 30", "ddp_timeout: " + ddpTimeout));
        List<Process> ranks = job(yaml, name, world);
        try {
            waitForStep(ranks.get(0), tmp.resolve(name), 2);
        } catch (Exception | AssertionError e) {
            ranks.forEach(Process::destroyForcibly);
            throw e;
        }
        return ranks;
    }

    static Path log(String name, int rank) {
        return tmp.resolve(name + ".rank" + rank + ".log");
    }

    static void awaitAll(List<Process> ps, String name) throws Exception {
        for (int r = 0; r < ps.size(); r++) {
            assertTrue(ps.get(r).waitFor(240, TimeUnit.SECONDS), "rank " + r + " did not finish");
            assertEquals(0, ps.get(r).exitValue(), "rank " + r + ":\n" + Files.readString(log(name, r)));
        }
    }

    /** Waits until rank 0 logged {@code step} (generous: JVM start and LibTorch load on a busy 2-core box). */
    static void waitForStep(Process rank0, Path outputDir, long step) throws Exception {
        long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(400);
        while (ResumeTest.lastLoggedStep(outputDir) < step) {
            assertTrue(rank0.isAlive(), "rank 0 ended before step " + step);
            assertTrue(System.nanoTime() < deadline, "no step " + step + " within 400 s");
            Thread.sleep(20);
        }
    }

    static Map<Long, Double> metric(Path outputDir, String key) throws IOException {
        Map<Long, Double> out = new LinkedHashMap<>();
        for (String line : Files.readAllLines(outputDir.resolve("metrics.jsonl"))) {
            JsonNode n = JSON.readTree(line);
            if (n.has(key)) out.put(n.get("step").asLong(), n.get(key).asDouble());
        }
        return out;
    }

    static Map<String, float[]> weights(Path file) {
        Map<String, float[]> out = new LinkedHashMap<>();
        try (SafetensorsFile f = SafetensorsFile.open(file)) {
            for (String k : f.tensors().keySet()) out.put(k, Tensors.toFloats(f.tensor(k)));
        }
        return out;
    }

    /** Largest |got − want| / (ATOL + RTOL·|want|) over the steps; fails above 1. Returns the largest |got − want|. */
    static double compare(Map<Long, Double> want, Map<Long, Double> got, String what) {
        assertEquals(want.keySet(), got.keySet(), what + ": the same steps");
        double worst = 0;
        for (long s : want.keySet()) {
            double w = want.get(s), g = got.get(s), d = Math.abs(g - w);
            assertTrue(d <= ATOL + RTOL * Math.abs(w), String.format(Locale.ROOT, "%s at step %d: %.9g vs %.9g (one process)", what, s, g, w));
            worst = Math.max(worst, d);
        }
        return worst;
    }

    /**
     * 2 ranks with full fine-tuning, 3 ranks with LoRA; both with accumulation 2 and packing. One process with
     * per_device_train_batch_size × world size is the reference: the global batches are the same rows (DistributedSampler's
     * stride of the same packed order), the loss is divided by the global target count, the gradients are summed.
     */
    @ParameterizedTest(name = "{0} ranks, lora={1}")
    @CsvSource({"2, false", "3, true"})
    void ranksTrainAsOneProcessWithTheSameGlobalBatch(int world, boolean lora) throws Exception {
        String one = "one" + world + lora, many = "ddp" + world + lora;
        Process ref = rank(experiment(one, 2 * world, lora), 0, 0, 0, log(one, 0));
        List<Process> ranks = job(experiment(many, 2, lora), many, world);
        awaitAll(List.of(ref), one);
        awaitAll(ranks, many);

        String log0 = Files.readString(log(many, 0));
        assertTrue(log0.contains(String.format(Locale.ROOT, "global batch %d (2 per device × 2 accumulation × %d ranks)", 4 * world, world)), log0);
        double loss = compare(metric(tmp.resolve(one), "loss"), metric(tmp.resolve(many), "loss"), "train loss");
        double eval = compare(metric(tmp.resolve(one), "eval_loss"), metric(tmp.resolve(many), "eval_loss"), "eval loss");
        assertEquals(4, metric(tmp.resolve(many), "loss").size());

        String file = lora ? "adapter_model.safetensors" : "model.safetensors";
        Map<String, float[]> want = weights(tmp.resolve(one).resolve("final").resolve(file));
        Map<String, float[]> got = weights(tmp.resolve(many).resolve("final").resolve(file));
        assertEquals(want.keySet(), got.keySet());
        double worstWeight = 0;
        for (String k : want.keySet()) {
            float[] w = want.get(k), g = got.get(k);
            for (int i = 0; i < w.length; i++) {
                double d = Math.abs(g[i] - w[i]);
                assertTrue(d <= ATOL + RTOL * Math.abs(w[i]), k + "[" + i + "]: " + g[i] + " vs " + w[i]);
                worstWeight = Math.max(worstWeight, d);
            }
        }
        for (int r = 1; r < world; r++) {
            String l = Files.readString(log(many, r));
            assertTrue(l.contains("rank " + r + ": trained weights identical to rank 0's"), l);
        }
        System.out.printf(Locale.ROOT, "%d ranks (lora=%s) vs one process: max |Δ| train loss %.3g, eval loss %.3g, final weights %.3g%n",
                world, lora, loss, eval, worstWeight);
    }

    /** kill -9 of rank 1 in the middle of a run: rank 0 exits 1 within ddp_timeout, naming rank 1 and the collective. */
    @Test
    void aKilledRankMakesTheOthersExitNamingIt() throws Exception {
        List<Process> ranks = runningJob("killed", false, 2, 20);
        long t0 = System.nanoTime();
        ranks.get(1).destroyForcibly().waitFor();   // SIGKILL
        assertTrue(ranks.get(0).waitFor(60, TimeUnit.SECONDS), "rank 0 still runs 60 s after rank 1 was killed");
        double seconds = (System.nanoTime() - t0) / 1e9;
        String log = Files.readString(log("killed", 0));
        assertEquals(1, ranks.get(0).exitValue(), log);
        assertTrue(seconds < 20 + 10, "exited after " + seconds + " s");
        assertTrue(log.contains("jtune: error: rank 0 of 2:") && log.contains("rank 1 stopped") && log.contains("collective #"), log);
        assertTrue(!log.contains("internal error") && !log.contains("\tat "), "no stack trace:\n" + log);
        log.lines().filter(l -> l.startsWith("jtune: error")).forEach(l -> System.out.println("killed rank, after " + (int) seconds + " s: " + l));
    }

    /** A rank that hangs (SIGSTOP): rank 0 gives up after ddp_timeout, exits 1, names rank 1 and the collective. */
    @Test
    void aHungRankMakesTheOthersExitAfterTheTimeout() throws Exception {
        List<Process> ranks = runningJob("hung", true, 2, 8);
        try {
            long t0 = System.nanoTime();
            assertEquals(0, new ProcessBuilder("kill", "-STOP", String.valueOf(ranks.get(1).pid())).start().waitFor());
            assertTrue(ranks.get(0).waitFor(60, TimeUnit.SECONDS), "rank 0 still runs 60 s after rank 1 froze");
            double seconds = (System.nanoTime() - t0) / 1e9;
            String log = Files.readString(log("hung", 0));
            assertEquals(1, ranks.get(0).exitValue(), log);
            assertTrue(seconds >= 8 && seconds < 8 + 15, "exited after " + seconds + " s (ddp_timeout 8 s)");
            assertTrue(log.contains("jtune: error: rank 0 of 2:") && log.contains("rank 1 stopped") && log.contains("collective #"), log);
            log.lines().filter(l -> l.startsWith("jtune: error")).forEach(l -> System.out.println("hung rank, after " + (int) seconds + " s: " + l));
        } finally {
            ranks.get(1).destroyForcibly();   // SIGKILL ends a stopped process too
        }
    }

    /** SIGTERM to rank 1 only: every rank stops after the same step, one checkpoint, exit 0; the resume is exact. */
    @Test
    void sigtermToOneRankStopsAllWithOneCheckpointAndTheResumeIsExact() throws Exception {
        Path whole = experiment("termwhole", 2, true);
        Path cut = experiment("termcut", 2, true);
        // long enough that the signal comes well before the end; no evaluation before the end (each best one saves)
        for (Path y : List.of(whole, cut)) {
            Files.writeString(y, Files.readString(y).replace("max_steps: 4", "max_steps: 12").replace("eval_steps: 2", "eval_steps: 100"));
        }
        List<Process> ranks = job(cut, "termcut", 2);
        List<Process> ref = job(whole, "termwhole", 2);
        waitForStep(ranks.get(0), tmp.resolve("termcut"), 2);
        ranks.get(1).destroy();   // SIGTERM to rank 1 alone
        awaitAll(ranks, "termcut");
        awaitAll(ref, "termwhole");
        List<Path> cks = Checkpoints.list(tmp.resolve("termcut"));
        assertEquals(1, cks.size(), "one checkpoint: " + cks);
        assertTrue(Checkpoints.verify(cks.get(0)).isEmpty(), "the checkpoint is complete");
        long stoppedAt = Long.parseLong(cks.get(0).getFileName().toString().replace("checkpoint-", ""));
        assertTrue(stoppedAt < 12, "stopped early, at " + stoppedAt);
        assertTrue(Files.readString(log("termcut", 0)).contains("stopped by a signal to another rank"), Files.readString(log("termcut", 0)));

        // the same checkpoint continued by ONE rank (WORLD_SIZE=1: the whole distributed path with one process), into
        // another output_dir: a warning, the data position from the global step, the remaining steps trained
        Path single = experiment("termsingle", 2, true);
        Files.writeString(single, Files.readString(single).replace("max_steps: 4", "max_steps: 12").replace("eval_steps: 2", "eval_steps: 100"));
        Path copy = tmp.resolve("termcopy").resolve(cks.get(0).getFileName());
        Files.createDirectories(copy.getParent());
        try (var files = Files.walk(cks.get(0))) {
            for (Path f : files.toList()) Files.copy(f, copy.resolve(cks.get(0).relativize(f).toString()));
        }
        Process one = rank(single, 0, 1, freePort(), log("termsingle", 0), "--resume", copy.toString());

        List<Process> resumed = job(cut, "termresume", 2, "--resume", "auto");
        awaitAll(resumed, "termresume");
        awaitAll(List.of(one), "termsingle");
        String oneLog = Files.readString(log("termsingle", 0));
        assertTrue(oneLog.contains("distributed: rank 0 of 1") && oneLog.contains("warning: resuming a run of world size 2 on 1 ranks"), oneLog);
        assertEquals(12 - stoppedAt, metric(tmp.resolve("termsingle"), "loss").size(), "the remaining steps, each once");
        Map<Long, Double> want = metric(tmp.resolve("termwhole"), "loss"), got = metric(tmp.resolve("termcut"), "loss");
        assertEquals(want.keySet(), got.keySet(), "every step logged once");
        for (long s : want.keySet()) assertEquals(want.get(s), got.get(s), "step " + s + " (stopped after " + stoppedAt + ")");
    }
}
