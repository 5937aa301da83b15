package dev.jtune.train;

import dev.jtune.train.optim.LrSchedule;
import dev.jtune.config.TrainingSection;

/**
 * How many optimizer steps a run takes and at which learning rates, counted as transformers' Trainer
 * ({@code set_initial_training_values}, 4.55+) counts them: an epoch of {@code n} micro-batches is
 * {@code ceil(n / gradient_accumulation_steps)} steps (at least 1; the last one accumulates the remainder, and its
 * loss is normalised over its own target tokens); {@code max_steps} wins, else
 * {@code ceil(num_train_epochs · steps per epoch)}; warmup as {@link LrSchedule#warmupSteps}.
 */
record TrainingPlan(int microBatchesPerEpoch, int accumulation, long stepsPerEpoch, long totalSteps, LrSchedule schedule) {

    static TrainingPlan of(TrainingSection t, int microBatchesPerEpoch) {
        int accum = t.gradientAccumulationSteps();
        long perEpoch = Math.max(1, ((long) microBatchesPerEpoch + accum - 1) / accum);
        long total = t.maxSteps() > 0 ? t.maxSteps() : (long) Math.ceil(t.numTrainEpochs() * perEpoch);
        LrSchedule schedule = new LrSchedule(t.lrSchedulerType(), t.learningRate(),
                LrSchedule.warmupSteps(t.warmupSteps(), t.warmupRatio(), total), total, t.lrSchedulerKwargs());
        return new TrainingPlan(microBatchesPerEpoch, accum, perEpoch, total, schedule);
    }
}
