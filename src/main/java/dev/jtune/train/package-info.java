/**
 * The training run: {@link dev.jtune.train.Trainer} (the recipe the API and the CLI run), the loop and its state,
 * evaluation, generated-answer rounds, the metric sinks and the run's callbacks, trainer_state.json, and the writer of
 * checkpoints. The step itself is in {@code train.step}, the optimizer and schedules in {@code train.optim}, the files
 * in {@code train.checkpoint}, preference losses in {@code train.preference}. Internal: not a stable API;
 * {@link dev.jtune.api.Trainer} is its stable face.
 */
package dev.jtune.train;
