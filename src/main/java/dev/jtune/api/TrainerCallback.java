package dev.jtune.api;

import java.nio.file.Path;
import java.util.Map;

/**
 * Told of a training run's events, as transformers' {@code TrainerCallback} is: every method has an empty default, so a
 * callback overrides only what it needs. Callbacks run on the training thread, in the order they were added, on every
 * rank of a data-parallel run ({@link TrainerState#isMainProcess()} says whether this is rank 0, the one that writes).
 *
 * <p>The events that can change the run get a {@link TrainerControl}: stop training, or evaluate or save after the
 * current step. Everything jtune writes itself (metrics.jsonl, TensorBoard events, the console, the report) is told of
 * the same events with the same values.
 */
public interface TrainerCallback {
    /** Before the first optimizer step (after a resume: before the first step that is trained again). */
    default void onTrainBegin(TrainerState state) {}

    /**
     * After every optimizer step, before the trainer's own evaluation and save decisions for it.
     *
     * @param state   {@link TrainerState#globalStep()} is the step just taken
     * @param control ask for a stop, an evaluation or a checkpoint after this step
     */
    default void onStepEnd(TrainerState state, TrainerControl control) {}

    /**
     * A logged line: training every {@code logging_steps} ({@code loss}, {@code learning_rate}, {@code grad_norm},
     * {@code epoch}, {@code tokens_per_second}, {@code skipped_steps}, and under fp16 {@code loss_scale}), each
     * evaluation ({@code eval_loss}, {@code eval_perplexity} in supervised runs, {@code epoch}) and the test split at the end
     * ({@code test_loss}, {@code test_perplexity}): the names of metrics.jsonl. jtune's own files (metrics.jsonl,
     * TensorBoard, trainer_state.json's log history) are written by a callback told before this one.
     *
     * @param logs the values by name (a new map for every call; keep it if you like)
     */
    default void onLog(TrainerState state, Map<String, Double> logs) {}

    /**
     * As {@link #onLog(TrainerState, Map)}, with the run's control; the trainer calls this one, whose default calls the
     * two-argument form.
     */
    default void onLog(TrainerState state, Map<String, Double> logs, TrainerControl control) {
        onLog(state, logs);
    }

    /**
     * After each evaluation of the validation split during training (and the final one), before early stopping is
     * decided: a stop asked here ends the run as early stopping does (final model, test split, report).
     *
     * @param metrics {@code eval_loss}, and {@code eval_perplexity} in supervised runs (a preference run logs its reward metrics instead)
     */
    default void onEvaluate(TrainerState state, Map<String, Double> metrics, TrainerControl control) {}

    /**
     * After a checkpoint is complete on disk (on every rank, once rank 0 has written it).
     *
     * @param checkpoint the {@code output_dir/checkpoint-STEP} directory
     */
    default void onSave(TrainerState state, Path checkpoint) {}

    /** After the last step, the final model and the test split; not called when the run fails or a signal stops it. */
    default void onTrainEnd(TrainerState state) {}
}
