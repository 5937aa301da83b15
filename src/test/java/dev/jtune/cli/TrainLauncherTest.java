package dev.jtune.cli;

import com.fasterxml.jackson.databind.JsonNode;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.TimeUnit;
import java.util.regex.Matcher;
import java.util.regex.Pattern;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * `jtune train|bench … --nproc-per-node N` as a user runs them, checked from the launcher's side only: how many
 * ranks ran, rank 0 on the console, rank K in its log with the same command line less the launcher's options, and
 * the exit code. What the ranks compute together is the data-parallel trainer's tests' business. (Until the trainer
 * knows its rank, two ranks of a successful `train` would both write output_dir, so the two-rank train here is one
 * the output_dir policy refuses; the successful two-rank run is a bench, which writes nothing.)
 */
class TrainLauncherTest {
    @TempDir
    static Path tmp;
    static Path base;

    record Run(int code, String out, String err) {}

    @BeforeAll
    static void makeBaseModel() {
        base = tmp.resolve("base");
        CliTest.Run init = CliTest.run("init-model", "--arch", "llama", "--preset", "tiny", "--tokenizer", "configs/tokenizers/gpt2",
                "--out", base.toString(), "--seed", "1");
        assertEquals(0, init.code(), init.err());
    }

    /** jtune in its own JVM, as the `jtune` script starts it, without any launcher variables of the test's own environment. */
    static Run jtune(String name, String... args) throws Exception {
        List<String> cmd = new ArrayList<>(List.of(Path.of(System.getProperty("java.home"), "bin", "java").toString(), "-cp",
                System.getProperty("java.class.path"), Main.class.getName()));
        cmd.addAll(List.of(args));
        Path out = tmp.resolve(name + ".out"), err = tmp.resolve(name + ".err");
        ProcessBuilder pb = new ProcessBuilder(cmd).redirectOutput(out.toFile()).redirectError(err.toFile());
        pb.environment().keySet().removeIf(k -> k.equals("RANK") || k.equals("WORLD_SIZE") || k.startsWith("SLURM_") || k.startsWith("TORCHELASTIC_"));
        Process p = pb.start();
        assertTrue(p.waitFor(8, TimeUnit.MINUTES), name + " finishes");
        return new Run(p.exitValue(), Files.readString(out), Files.readString(err));
    }

    /**
     * Two ranks that train: the launcher starts them, rank 0 prints the plan with the global batch and writes final/,
     * rank 1 writes its log, and both end with the same trained weights (the data-parallel trainer's own check).
     */
    @Test
    void trainWithTwoProcessesRunsThrough() throws Exception {
        Path out = tmp.resolve("two");
        Run r = jtune("train-2ok", "train", "configs/demo.yaml", "--set", "model.path=" + base, "--nproc-per-node=2",
                "--master-port", "" + freePort(), "--set", "training.output_dir=" + out,
                "--set", "training.max_steps=2", "--set", "training.eval_steps=0", "--set", "training.predict_with_generate=false");
        assertEquals(0, r.code(), r.err());
        assertTrue(r.err().contains("jtune launcher: 2 processes on this node, store 127.0.0.1:"), r.err());
        assertTrue(r.out().contains("data: 302 rows read, 290 kept"), "rank 0's output is on the console: " + r.out());
        assertTrue(r.out().contains("global batch 16 (8 per device × 1 accumulation × 2 ranks)"), r.out());
        assertTrue(r.out().contains("rank 0: trained weights identical to rank 0's"), r.out());
        String rank1 = Files.readString(out.resolve("logs/rank1.log"));
        assertTrue(rank1.contains("rank 1: trained weights identical to rank 0's"), rank1);
        assertTrue(Files.isRegularFile(out.resolve("final/model.safetensors")));
    }

    /** Two ranks of a run that output_dir refuses (an earlier run's metrics.jsonl): the exit code and message come through. */
    @Test
    void trainWithTwoProcessesPassesOnTheRefusal() throws Exception {
        Path out = Files.createDirectories(tmp.resolve("taken"));
        Files.writeString(out.resolve("metrics.jsonl"), "{\"step\": 1, \"loss\": 2.0}\n");
        Run r = jtune("train-2", "train", "configs/demo.yaml", "--nproc-per-node", "2", "--master-port", "" + freePort(),
                "--set", "model.path=" + base, "--set", "training.output_dir=" + out);
        Path rank1 = out.resolve("logs/rank1.log");
        assertEquals(2, r.code(), r.err());
        assertTrue(r.err().contains("jtune launcher: 2 processes on this node"), r.err());
        assertTrue(r.err().contains("rank 0 prints here, rank 1 writes " + rank1), r.err());
        assertTrue(r.err().contains("jtune: error: training.output_dir " + out + " holds the outputs of an earlier run"), "rank 0's error: " + r.err());
        assertTrue(r.err().contains("jtune launcher: exit code 2 (rank "), r.err());
        String header = Files.readString(rank1).lines().findFirst().orElseThrow();
        assertTrue(header.contains("jtune launcher: rank 1 of 2: ") && header.contains("-cp <class path> dev.jtune.cli.Main train configs/demo.yaml "
                + "--set model.path=" + base + " --set training.output_dir=" + out), header);
        assertFalse(header.contains("--nproc-per-node") || header.contains("--master-port"), "the ranks do not launch again: " + header);
    }

    /** Two ranks that both succeed: rank 0's JSON alone on stdout, rank 1's output in its log under a fresh directory. */
    @Test
    void benchWithTwoProcesses() throws Exception {
        Run r = jtune("bench-2", "bench", "--shape", "tiny", "--seq-len", "16", "--micro-batch", "2", "--steps", "1", "--warmup", "0",
                "--gemm-size", "64", "--nproc-per-node", "2", "--json");
        assertEquals(0, r.code(), r.err());
        assertTrue(r.err().contains("jtune launcher: all 2 ranks exited 0"), r.err());
        JsonNode json = CliTest.JSON.readTree(r.out());   // stdout is one JSON document: the launcher writes to stderr
        assertTrue(json.isObject(), r.out());
        // the all-reduce time, and the part of it the step waited for after the backward (the first, small bucket of the
        // final norm started during it)
        JsonNode d = json.get("distributed");
        assertTrue(d.get("allreduce_exposed_s_per_step").asDouble() <= d.get("allreduce_s_per_step").asDouble(), d.toString());
        assertTrue(d.get("buckets_started_during_backward").asDouble() >= 1, d.toString());
        Matcher m = Pattern.compile("rank 1 writes (\\S+rank1\\.log)").matcher(r.err());
        assertTrue(m.find(), r.err());
        Path rank1 = Path.of(m.group(1));
        assertTrue(rank1.getParent().getFileName().toString().startsWith("jtune-bench-logs-"), rank1.toString());
        String header = Files.readString(rank1).lines().findFirst().orElseThrow();
        assertTrue(header.endsWith("dev.jtune.cli.Main bench --shape tiny --seq-len 16 --micro-batch 2 --steps 1 --warmup 0 --gemm-size 64 --json"), header);
    }

    @Test
    void launcherMistakesExitTwo() {
        CliTest.assertUserError(CliTest.run("bench", "--shape", "tiny", "--nproc-per-node", "0"), "--nproc-per-node 0: expected at least 1 process");
        CliTest.assertUserError(CliTest.run("bench", "--shape", "tiny", "--nproc-per-node", "2", "--master-port", "70000"),
                "--master-port 70000: expected a TCP port");
        CliTest.assertUserError(CliTest.run("bench", "--shape", "tiny", "--master-port", "29500"), "--master-port works with --nproc-per-node only");
        CliTest.assertUserError(CliTest.run("bench", "--shape", "tiny", "--nproc-per-node", "two"), "--nproc-per-node");
    }

    static int freePort() throws java.io.IOException {
        try (var s = new java.net.ServerSocket(0)) {
            return s.getLocalPort();
        }
    }
}
