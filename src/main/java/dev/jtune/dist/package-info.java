/**
 * Data-parallel training over c10d: the launcher environment ({@link dev.jtune.dist.LaunchEnv}: torchrun, SLURM,
 * Kubeflow), the process group ({@link dev.jtune.dist.DistGroup}), bucketed gradient all-reduce during the backward
 * ({@link dev.jtune.dist.DataParallel}), ZeRO stage 1 sharding, and the local launcher of {@code --nproc-per-node}.
 * Internal: not a stable API.
 */
package dev.jtune.dist;
