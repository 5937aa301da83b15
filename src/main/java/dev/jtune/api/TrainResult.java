package dev.jtune.api;

import java.nio.file.Path;
import java.util.List;
import java.util.SortedMap;

/**
 * What a finished {@link Trainer#train()} produced: the same numbers as metrics.jsonl and the report.
 *
 * @param finalModel   {@code output_dir/final}: a Hugging Face model directory (full fine-tuning) or a PEFT adapter
 *                     directory (LoRA), loadable with {@link Model#load(Path)}; null when a preemption request stopped the run
 * @param globalStep   optimizer steps taken
 * @param epochs       epochs done, fractional
 * @param stopReason   why the run ended ("max_steps reached", "early stopping: ...", a callback's reason)
 * @param trainLosses  the logged training loss by step (each the mean over the steps since the previous log line)
 * @param evalLosses   the validation loss by step
 * @param bestEvalLoss the lowest validation loss, or null without validation data
 * @param bestStep     the step of {@code bestEvalLoss}, or null
 * @param testLoss     the test split's loss on the final model, or null without a test split
 * @param report       {@code output_dir/report.html} (null on ranks other than 0)
 * @param warnings     the report's warnings (e.g. a rising validation loss)
 * @param skippedSteps optimizer steps skipped because of non-finite gradients
 */
public record TrainResult(Path finalModel, int globalStep, double epochs, String stopReason, SortedMap<Integer, Double> trainLosses,
                          SortedMap<Integer, Double> evalLosses, Double bestEvalLoss, Integer bestStep, Double testLoss, Path report,
                          List<String> warnings, long skippedSteps) {}
