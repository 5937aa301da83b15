package dev.jtune.distributed;

import dev.jtune.util.UserError;
import org.junit.jupiter.api.Test;

import java.util.HashMap;
import java.util.Map;
import java.util.Optional;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * The environments each launcher really makes, written out variable by variable as it sets them (torch 1.13's
 * local_elastic_agent.py, SLURM's srun, Kubeflow training-operator's envvar.go/master.go/elastic.go), and the
 * mistakes a user makes setting them by hand. The real torchrun runs in {@link TorchrunTest}.
 */
class LaunchEnvTest {

    /** A worker of {@code torchrun --nnodes 2 --nproc-per-node 4 --rdzv-endpoint host:29400} (c10d rendezvous). */
    static Map<String, String> torchrunWorker(int rank, int localRank, int groupRank, String useAgentStore, int restart) {
        Map<String, String> env = new HashMap<>(Map.of("LOCAL_RANK", "" + localRank, "RANK", "" + rank, "GROUP_RANK", "" + groupRank,
                "ROLE_RANK", "" + rank, "ROLE_NAME", "default", "LOCAL_WORLD_SIZE", "4", "WORLD_SIZE", "8", "GROUP_WORLD_SIZE", "2",
                "ROLE_WORLD_SIZE", "8", "MASTER_ADDR", "node-a.cluster"));
        env.putAll(Map.of("MASTER_PORT", "41235", "TORCHELASTIC_RESTART_COUNT", "" + restart, "TORCHELASTIC_MAX_RESTARTS", "3",
                "TORCHELASTIC_RUN_ID", "none", "TORCHELASTIC_USE_AGENT_STORE", useAgentStore, "NCCL_ASYNC_ERROR_HANDLING", "1",
                "TORCHELASTIC_ERROR_FILE", "/tmp/torchelastic_x/none_y/attempt_0/6/error.json", "OMP_NUM_THREADS", "1"));
        return env;
    }

    static LaunchEnv read(Map<String, String> env) {
        return LaunchEnv.fromEnvironment(env).orElseThrow();
    }

    @Test
    void torchrunWithC10dRendezvousRankZeroHostsTheStore() {
        LaunchEnv w6 = read(torchrunWorker(6, 2, 1, "False", 0));
        assertEquals(new LaunchEnv(6, 2, 8, 4, "node-a.cluster", 41235, false, 0, "torchrun"), w6);
        assertTrue(w6.distributed());
        assertFalse(w6.isMain());
        assertFalse(w6.hostsStore());
        assertEquals("", w6.storePrefix());
        LaunchEnv w0 = read(torchrunWorker(0, 0, 0, "False", 0));
        assertTrue(w0.isMain() && w0.hostsStore());
        assertEquals("rank 6 of 8 (local 2 of 4, via torchrun), store node-a.cluster:41235 (hosted by rank 0)", w6.describe());
    }

    @Test
    void torchrunWithTheStaticRendezvousJoinsTheAgentsStoreUnderTheAttemptPrefix() {
        LaunchEnv w0 = read(torchrunWorker(0, 0, 0, "True", 2));
        assertTrue(w0.agentStore());
        assertEquals(2, w0.restartCount());
        assertFalse(w0.hostsStore(), "the agent hosts the store; rank 0 is a client like the others");
        assertEquals("/worker/attempt_2", w0.storePrefix());
        assertEquals("rank 0 of 8 (local 0 of 4, via torchrun), store node-a.cluster:41235 (the torchelastic agent's), restart 2",
                w0.describe());
    }

    @Test
    void jtunesOwnLauncherSetsTheTorchrunNames() {
        LaunchEnv e = read(Map.of("RANK", "1", "LOCAL_RANK", "1", "WORLD_SIZE", "3", "LOCAL_WORLD_SIZE", "3",
                "MASTER_ADDR", "127.0.0.1", "MASTER_PORT", "29511", "JTUNE_LAUNCHER_PID", "4242"));
        assertEquals(new LaunchEnv(1, 1, 3, 3, "127.0.0.1", 29511, false, 0, "jtune"), e);
    }

    @Test
    void namesSetByHandNeedOnlyRankAndWorldSize() {
        LaunchEnv e = read(Map.of("RANK", "3", "WORLD_SIZE", "4", "MASTER_ADDR", "10.1.2.3", "MASTER_PORT", "29500"));
        assertEquals(new LaunchEnv(3, 3, 4, 4, "10.1.2.3", 29500, false, 0, "env"), e);
        // a world of one needs no store
        assertEquals(new LaunchEnv(0, 0, 1, 1, "127.0.0.1", 0, false, 0, "env"), read(Map.of("RANK", "0", "WORLD_SIZE", "1")));
    }

    /** srun -N 2 --ntasks-per-node 4 in an sbatch script that exported MASTER_ADDR/MASTER_PORT. */
    @Test
    void slurmOneTaskPerGpuOnTwoNodes() {
        Map<String, String> env = new HashMap<>(Map.of("SLURM_PROCID", "5", "SLURM_LOCALID", "1", "SLURM_NODEID", "1",
                "SLURM_NTASKS", "8", "SLURM_NPROCS", "8", "SLURM_TASKS_PER_NODE", "4(x2)", "SLURM_NTASKS_PER_NODE", "4",
                "SLURM_STEP_NUM_TASKS", "8", "SLURM_STEP_TASKS_PER_NODE", "4(x2)", "SLURM_JOB_NODELIST", "gpu[07-08]"));
        env.putAll(Map.of("SLURM_GPUS_ON_NODE", "4", "SLURM_JOB_ID", "4711", "MASTER_ADDR", "gpu07", "MASTER_PORT", "29500"));
        assertEquals(new LaunchEnv(5, 1, 8, 4, "gpu07", 29500, false, 0, "slurm"), read(env));
        env.put("SLURM_RESTART_COUNT", "1");   // the job was requeued once
        assertEquals(1, read(env).restartCount());
    }

    @Test
    void slurmTaskListsInTheirCompressedForm() {
        // three nodes with two tasks and a fourth with one: 7 tasks
        Map<String, String> env = new HashMap<>(Map.of("SLURM_PROCID", "6", "SLURM_LOCALID", "0", "SLURM_NODEID", "3",
                "SLURM_NTASKS", "7", "SLURM_TASKS_PER_NODE", "2(x3),1", "MASTER_ADDR", "n1", "MASTER_PORT", "29500"));
        assertEquals(new LaunchEnv(6, 0, 7, 1, "n1", 29500, false, 0, "slurm"), read(env));
        env.putAll(Map.of("SLURM_PROCID", "3", "SLURM_LOCALID", "1", "SLURM_NODEID", "1"));
        assertEquals(2, read(env).localWorldSize());
        // the step's own list wins over the job's (srun may start fewer tasks than the allocation has)
        env.putAll(Map.of("SLURM_STEP_NUM_TASKS", "4", "SLURM_STEP_TASKS_PER_NODE", "2(x2)"));
        assertEquals(new LaunchEnv(3, 1, 4, 2, "n1", 29500, false, 0, "slurm"), read(env));
        // only --ntasks-per-node: a plain number
        assertEquals(3, LaunchEnv.tasksOnThisNode(Map.of("SLURM_NTASKS_PER_NODE", "3"), "SLURM_NTASKS_PER_NODE"));
    }

    @Test
    void aPlainRunInsideAnSbatchScriptIsASingleProcess() {
        LaunchEnv e = read(Map.of("SLURM_PROCID", "0", "SLURM_LOCALID", "0", "SLURM_NTASKS", "1", "SLURM_TASKS_PER_NODE", "1"));
        assertFalse(e.distributed());
        assertEquals(new LaunchEnv(0, 0, 1, 1, "127.0.0.1", 0, false, 0, "slurm"), e);
    }

    /** A PyTorchJob with a Master and two Workers (nprocPerNode unset or 1): one jtune per pod, RANK is the pod's. */
    @Test
    void kubeflowPyTorchJobOneProcessPerPod() {
        Map<String, String> worker1 = new HashMap<>(Map.of("PYTHONUNBUFFERED", "0", "MASTER_PORT", "23456", "MASTER_ADDR", "ft-master-0",
                "PET_MASTER_PORT", "23456", "PET_MASTER_ADDR", "ft-master-0", "WORLD_SIZE", "3", "RANK", "2", "PET_NODE_RANK", "2",
                "PET_NPROC_PER_NODE", "1", "PET_NNODES", "3"));
        worker1.put("KUBERNETES_SERVICE_HOST", "10.96.0.1");
        assertEquals(new LaunchEnv(2, 0, 3, 1, "ft-master-0", 23456, false, 0, "kubeflow"), read(worker1));
        // older operators set only the five plain names; "auto" per node is counted as 1 in WORLD_SIZE
        Map<String, String> older = Map.of("MASTER_PORT", "23456", "MASTER_ADDR", "ft-master-0", "WORLD_SIZE", "3", "RANK", "0",
                "PET_NPROC_PER_NODE", "auto", "KUBERNETES_SERVICE_HOST", "10.96.0.1");
        assertEquals(new LaunchEnv(0, 0, 3, 1, "ft-master-0", 23456, false, 0, "kubeflow"), read(older));
    }

    /** With nprocPerNode: 4 the pod's RANK is its node rank while WORLD_SIZE counts processes: torchrun must start jtune. */
    @Test
    void kubeflowWithSeveralProcessesPerPodNeedsTorchrunInTheContainer() {
        Map<String, String> pod = Map.of("MASTER_PORT", "23456", "MASTER_ADDR", "ft-master-0", "WORLD_SIZE", "12", "RANK", "1",
                "PET_NODE_RANK", "1", "PET_NPROC_PER_NODE", "4", "PET_NNODES", "3", "KUBERNETES_SERVICE_HOST", "10.96.0.1");
        UserError e = assertThrows(UserError.class, () -> LaunchEnv.fromEnvironment(pod));
        assertTrue(e.getMessage().contains("PET_NPROC_PER_NODE=4") && e.getMessage().contains("torchrun"), e.getMessage());
        // the same pod running torchrun --no-python jtune …: torchrun's per-process names take over
        Map<String, String> underTorchrun = new HashMap<>(pod);
        underTorchrun.putAll(torchrunWorker(6, 2, 1, "False", 0));
        underTorchrun.putAll(Map.of("WORLD_SIZE", "12", "GROUP_WORLD_SIZE", "3"));
        assertEquals(new LaunchEnv(6, 2, 12, 4, "node-a.cluster", 41235, false, 0, "torchrun"), read(underTorchrun));
    }

    @Test
    void noLauncherMeansNoDistributedRun() {
        assertEquals(Optional.empty(), LaunchEnv.fromEnvironment(Map.of()));
        assertEquals(Optional.empty(), LaunchEnv.fromEnvironment(Map.of("SLURM_JOB_ID", "1", "MASTER_PORT", "29500", "PATH", "/usr/bin")));
        assertFalse(LaunchEnv.single().distributed());
    }

    @Test
    void eachRankBindsTheGpuItSees() {
        LaunchEnv local2of4 = read(torchrunWorker(6, 2, 1, "False", 0));
        assertEquals(2, local2of4.cudaDevice(4), "every rank sees the node's four GPUs");
        assertEquals(2, local2of4.cudaDevice(8));
        assertEquals(0, local2of4.cudaDevice(1), "the launcher gave this rank one GPU of its own");
        UserError e = assertThrows(UserError.class, () -> local2of4.cudaDevice(2));
        assertTrue(e.getMessage().contains("sees 2 CUDA devices"), e.getMessage());
    }

    /** Every malformed, missing or out-of-range value: a UserError (exit 2) that names the variable. */
    @Test
    void badValuesNameTheVariable() {
        Map<String, String> ok = Map.of("RANK", "1", "LOCAL_RANK", "1", "WORLD_SIZE", "4", "LOCAL_WORLD_SIZE", "2",
                "MASTER_ADDR", "h", "MASTER_PORT", "29500");
        assertBad(ok, Map.of("RANK", "one"), "RANK='one' is not an integer");
        assertBad(ok, Map.of("RANK", "4"), "RANK=4 is outside 0..3 (WORLD_SIZE=4)");
        assertBad(ok, Map.of("RANK", "-1"), "RANK=-1 is outside 0..3");
        assertBad(ok, Map.of("WORLD_SIZE", "0"), "WORLD_SIZE=0 must be at least 1");
        assertBad(ok, Map.of("WORLD_SIZE", "99999999999"), "WORLD_SIZE='99999999999' is not an integer");
        assertBad(ok, Map.of("LOCAL_RANK", "2"), "LOCAL_RANK=2 is outside 0..1 (LOCAL_WORLD_SIZE=2)");
        assertBad(ok, Map.of("LOCAL_WORLD_SIZE", "8"), "LOCAL_WORLD_SIZE=8 is larger than WORLD_SIZE=4");
        assertBad(ok, Map.of("GROUP_RANK", "x"), "GROUP_RANK='x' is not an integer");
        assertBad(ok, Map.of("MASTER_PORT", "70000"), "MASTER_PORT=70000 is not a TCP port");
        assertBad(ok, Map.of("MASTER_PORT", "29500/tcp"), "MASTER_PORT='29500/tcp' is not an integer");
        assertBad(ok, Map.of("MASTER_ADDR", "  "), "MASTER_ADDR is not set");
        assertBad(ok, Map.of("MASTER_ADDR", "a b"), "MASTER_ADDR='a b'");
        assertBad(ok, Map.of("TORCHELASTIC_USE_AGENT_STORE", "maybe"), "TORCHELASTIC_USE_AGENT_STORE='maybe'");
        assertBad(ok, Map.of("TORCHELASTIC_USE_AGENT_STORE", "True"), "TORCHELASTIC_RESTART_COUNT is not set");
        assertBad(ok, Map.of("TORCHELASTIC_RESTART_COUNT", "-2"), "TORCHELASTIC_RESTART_COUNT=-2 must not be negative");
        assertBad(without(ok, "MASTER_PORT"), Map.of(), "MASTER_PORT is not set");
        assertBad(without(ok, "WORLD_SIZE"), Map.of(), "RANK is set but WORLD_SIZE is not");
        assertBad(without(ok, "RANK"), Map.of(), "WORLD_SIZE is set but RANK is not");

        Map<String, String> slurm = Map.of("SLURM_PROCID", "1", "SLURM_LOCALID", "1", "SLURM_NODEID", "0", "SLURM_NTASKS", "4",
                "SLURM_TASKS_PER_NODE", "2(x2)", "MASTER_ADDR", "n1", "MASTER_PORT", "29500");
        assertBad(slurm, Map.of("SLURM_PROCID", "4"), "SLURM_PROCID=4 is outside 0..3 (SLURM_NTASKS=4)");
        assertBad(slurm, Map.of("SLURM_NTASKS", "x"), "SLURM_NTASKS='x' is not an integer");
        assertBad(slurm, Map.of("SLURM_LOCALID", "2"), "SLURM_LOCALID=2 is outside 0..1 (this node's entry of SLURM_TASKS_PER_NODE=2)");
        assertBad(slurm, Map.of("SLURM_TASKS_PER_NODE", "2(x2"), "SLURM_TASKS_PER_NODE='2(x2' is not SLURM's task list");
        assertBad(slurm, Map.of("SLURM_TASKS_PER_NODE", "0(x4)"), "SLURM_TASKS_PER_NODE='0(x4)': task counts");
        assertBad(slurm, Map.of("SLURM_TASKS_PER_NODE", "8"), "this node's entry of SLURM_TASKS_PER_NODE is 8 tasks, more than SLURM_NTASKS=4");
        assertBad(slurm, Map.of("SLURM_NODEID", "2"), "SLURM_NODEID=2 but SLURM_TASKS_PER_NODE='2(x2)' lists 2 nodes");
        assertBad(slurm, Map.of("SLURM_RESTART_COUNT", "-1"), "SLURM_RESTART_COUNT=-1");
        UserError noAddr = assertBad(without(slurm, "MASTER_ADDR"), Map.of(), "MASTER_ADDR is not set");
        assertTrue(noAddr.getMessage().contains("scontrol show hostnames"), "says how to set it under SLURM: " + noAddr.getMessage());
    }

    private static UserError assertBad(Map<String, String> base, Map<String, String> change, String expected) {
        Map<String, String> env = new HashMap<>(base);
        env.putAll(change);
        UserError e = assertThrows(UserError.class, () -> LaunchEnv.fromEnvironment(env), "should refuse " + change);
        assertTrue(e.getMessage().startsWith("environment: "), e.getMessage());
        assertTrue(e.getMessage().contains(expected), "expected '" + expected + "' in: " + e.getMessage());
        return e;
    }

    private static Map<String, String> without(Map<String, String> env, String key) {
        Map<String, String> m = new HashMap<>(env);
        m.remove(key);
        return m;
    }
}
