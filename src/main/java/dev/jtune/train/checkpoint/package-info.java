/**
 * A run's files on disk: checkpoint-STEP/ directories ({@link dev.jtune.train.checkpoint.Checkpoints}: the model or
 * adapter, optimizer state, trainer_state.json, verified by hash), their rotation under save_total_limit, the random
 * generators' states, the run manifest (versions, data hashes) and the output directory's overwrite and resume policy.
 * The loop writes through {@link dev.jtune.train.CheckpointWriter}. Internal: not a stable API.
 */
package dev.jtune.train.checkpoint;
