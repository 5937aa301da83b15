/**
 * One optimizer step: what trains ({@link dev.jtune.train.step.Trainable}: every weight, or LoRA adapters on a frozen
 * base), the one factory that binds it to the optimizer, the loss scaler and the data-parallel sync
 * ({@link dev.jtune.train.step.TrainStep#assemble}), the loss it minimises ({@link dev.jtune.train.step.StepLoss},
 * cross-entropy by default), and how the forward and backward run (autocast, block by block for the gradient buckets,
 * activation checkpointing with optional offload). Internal: not a stable API.
 */
package dev.jtune.train.step;
