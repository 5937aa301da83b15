/**
 * Data-parallel training over c10d: the launcher environment ({@link dev.jtune.distributed.LaunchEnv}: torchrun, SLURM,
 * Kubeflow), the process group ({@link dev.jtune.distributed.DistGroup}), bucketed gradient all-reduce during the backward
 * ({@link dev.jtune.distributed.DataParallel}), ZeRO stage 1 sharding, and the local launcher of {@code --nproc-per-node}.
 * Internal: not a stable API.
 */
package dev.jtune.distributed;
