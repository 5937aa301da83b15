package dev.jtune.dist;

import dev.jtune.util.UserError;

import java.util.Map;
import java.util.Optional;

/**
 * Where this process sits in a data-parallel job, read from the variables its launcher set.
 *
 * <p>torchrun (and jtune's own {@code --nproc-per-node} launcher, which sets the same names) gives
 * {@code RANK}, {@code LOCAL_RANK}, {@code WORLD_SIZE}, {@code LOCAL_WORLD_SIZE}, {@code MASTER_ADDR},
 * {@code MASTER_PORT}; torchelastic adds {@code TORCHELASTIC_USE_AGENT_STORE} (every rank is then a
 * client of the agent's store) and {@code TORCHELASTIC_RESTART_COUNT}. SLURM gives {@code SLURM_PROCID},
 * {@code SLURM_LOCALID}, {@code SLURM_NTASKS}; Kubeflow's PyTorchJob sets the torchrun names
 * ({@code RANK} is the pod's rank when one process runs per pod).
 *
 * @param source which launcher's variables were read: "torchrun", "slurm" or "kubeflow"
 */
public record LaunchEnv(
        int rank,
        int localRank,
        int worldSize,
        int localWorldSize,
        String masterAddr,
        int masterPort,
        boolean agentStore,
        int restartCount,
        String source) {

    public boolean distributed() {
        return worldSize > 1;
    }

    public boolean isMain() {
        return rank == 0;
    }

    /** A single process: rank 0 of 1. */
    public static LaunchEnv single() {
        return new LaunchEnv(0, 0, 1, 1, "127.0.0.1", 0, false, 0, "none");
    }

    /** Empty when no launcher variables are set (a plain single-process run). */
    public static Optional<LaunchEnv> fromEnvironment(Map<String, String> env) {
        if (env.containsKey("RANK") && env.containsKey("WORLD_SIZE")) {
            int world = positive(env, "WORLD_SIZE");
            int rank = index(env, "RANK", world);
            int localWorld = env.containsKey("LOCAL_WORLD_SIZE") ? positive(env, "LOCAL_WORLD_SIZE") : world;
            int localRank = env.containsKey("LOCAL_RANK") ? index(env, "LOCAL_RANK", localWorld) : rank % localWorld;
            String source = env.containsKey("TORCHELASTIC_RUN_ID") || env.containsKey("LOCAL_RANK")
                    ? "torchrun" : env.containsKey("PET_NNODES") || env.containsKey("KUBERNETES_SERVICE_HOST")
                    ? "kubeflow" : "torchrun";
            return Optional.of(new LaunchEnv(rank, localRank, world, localWorld,
                    masterAddr(env), masterPort(env),
                    "True".equalsIgnoreCase(env.getOrDefault("TORCHELASTIC_USE_AGENT_STORE", "False")),
                    env.containsKey("TORCHELASTIC_RESTART_COUNT") ? nonNegative(env, "TORCHELASTIC_RESTART_COUNT") : 0,
                    source));
        }
        if (env.containsKey("SLURM_PROCID") && env.containsKey("SLURM_NTASKS")) {
            int world = positive(env, "SLURM_NTASKS");
            int rank = index(env, "SLURM_PROCID", world);
            int localWorld = env.containsKey("SLURM_NTASKS_PER_NODE")
                    ? positive(env, "SLURM_NTASKS_PER_NODE") : world;
            int localRank = env.containsKey("SLURM_LOCALID") ? index(env, "SLURM_LOCALID", localWorld) : rank % localWorld;
            return Optional.of(new LaunchEnv(rank, localRank, world, localWorld, masterAddr(env), masterPort(env),
                    false, env.containsKey("SLURM_RESTART_COUNT") ? nonNegative(env, "SLURM_RESTART_COUNT") : 0, "slurm"));
        }
        return Optional.empty();
    }

    private static String masterAddr(Map<String, String> env) {
        String addr = env.get("MASTER_ADDR");
        if (addr == null || addr.isBlank()) {
            throw new UserError("environment: MASTER_ADDR is not set; a distributed run needs the address of rank 0's "
                    + "store (torchrun sets it; under SLURM export it, e.g. the first host of $SLURM_JOB_NODELIST)");
        }
        return addr;
    }

    private static int masterPort(Map<String, String> env) {
        if (!env.containsKey("MASTER_PORT")) {
            throw new UserError("environment: MASTER_PORT is not set; a distributed run needs the port of rank 0's store");
        }
        int port = integer(env, "MASTER_PORT");
        if (port < 1 || port > 65535) {
            throw new UserError("environment: MASTER_PORT=" + port + " is not a TCP port (expected 1..65535)");
        }
        return port;
    }

    private static int positive(Map<String, String> env, String key) {
        int v = integer(env, key);
        if (v < 1) throw new UserError("environment: " + key + "=" + v + " must be at least 1");
        return v;
    }

    private static int nonNegative(Map<String, String> env, String key) {
        int v = integer(env, key);
        if (v < 0) throw new UserError("environment: " + key + "=" + v + " must not be negative");
        return v;
    }

    private static int index(Map<String, String> env, String key, int bound) {
        int v = integer(env, key);
        if (v < 0 || v >= bound) {
            throw new UserError("environment: " + key + "=" + v + " is outside 0.." + (bound - 1));
        }
        return v;
    }

    private static int integer(Map<String, String> env, String key) {
        String raw = env.get(key).trim();
        try {
            return Integer.parseInt(raw);
        } catch (NumberFormatException e) {
            throw new UserError("environment: " + key + "='" + raw + "' is not an integer");
        }
    }
}
