package dev.jtune.config;

import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.nio.file.Path;

import static dev.jtune.config.ConfigFixture.assertProblem;
import static org.junit.jupiter.api.Assertions.assertEquals;

/**
 * The data-parallel keys: training.zero_stage (0 by default, 1 read and written back, 2 and 3 refused naming the key and
 * what is supported) and training.ddp_bucket_cap_mb (25 by default, positive MiB).
 */
class DataParallelKeysTest {
    @TempDir
    Path tmp;
    ConfigFixture fx;

    @BeforeEach
    void setUp() {
        fx = new ConfigFixture(tmp);
    }

    @Test
    void readAndWrittenBack() {
        assertEquals(0, fx.load(fx.with("training", "")).training().zeroStage(), "plain data parallel by default");
        Experiment e = fx.load(fx.with("training", "zero_stage: 1"));
        assertEquals(1, e.training().zeroStage());
        Path resolved = tmp.resolve("resolved.yaml");
        e.writeResolved(resolved);
        assertEquals(e, Experiment.load(resolved, java.util.List.of()), "config.resolved.yaml reads back the same keys");
    }

    @Test
    void unbuiltStagesAreRefusedByKey() {
        assertProblem(fx.fails(fx.with("training", "zero_stage: 2")), "training.zero_stage",
                "ZeRO stage 2 (sharded gradients) is not built in jtune", "supported: 0 (plain data parallel) and 1 (optimizer state sharded");
        assertProblem(fx.fails(fx.with("training", "zero_stage: 3")), "training.zero_stage", "ZeRO stage 3 (sharded gradients and weights)");
        assertProblem(fx.fails(fx.with("training", "zero_stage: -1")), "training.zero_stage", "must be 0 (plain data parallel) or 1");
    }

    @Test
    void bucketCapIsPositiveMiB() {
        assertEquals(25.0, fx.load(fx.with("training", "")).training().ddpBucketCapMb(), "DDP's default");
        assertEquals(0.25, fx.load(fx.with("training", "ddp_bucket_cap_mb: 0.25")).training().ddpBucketCapMb());
        assertProblem(fx.fails(fx.with("training", "ddp_bucket_cap_mb: 0")), "training.ddp_bucket_cap_mb", "must be a positive number of MiB");
        assertProblem(fx.fails(fx.with("training", "ddp_bucket_cap_mb: -5")), "training.ddp_bucket_cap_mb", "got -5.0");
    }
}
