package dev.jtune.config;

import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.nio.file.Path;
import java.util.Map;

import static dev.jtune.config.ConfigFixture.assertProblem;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

/** training.gradient_checkpointing and its kwargs: read, written back, and bad kwargs refused by key. */
class GradientCheckpointingKeysTest {
    @TempDir
    Path tmp;
    ConfigFixture fx;

    @BeforeEach
    void setUp() {
        fx = new ConfigFixture(tmp);
    }

    @Test
    void readAndWrittenBack() {
        assertFalse(fx.load(fx.with("training", "")).training().gradientCheckpointing(), "off by default");
        Experiment e = fx.load(fx.with("training", "gradient_checkpointing: true\ngradient_checkpointing_kwargs: {offload: true}"));
        assertTrue(e.training().gradientCheckpointing());
        assertEquals(Map.of("offload", true), e.training().gradientCheckpointingKwargs());
        Path resolved = tmp.resolve("resolved.yaml");
        e.writeResolved(resolved);
        assertEquals(e, Experiment.load(resolved, java.util.List.of()), "config.resolved.yaml reads back the same keys");
    }

    @Test
    void badKwargsAreRefusedByKey() {
        assertProblem(fx.fails(fx.with("training", "gradient_checkpointing_kwargs: {use_reentrant: false}")),
                "training.gradient_checkpointing_kwargs", "'use_reentrant' is not a key jtune reads; it takes: offload");
        assertProblem(fx.fails(fx.with("training", "gradient_checkpointing_kwargs: {offload: 1}")),
                "training.gradient_checkpointing_kwargs", "offload: expected true or false");
        assertProblem(fx.fails(fx.with("training", "gradient_checkpointing_kwargs: true")),
                "training.gradient_checkpointing_kwargs", "expected a mapping of names to true or false");
    }
}
