package dev.jtune.train;

import dev.jtune.util.Devices;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Tag;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import java.util.Locale;
import java.util.Map;

import static dev.jtune.train.DataParallelTest.awaitAll;
import static dev.jtune.train.DataParallelTest.experiment;
import static dev.jtune.train.DataParallelTest.log;
import static dev.jtune.train.DataParallelTest.metric;
import static dev.jtune.train.DataParallelTest.rank;
import static dev.jtune.train.DataParallelTest.weights;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * World size 1 through the whole data-parallel path: {@code jtune train exp.yaml --nproc-per-node 1} starts one rank
 * with WORLD_SIZE=1, which joins a real process group (its own TCPStore, Gloo on the CPU, NCCL on CUDA) and runs every
 * collective (the broadcast of the initial weights, the token-count and gradient all-reduces, the barriers). Compared
 * with a plain run without a process group: on the CPU in fp32 the same losses and final weights bit for bit (a sum over
 * one rank is the identity); on CUDA with NCCL within CUDA's run-to-run noise. REAL processes (DataParallelTest's helpers).
 */
class DataParallelWorldOneTest {
    @TempDir
    static Path tmp;

    @BeforeAll
    static void setUp() throws Exception {
        DataParallelTest.tmp = tmp;
        DataParallelTest.setUp();
    }

    /** Trains {@code name}-plain (no group) and {@code name}-one (--nproc-per-node 1) from the same experiment; returns the rank's log. */
    private static String trainBoth(String name, String device) throws Exception {
        Path plain = experiment(name + "plain", 2, false), one = experiment(name + "one", 2, false);
        for (Path y : List.of(plain, one)) Files.writeString(y, Files.readString(y).replace("device: cpu", "device: " + device));
        Process a = rank(plain, 0, 0, 0, log(name + "plain", 0));
        awaitAll(List.of(a), name + "plain");
        Process b = rank(one, 0, 0, 0, log(name + "one", 0), "--nproc-per-node", "1");
        awaitAll(List.of(b), name + "one");
        String plainLog = Files.readString(log(name + "plain", 0));
        assertTrue(!plainLog.contains("distributed:"), "the plain run has no process group:\n" + plainLog);
        return Files.readString(log(name + "one", 0));
    }

    /** Largest |a − b| over the logged losses and the final weights; fails above {@code atol + rtol·|plain|}. */
    private static double compare(String name, double atol, double rtol) {
        double worst = 0;
        try {
            for (String key : List.of("loss", "eval_loss")) {
                Map<Long, Double> want = metric(tmp.resolve(name + "plain"), key), got = metric(tmp.resolve(name + "one"), key);
                assertEquals(want.keySet(), got.keySet(), key + ": the same steps");
                for (long s : want.keySet()) {
                    double d = Math.abs(got.get(s) - want.get(s));
                    assertTrue(d <= atol + rtol * Math.abs(want.get(s)), key + " at step " + s + ": " + got.get(s) + " vs " + want.get(s));
                    worst = Math.max(worst, d);
                }
            }
        } catch (java.io.IOException e) {
            throw new java.io.UncheckedIOException(e);
        }
        Map<String, float[]> w = weights(tmp.resolve(name + "plain").resolve("final").resolve("model.safetensors"));
        Map<String, float[]> g = weights(tmp.resolve(name + "one").resolve("final").resolve("model.safetensors"));
        assertEquals(w.keySet(), g.keySet());
        for (String k : w.keySet()) {
            float[] a = w.get(k), b = g.get(k);
            for (int i = 0; i < a.length; i++) {
                double d = Math.abs(b[i] - a[i]);
                assertTrue(d <= atol + rtol * Math.abs(a[i]), k + "[" + i + "]: " + b[i] + " vs " + a[i] + " (no group)");
                worst = Math.max(worst, d);
            }
        }
        return worst;
    }

    /** Gloo, world size 1, full fine-tuning with accumulation and packing: bit for bit the run without a group. */
    @Test
    void glooWorldSizeOneEqualsTheRunWithoutAGroup() throws Exception {
        String log = trainBoth("gloo1", "cpu");
        assertTrue(log.contains("distributed: rank 0 of 1") && log.contains("gloo over 127.0.0.1"), log);
        assertTrue(log.contains("global batch 4 (2 per device × 2 accumulation × 1 ranks)"), log);
        assertEquals(0.0, compare("gloo1", 0, 0), "bit for bit");
        assertEquals(4, metric(tmp.resolve("gloo1one"), "loss").size());
    }

    /**
     * NCCL, world size 1, on the one GPU: the same training within CUDA's run-to-run noise (its embedding backward adds
     * with atomics, so two plain runs differ in the last bits too). Needs the GPU build (mvn -Pgpu), which has NCCL.
     */
    @Test
    @Tag("gpu")
    void ncclWorldSizeOneEqualsTheRunWithoutAGroup() throws Exception {
        dev.jtune.GpuTests.assumeCuda();
        String log = trainBoth("nccl1", "cuda");
        assertTrue(log.contains("distributed: rank 0 of 1") && log.contains("nccl over 127.0.0.1"), log);
        double worst = compare("nccl1", 1e-5, 1e-4);
        System.out.printf(Locale.ROOT, "NCCL world size 1 vs no process group: max |Δ| over losses and final weights %.3g%n", worst);
    }
}
