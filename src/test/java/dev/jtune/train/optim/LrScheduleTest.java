package dev.jtune.train.optim;

import dev.jtune.config.TrainingSection.Scheduler;
import org.junit.jupiter.api.Test;

import static org.junit.jupiter.api.Assertions.assertEquals;

/** Values at chosen steps, as transformers' get_{constant,linear,cosine}_schedule_with_warmup give them (every scheduler against the Python reference: TrainerReferenceTest). */
class LrScheduleTest {
    static final double BASE = 1e-3;

    @Test
    void linearWithWarmup() {
        LrSchedule s = new LrSchedule(Scheduler.LINEAR, BASE, 10, 110);
        assertEquals(0.0, s.at(0), 1e-15);                 // transformers' first step runs at lr 0 when warming up
        assertEquals(0.5 * BASE, s.at(5), 1e-15);
        assertEquals(BASE, s.at(10), 1e-15);
        assertEquals(0.5 * BASE, s.at(60), 1e-15);
        assertEquals(0.01 * BASE, s.at(109), 1e-15);
        assertEquals(0.0, s.at(110), 1e-15);
    }

    @Test
    void cosineWithWarmup() {
        LrSchedule s = new LrSchedule(Scheduler.COSINE, BASE, 4, 104);
        assertEquals(0.25 * BASE, s.at(1), 1e-15);
        assertEquals(BASE, s.at(4), 1e-15);
        assertEquals(0.5 * BASE, s.at(54), 1e-15);                                       // half way
        assertEquals(BASE * 0.5 * (1 + Math.cos(Math.PI * 0.25)), s.at(29), 1e-15);       // a quarter
        assertEquals(0.0, s.at(104), 1e-15);
    }

    @Test
    void constantWithWarmupAndWithout() {
        LrSchedule w = new LrSchedule(Scheduler.CONSTANT_WITH_WARMUP, BASE, 4, 100);
        assertEquals(0.5 * BASE, w.at(2), 1e-15);
        assertEquals(BASE, w.at(4), 1e-15);
        assertEquals(BASE, w.at(99), 1e-15);
        LrSchedule c = new LrSchedule(Scheduler.CONSTANT, BASE, 0, 100);
        assertEquals(BASE, c.at(0), 1e-15);
        // transformers' get_scheduler("constant") is get_constant_schedule: no warmup, whatever warmup_steps says
        LrSchedule noWarmup = new LrSchedule(Scheduler.CONSTANT, BASE, 4, 100);
        assertEquals(BASE, noWarmup.at(0), 1e-15);
        assertEquals(0, noWarmup.warmup());
    }

    @Test
    void warmupRatioRoundsUpAsTransformersDoes() {
        assertEquals(11, LrSchedule.warmupSteps(0, 0.1, 101));
        assertEquals(7, LrSchedule.warmupSteps(7, 0.5, 101), "warmup_steps wins over warmup_ratio");
        assertEquals(0, LrSchedule.warmupSteps(0, 0.0, 101));
    }
}
