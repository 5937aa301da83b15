/**
 * The training run: {@link dev.jtune.train.Trainer} (the recipe the API and the CLI run), the loop, the one factory of
 * a training step ({@link dev.jtune.train.TrainStep#assemble}), AdamW and the schedules, the fp16 loss scaler,
 * activation checkpointing, evaluation, checkpoints and exact resume, and the metric sinks as callbacks. Internal: not a
 * stable API; {@link dev.jtune.api.Trainer} is its stable face.
 */
package dev.jtune.train;
