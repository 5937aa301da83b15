package dev.jtune.distributed;

import dev.jtune.util.UserError;

import java.util.ArrayList;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.Optional;

/**
 * Where this process sits in a data-parallel job, read from the variables its launcher set.
 *
 * <ul>
 *   <li><b>torchrun</b> (torchelastic) sets, for every worker: {@code RANK}, {@code LOCAL_RANK}, {@code WORLD_SIZE},
 *       {@code LOCAL_WORLD_SIZE}, {@code GROUP_RANK} (the node's index), {@code MASTER_ADDR}, {@code MASTER_PORT},
 *       {@code TORCHELASTIC_RUN_ID}, {@code TORCHELASTIC_RESTART_COUNT} and {@code TORCHELASTIC_USE_AGENT_STORE}:
 *       "True" (Python's {@code str(bool)}) with the static rendezvous, when the agent already hosts a TCPStore at
 *       MASTER_ADDR:MASTER_PORT and every rank joins it as a client under the key prefix
 *       {@code /worker/attempt_<restart count>} (as torch's own {@code env://} rendezvous does); "False" with the
 *       c10d rendezvous ({@code --standalone}, {@code --rdzv-endpoint}), when rank 0 hosts the store.</li>
 *   <li><b>jtune's own launcher</b> ({@code --nproc-per-node}) sets the torchrun names without the TORCHELASTIC ones,
 *       plus {@code JTUNE_LAUNCHER_PID}.</li>
 *   <li><b>SLURM</b> (one task per GPU, started by {@code srun}): {@code SLURM_PROCID}, {@code SLURM_LOCALID},
 *       {@code SLURM_NODEID}; the task count from {@code SLURM_STEP_NUM_TASKS} (the srun step's) or
 *       {@code SLURM_NTASKS}; tasks per node from {@code SLURM_STEP_TASKS_PER_NODE}, {@code SLURM_TASKS_PER_NODE}
 *       or {@code SLURM_NTASKS_PER_NODE}, in SLURM's compressed form ("2(x3),1": two tasks on each of three nodes,
 *       one on the fourth). {@code MASTER_ADDR} and {@code MASTER_PORT} come from the environment (the sbatch script
 *       exports them). {@code SLURM_RESTART_COUNT} counts requeues.</li>
 *   <li><b>Kubeflow's PyTorchJob</b> (training-operator) sets in every pod, when the job has a Master replica:
 *       {@code MASTER_ADDR} (the master pod's service), {@code MASTER_PORT}, {@code WORLD_SIZE} (replicas ×
 *       nprocPerNode), {@code RANK} (master 0, worker i → i+1: the pod's index), and the torchrun defaults
 *       {@code PET_NNODES}, {@code PET_NPROC_PER_NODE}, {@code PET_NODE_RANK}, {@code PET_MASTER_ADDR},
 *       {@code PET_MASTER_PORT} (with an elasticPolicy also {@code PET_RDZV_ENDPOINT} and friends). One process per
 *       pod reads RANK/WORLD_SIZE directly (LOCAL_RANK 0 of 1); several processes per pod need torchrun in the
 *       container, which reads the PET_ variables and then sets the torchrun names above.</li>
 *   <li>The torchrun names set by hand ({@code source "env"}): RANK and WORLD_SIZE, the rest optional.</li>
 * </ul>
 *
 * @param rank           this process's index in [0, worldSize)
 * @param localRank      its index on this node in [0, localWorldSize): the CUDA device it binds to
 * @param worldSize      processes in the job
 * @param localWorldSize processes on this node
 * @param masterAddr     host of the TCPStore ("127.0.0.1" for a single process without one)
 * @param masterPort     its port (0 for a single process without one)
 * @param agentStore     the store is the torchelastic agent's: every rank, rank 0 included, joins it as a client
 * @param restartCount   how often the launcher restarted the job (torchelastic restarts, SLURM requeues)
 * @param source         which variables were read: "torchrun", "jtune", "slurm", "kubeflow", "env", or "none"
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

    /** Whether this process starts the TCPStore server: rank 0, unless the torchelastic agent already hosts it. */
    public boolean hostsStore() {
        return rank == 0 && !agentStore;
    }

    /**
     * The key prefix inside the store: {@code /worker/attempt_N} on the agent's store, which outlives restarts
     * (torch's env:// rendezvous uses the same, so keys of an earlier attempt never collide); empty otherwise.
     */
    public String storePrefix() {
        return agentStore ? "/worker/attempt_" + restartCount : "";
    }

    /**
     * The CUDA device this rank binds to, given how many the process sees: LOCAL_RANK when every rank sees all
     * the node's GPUs; 0 when the launcher gave each task one GPU (SLURM's {@code --gpus-per-task=1} or
     * {@code --gpu-bind}, Kubernetes' one-GPU pods set CUDA_VISIBLE_DEVICES to it).
     */
    public int cudaDevice(int visibleDevices) {
        if (visibleDevices >= localWorldSize) return localRank;
        if (visibleDevices == 1) return 0;
        throw new UserError("rank " + rank + ": " + localWorldSize + " processes run on this node (local rank " + localRank
                + ") but this process sees " + visibleDevices + " CUDA device" + (visibleDevices == 1 ? "" : "s")
                + " (CUDA_VISIBLE_DEVICES=" + System.getenv("CUDA_VISIBLE_DEVICES") + "); start one process per GPU, "
                + "each seeing either all of the node's GPUs or exactly one");
    }

    /** One line for the console, e.g. "rank 1 of 4 (local 1 of 2, via torchrun), store 10.0.0.5:29500 (the agent's)". */
    public String describe() {
        return String.format(Locale.ROOT, "rank %d of %d (local %d of %d, via %s), store %s:%d (%s)%s", rank, worldSize, localRank,
                localWorldSize, source, masterAddr, masterPort, agentStore ? "the torchelastic agent's" : rank == 0 ? "hosted here" : "hosted by rank 0",
                restartCount > 0 ? ", restart " + restartCount : "");
    }

    /** A single process: rank 0 of 1. */
    public static LaunchEnv single() {
        return new LaunchEnv(0, 0, 1, 1, "127.0.0.1", 0, false, 0, "none");
    }

    /**
     * Empty when no launcher variables are set (a plain single-process run).
     *
     * @throws UserError (exit 2) naming the variable when one is malformed, out of range or missing
     */
    public static Optional<LaunchEnv> fromEnvironment(Map<String, String> env) {
        if (env.containsKey("RANK") || env.containsKey("WORLD_SIZE")) return Optional.of(torchrunNames(env));
        if (env.containsKey("SLURM_PROCID") && (env.containsKey("SLURM_STEP_NUM_TASKS") || env.containsKey("SLURM_NTASKS"))) {
            return Optional.of(slurm(env));
        }
        return Optional.empty();
    }

    /** RANK, WORLD_SIZE and friends: torchrun, jtune's launcher, a PyTorchJob's pod, or set by hand. */
    private static LaunchEnv torchrunNames(Map<String, String> env) {
        for (String k : new String[] {"RANK", "WORLD_SIZE"}) {
            if (!env.containsKey(k)) {
                throw new UserError("environment: " + (k.equals("RANK") ? "WORLD_SIZE" : "RANK") + " is set but " + k
                        + " is not; a distributed run needs both (torchrun, SLURM's srun or Kubeflow set them)");
            }
        }
        String source = env.containsKey("TORCHELASTIC_RUN_ID") ? "torchrun"
                : env.containsKey("JTUNE_LAUNCHER_PID") ? "jtune"
                : kubeflowPod(env) ? "kubeflow" : "env";
        int world = positive(env, "WORLD_SIZE");
        int rank = index(env, "RANK", world, "WORLD_SIZE");
        if (env.containsKey("GROUP_RANK")) nonNegative(env, "GROUP_RANK");
        int localWorld;
        int localRank;
        if (source.equals("kubeflow")) {
            String nproc = env.get("PET_NPROC_PER_NODE");
            if (nproc != null && nproc.trim().matches("\\d+") && Integer.parseInt(nproc.trim()) > 1) {
                throw new UserError("environment: PET_NPROC_PER_NODE=" + nproc.trim() + ": this PyTorchJob runs " + nproc.trim()
                        + " processes per pod, so WORLD_SIZE=" + world + " counts processes while RANK=" + rank + " is the pod's index; "
                        + "start jtune in the container through torchrun, which reads the PET_ variables "
                        + "(command: torchrun --no-python jtune train exp.yaml), or set nprocPerNode: 1");
            }
            localWorld = 1;   // one process per pod
            localRank = 0;
        } else {
            localWorld = env.containsKey("LOCAL_WORLD_SIZE") ? positive(env, "LOCAL_WORLD_SIZE") : world;
            if (localWorld > world) {
                throw new UserError("environment: LOCAL_WORLD_SIZE=" + localWorld + " is larger than WORLD_SIZE=" + world);
            }
            localRank = env.containsKey("LOCAL_RANK") ? index(env, "LOCAL_RANK", localWorld, "LOCAL_WORLD_SIZE") : rank % localWorld;
        }
        boolean agentStore = agentStore(env);
        int restarts = env.containsKey("TORCHELASTIC_RESTART_COUNT") ? nonNegative(env, "TORCHELASTIC_RESTART_COUNT") : 0;
        if (agentStore && !env.containsKey("TORCHELASTIC_RESTART_COUNT")) {
            throw new UserError("environment: TORCHELASTIC_USE_AGENT_STORE=True but TORCHELASTIC_RESTART_COUNT is not set; "
                    + "the agent's store keeps each attempt's keys under /worker/attempt_<restart count>");
        }
        String hint = switch (source) {
            case "kubeflow" -> "a PyTorchJob sets it when the job has a Master replica";
            default -> "torchrun sets it; when setting RANK and WORLD_SIZE by hand, set it too";
        };
        return withStore(env, rank, localRank, world, localWorld, agentStore, restarts, source, hint);
    }

    /** srun's task variables; MASTER_ADDR/MASTER_PORT exported by the batch script. */
    private static LaunchEnv slurm(Map<String, String> env) {
        String worldKey = env.containsKey("SLURM_STEP_NUM_TASKS") ? "SLURM_STEP_NUM_TASKS" : "SLURM_NTASKS";
        int world = positive(env, worldKey);
        int rank = index(env, "SLURM_PROCID", world, worldKey);
        int localWorld = world;
        String localKey = worldKey;
        for (String key : new String[] {"SLURM_STEP_TASKS_PER_NODE", "SLURM_TASKS_PER_NODE", "SLURM_NTASKS_PER_NODE"}) {
            if (env.containsKey(key)) {
                localWorld = tasksOnThisNode(env, key);
                localKey = "this node's entry of " + key;
                break;
            }
        }
        if (localWorld > world) {
            throw new UserError("environment: " + localKey + " is " + localWorld + " tasks, more than " + worldKey + "=" + world);
        }
        int localRank = env.containsKey("SLURM_LOCALID") ? index(env, "SLURM_LOCALID", localWorld, localKey) : rank % localWorld;
        int restarts = env.containsKey("SLURM_RESTART_COUNT") ? nonNegative(env, "SLURM_RESTART_COUNT") : 0;
        return withStore(env, rank, localRank, world, localWorld, false, restarts, "slurm",
                "SLURM does not set it; export it in the sbatch script before srun, e.g. "
                        + "MASTER_ADDR=$(scontrol show hostnames \"$SLURM_JOB_NODELIST\" | head -n 1) and MASTER_PORT=29500");
    }

    /** A world of one needs no store: MASTER_ADDR/MASTER_PORT become optional (a plain run in an sbatch script). */
    private static LaunchEnv withStore(Map<String, String> env, int rank, int localRank, int world, int localWorld,
                                       boolean agentStore, int restarts, String source, String hint) {
        boolean needed = world > 1 || agentStore;
        String addr = needed || env.containsKey("MASTER_ADDR") ? masterAddr(env, hint) : "127.0.0.1";
        int port = needed || env.containsKey("MASTER_PORT") ? masterPort(env, hint) : 0;
        return new LaunchEnv(rank, localRank, world, localWorld, addr, port, agentStore, restarts, source);
    }

    private static boolean kubeflowPod(Map<String, String> env) {
        if (env.containsKey("LOCAL_RANK")) return false;   // torchrun (run inside a pod) sets it; then its names rule
        return env.containsKey("PET_NNODES") || env.containsKey("PET_NODE_RANK") || env.containsKey("PET_MASTER_ADDR")
                || env.containsKey("KUBERNETES_SERVICE_HOST");
    }

    private static boolean agentStore(Map<String, String> env) {
        String v = env.get("TORCHELASTIC_USE_AGENT_STORE");
        if (v == null) return false;
        return switch (v.trim()) {
            case "True", "true", "1" -> true;
            case "False", "false", "0", "" -> false;
            default -> throw new UserError("environment: TORCHELASTIC_USE_AGENT_STORE='" + v + "' is neither True nor False");
        };
    }

    /**
     * This node's task count from SLURM's compressed per-node list: "4", "2(x3)", "2(x3),1". The entry is the
     * one of SLURM_NODEID (the node's index in the job's or step's node list; 0 when unset).
     */
    static int tasksOnThisNode(Map<String, String> env, String key) {
        String raw = env.get(key).trim();
        List<Integer> perNode = new ArrayList<>();
        for (String part : raw.split(",")) {
            var m = java.util.regex.Pattern.compile("(\\d+)(?:\\(x(\\d+)\\))?").matcher(part.trim());
            if (!m.matches()) {
                throw new UserError("environment: " + key + "='" + raw + "' is not SLURM's task list (expected e.g. 4, 2(x3) or 2(x3),1)");
            }
            int count = parse(key, m.group(1), raw);
            int times = m.group(2) == null ? 1 : parse(key, m.group(2), raw);
            if (count < 1 || times < 1 || times > 100_000) {
                throw new UserError("environment: " + key + "='" + raw + "': task counts and repeats must be at least 1");
            }
            for (int i = 0; i < times; i++) perNode.add(count);
        }
        int node = env.containsKey("SLURM_NODEID") ? nonNegative(env, "SLURM_NODEID") : 0;
        if (node >= perNode.size()) {
            throw new UserError("environment: SLURM_NODEID=" + node + " but " + key + "='" + raw + "' lists " + perNode.size()
                    + " node" + (perNode.size() == 1 ? "" : "s"));
        }
        return perNode.get(node);
    }

    private static String masterAddr(Map<String, String> env, String hint) {
        String addr = env.get("MASTER_ADDR");
        if (addr == null || addr.isBlank()) {
            throw new UserError("environment: MASTER_ADDR is not set; a distributed run needs the address of the rendezvous store ("
                    + hint + ")");
        }
        if (addr.trim().chars().anyMatch(Character::isWhitespace)) {
            throw new UserError("environment: MASTER_ADDR='" + addr + "' is not a host name or address");
        }
        return addr.trim();
    }

    private static int masterPort(Map<String, String> env, String hint) {
        if (!env.containsKey("MASTER_PORT")) {
            throw new UserError("environment: MASTER_PORT is not set; a distributed run needs the port of the rendezvous store ("
                    + hint + ")");
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

    private static int index(Map<String, String> env, String key, int bound, String boundName) {
        int v = integer(env, key);
        if (v < 0 || v >= bound) {
            throw new UserError("environment: " + key + "=" + v + " is outside 0.." + (bound - 1) + " (" + boundName + "=" + bound + ")");
        }
        return v;
    }

    private static int integer(Map<String, String> env, String key) {
        return parse(key, env.get(key).trim(), env.get(key));
    }

    private static int parse(String key, String digits, String raw) {
        try {
            return Integer.parseInt(digits);
        } catch (NumberFormatException e) {
            throw new UserError("environment: " + key + "='" + raw + "' is not an integer");
        }
    }
}
