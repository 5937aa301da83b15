package dev.jtune.api;

/**
 * What a {@link TrainerCallback} may ask of the run it watches (transformers' {@code TrainerControl}). Requests take
 * effect after the current step: an evaluation and a checkpoint then, whatever {@code eval_steps} and
 * {@code save_steps} say; a stop ends the run with the final model, the test split and the report, as early stopping
 * does. In a data-parallel run every rank must ask the same, as every rank sees the same losses.
 */
public interface TrainerControl {
    /**
     * Stops training after the current step.
     *
     * @param reason the run's stop reason (the console, the report, {@link TrainResult#stopReason()})
     */
    void stopTraining(String reason);

    /** Evaluates the validation split after the current step (ignored without validation data). */
    void evaluateNow();

    /** Writes a checkpoint after the current step. */
    void saveNow();
}
