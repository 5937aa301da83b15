package dev.jtune.config;

import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.nio.file.Path;
import java.util.Map;

import static dev.jtune.config.ConfigFixture.assertProblem;
import static org.junit.jupiter.api.Assertions.assertEquals;

/** lr_scheduler_type and lr_scheduler_kwargs: what transformers accepts is accepted, what it rejects is refused by key. */
class SchedulerKeysTest {
    @TempDir
    Path tmp;
    ConfigFixture fx;

    @BeforeEach
    void setUp() {
        fx = new ConfigFixture(tmp);
    }

    @Test
    void kwargsAreReadAndWrittenBack() {
        Experiment e = fx.load(fx.with("training", "lr_scheduler_type: cosine_with_min_lr\nlr_scheduler_kwargs: {min_lr_rate: 0.1, num_cycles: 1}"));
        assertEquals(Map.of("min_lr_rate", 0.1, "num_cycles", 1.0), e.training().lrSchedulerKwargs());
        Path resolved = tmp.resolve("resolved.yaml");
        e.writeResolved(resolved);
        assertEquals(e, Experiment.load(resolved, java.util.List.of()), "config.resolved.yaml reads back the same kwargs");
        assertEquals(Map.of("timescale", 50.0), fx.load(fx.with("training", "lr_scheduler_type: inverse_sqrt"),
                "training.lr_scheduler_kwargs={timescale: 50}").training().lrSchedulerKwargs());
    }

    @Test
    void anArgumentTheScheduleDoesNotTakeIsRefused() {
        assertProblem(fx.fails(fx.with("training", "lr_scheduler_type: linear\nlr_scheduler_kwargs: {num_cycles: 2}")),
                "training.lr_scheduler_kwargs", "'num_cycles' is not an argument of the linear schedule; it takes none");
        assertProblem(fx.fails(fx.with("training", "lr_scheduler_type: polynomial\nlr_scheduler_kwargs: {min_lr: 1.0e-6}")),
                "training.lr_scheduler_kwargs", "it takes: lr_end, power");
        assertProblem(fx.fails(fx.with("training", "lr_scheduler_kwargs: {num_cycles: fast}")),
                "training.lr_scheduler_kwargs", "num_cycles: expected a finite number");
        assertProblem(fx.fails(fx.with("training", "lr_scheduler_kwargs: 0.5")),
                "training.lr_scheduler_kwargs", "expected a mapping of names to numbers");
    }

    @Test
    void cosineWithMinLrNeedsExactlyOneFloor() {
        assertProblem(fx.fails(fx.with("training", "lr_scheduler_type: cosine_with_min_lr")),
                "training.lr_scheduler_kwargs", "needs exactly one of min_lr and min_lr_rate");
        assertProblem(fx.fails(fx.with("training", "lr_scheduler_type: cosine_with_min_lr\nlr_scheduler_kwargs: {min_lr: 1.0e-6, min_lr_rate: 0.1}")),
                "training.lr_scheduler_kwargs", "needs exactly one of min_lr and min_lr_rate");
    }

    @Test
    void polynomialEndMustBeBelowTheLearningRate() {
        assertProblem(fx.fails(fx.with("training", "learning_rate: 1.0e-5\nlr_scheduler_type: polynomial\nlr_scheduler_kwargs: {lr_end: 1.0e-4}")),
                "training.lr_scheduler_kwargs", "lr_end (1.0E-4) must be smaller than learning_rate (1.0E-5)");
    }

    /** transformers' "constant" drops the warmup silently; jtune says so instead. */
    @Test
    void constantWithAWarmupIsRefused() {
        assertProblem(fx.fails(fx.with("training", "lr_scheduler_type: constant\nwarmup_ratio: 0.03")),
                "training.lr_scheduler_type", "use constant_with_warmup");
        fx.load(fx.with("training", "lr_scheduler_type: constant_with_warmup\nwarmup_ratio: 0.03"));
    }
}
