package dev.jtune.train;

import dev.jtune.train.checkpoint.Checkpoints;
import dev.jtune.train.checkpoint.RngStates;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Arrays;
import java.util.List;
import java.util.Map;

import static dev.jtune.train.DataParallelTest.awaitAll;
import static dev.jtune.train.DataParallelTest.experiment;
import static dev.jtune.train.DataParallelTest.freePort;
import static dev.jtune.train.DataParallelTest.job;
import static dev.jtune.train.DataParallelTest.log;
import static dev.jtune.train.DataParallelTest.metric;
import static dev.jtune.train.DataParallelTest.rank;
import static dev.jtune.train.DataParallelTest.weights;
import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * Resuming a data-parallel run with dropout, with REAL processes (2 ranks, Gloo over 127.0.0.1; DataParallelTest's
 * helpers). Without packing each rank pads its micro-batches to its own longest row, so the ranks draw different
 * numbers of dropout values (attention dropout B×H×T×T, LoRA dropout B×T×in) and their generators drift apart. Each
 * rank must get its own generator back on resume: the resumed losses and final weights then equal the uninterrupted
 * run's bit for bit (a resume that gave every rank rank 0's generator fails here).
 */
class DataParallelResumeTest {
    @TempDir
    static Path tmp;

    @BeforeAll
    static void setUp() throws Exception {
        DataParallelTest.tmp = tmp;   // the helpers write the tiny model, the data and the logs under this class's directory
        DataParallelTest.setUp();
    }

    /** LoRA with lora.dropout and the model's attention dropout, no packing (uneven row lengths per rank), 8 steps, an evaluation and a checkpoint every 4. */
    static Path dropoutExperiment(String name) throws Exception {
        Path y = experiment(name, 2, true, "  dropout: 0.1");   // appended under lora:
        Files.writeString(y, Files.readString(y).replace("model:\n", "model:\n  attention_dropout: 0.1\n")
                .replace("packing: true", "packing: false").replace("max_steps: 4", "max_steps: 8")
                .replace("save_steps: 100", "save_steps: 4").replace("eval_steps: 2", "eval_steps: 4"));
        return y;
    }

    @Test
    void eachRankResumesWithItsOwnRandomGenerator() throws Exception {
        Path whole = dropoutExperiment("rngwhole");
        awaitAll(job(whole, "rngwhole", 2), "rngwhole");
        Path ck = tmp.resolve("rngwhole").resolve("checkpoint-4");
        assertTrue(Checkpoints.verify(ck).isEmpty(), "checkpoint-4 is complete");

        // the checkpoint of step 4, continued in another output_dir by 2 ranks (exact) and by 1 rank (another world size)
        Path resumed = dropoutExperiment("rngresumed"), single = dropoutExperiment("rngsingle");
        List<Process> two = job(resumed, "rngresumed", 2, "--resume", ck.toString());
        Process one = rank(single, 0, 1, freePort(), log("rngsingle", 0), "--resume", ck.toString());
        awaitAll(two, "rngresumed");
        awaitAll(List.of(one), "rngsingle");

        Map<Long, Double> want = metric(tmp.resolve("rngwhole"), "loss"), got = metric(tmp.resolve("rngresumed"), "loss");
        assertEquals(List.of(5L, 6L, 7L, 8L), List.copyOf(got.keySet()), "the resumed run logs steps 5 to 8");
        for (long s : got.keySet()) assertEquals(want.get(s), got.get(s), "loss of step " + s + " after resuming from step 4");
        Map<String, float[]> w = weights(tmp.resolve("rngwhole").resolve("final").resolve("adapter_model.safetensors"));
        Map<String, float[]> g = weights(tmp.resolve("rngresumed").resolve("final").resolve("adapter_model.safetensors"));
        assertEquals(w.keySet(), g.keySet());
        for (String k : w.keySet()) assertArrayEquals(w.get(k), g.get(k), k + ": the final adapter, bit for bit");

        // the premise: the two ranks' generators did diverge by step 4, and each has its own file
        byte[] r0 = RngStates.cpuState(ck.resolve(RngStates.fileOf(0))), r1 = RngStates.cpuState(ck.resolve(RngStates.fileOf(1)));
        assertFalse(Arrays.equals(r0, r1), "rank 0 and rank 1 drew different numbers of random values");
        assertFalse(Files.exists(ck.resolve(RngStates.SINGLE)), "a 2-rank checkpoint holds per-rank files only");

        String oneLog = Files.readString(log("rngsingle", 0));
        assertTrue(oneLog.contains("warning: resuming a run of world size 2 on 1 ranks") && oneLog.contains("random generators"), oneLog);
        assertEquals(4, metric(tmp.resolve("rngsingle"), "loss").size(), "steps 5 to 8 on one rank");
    }
}
