package dev.jtune.api;

import java.nio.file.Path;

/**
 * Where a run is when a {@link TrainerCallback} is told of an event (transformers' {@code TrainerState}, the fields of
 * trainer_state.json): an immutable snapshot.
 *
 * @param globalStep    optimizer steps taken so far
 * @param maxSteps      the steps the run plans to take ({@code max_steps}, or the epochs' steps)
 * @param epoch         epochs done, fractional ({@code 1.5}: half-way through the second)
 * @param bestEvalLoss  the lowest validation loss so far, or null before the first evaluation
 * @param bestStep      the step of {@code bestEvalLoss}, or null
 * @param outputDir     the run's {@code training.output_dir}
 * @param isMainProcess whether this process is rank 0 (always true outside a data-parallel run)
 */
public record TrainerState(int globalStep, int maxSteps, double epoch, Double bestEvalLoss, Integer bestStep, Path outputDir,
                           boolean isMainProcess) {}
