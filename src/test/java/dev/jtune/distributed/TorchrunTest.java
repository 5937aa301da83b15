package dev.jtune.distributed;

import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.io.IOException;
import java.io.Reader;
import java.net.ServerSocket;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.attribute.PosixFilePermissions;
import java.util.ArrayList;
import java.util.List;
import java.util.Properties;
import java.util.concurrent.TimeUnit;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assumptions.assumeTrue;

/**
 * The real torchrun (Debian's python3-torch, torch 1.13) starting jtune processes, as the README tells users to:
 * {@code torchrun --no-python --nproc-per-node=N ./jtune …}. Each rank reports the {@link LaunchEnv} it read
 * ({@link LaunchProbe}). Under this machine's Python 3.11 torchrun needs ../shared/tools/torchrun.py (a one-line
 * fix, see there); torch 1.13 spells the flags with underscores. Skipped where either is missing.
 */
class TorchrunTest {
    static final Path TORCHRUN = Path.of("../shared/tools/torchrun.py");

    @TempDir
    Path tmp;

    @BeforeAll
    static void torchrunIsInstalled() throws Exception {
        assumeTrue(Files.isRegularFile(TORCHRUN) && Files.isExecutable(Path.of("/usr/bin/python3")),
                "no torchrun here (needs ../shared/tools/torchrun.py and /usr/bin/python3)");
        Process p = new ProcessBuilder("/usr/bin/python3", "-c", "import torch.distributed.run").redirectErrorStream(true).start();
        assumeTrue(p.waitFor(60, TimeUnit.SECONDS) && p.exitValue() == 0, "python3-torch is not installed (apt-get install python3-torch)");
    }

    /** An executable script that runs a main class of this build with the test class path, as ./jtune runs Main. */
    Path script(String name, Class<?> main, String... fixedArgs) throws IOException {
        String java = Path.of(System.getProperty("java.home"), "bin", "java").toString();
        Path s = tmp.resolve(name);
        Files.writeString(s, "#!/bin/sh\nexec '" + java + "' -cp '" + System.getProperty("java.class.path") + "' " + main.getName() + " "
                + String.join(" ", fixedArgs.length == 0 ? List.of() : List.of(fixedArgs)) + " \"$@\"\n");
        Files.setPosixFilePermissions(s, PosixFilePermissions.fromString("rwxr-xr-x"));
        return s;
    }

    Process torchrun(Path log, String... args) throws IOException {
        List<String> cmd = new ArrayList<>(List.of("/usr/bin/python3", TORCHRUN.toString()));
        cmd.addAll(List.of(args));
        ProcessBuilder pb = new ProcessBuilder(cmd).redirectErrorStream(true).redirectOutput(log.toFile());
        pb.environment().keySet().removeIf(k -> k.equals("RANK") || k.equals("WORLD_SIZE") || k.startsWith("SLURM_") || k.startsWith("TORCHELASTIC_"));
        return pb.start();
    }

    static int finish(Process p, Path log) throws Exception {
        assertTrue(p.waitFor(3, TimeUnit.MINUTES), "torchrun finishes: " + Files.readString(log));
        return p.exitValue();
    }

    Properties report(Path dir, int rank, int attempt) throws IOException {
        Properties p = new Properties();
        try (Reader r = Files.newBufferedReader(dir.resolve("rank" + rank + "-attempt" + attempt + ".properties"))) {
            p.load(r);
        }
        return p;
    }

    /** --standalone: the c10d rendezvous, so TORCHELASTIC_USE_AGENT_STORE=False and rank 0 hosts the store. */
    @Test
    void standaloneTwoRanks() throws Exception {
        Path dir = Files.createDirectories(tmp.resolve("standalone")), log = tmp.resolve("standalone.log");
        Path probe = script("probe.sh", LaunchProbe.class, dir.toString());
        assertEquals(0, finish(torchrun(log, "--standalone", "--nproc_per_node", "2", "--no_python", probe.toString()), log), Files.readString(log));
        String port = report(dir, 0, 0).getProperty("masterPort");
        for (int r = 0; r < 2; r++) {
            Properties p = report(dir, r, 0);
            assertEquals("torchrun", p.getProperty("source"));
            assertEquals("" + r, p.getProperty("rank"));
            assertEquals("" + r, p.getProperty("localRank"));
            assertEquals("2", p.getProperty("worldSize"));
            assertEquals("2", p.getProperty("localWorldSize"));
            assertEquals("false", p.getProperty("agentStore"));
            assertEquals("" + (r == 0), p.getProperty("hostsStore"));
            assertEquals(port, p.getProperty("masterPort"));
        }
        assertEquals("1", report(dir, 0, 0).getProperty("peers"), "rank 0 hosted MASTER_ADDR:MASTER_PORT and rank 1 reached it");
    }

    /**
     * The static rendezvous (--master_addr/--master_port): the agent hosts the store, every rank is its client under
     * /worker/attempt_N, and a failed attempt is restarted with TORCHELASTIC_RESTART_COUNT=1.
     */
    @Test
    void staticRendezvousUsesTheAgentsStoreAndCountsRestarts() throws Exception {
        Path dir = Files.createDirectories(tmp.resolve("static")), log = tmp.resolve("static.log");
        Path probe = script("probe.sh", LaunchProbe.class, dir.toString());
        int port = freePort();
        Process p = torchrun(log, "--nnodes", "1", "--nproc_per_node", "2", "--master_addr", "127.0.0.1", "--master_port", "" + port,
                "--max_restarts", "1", "--no_python", probe.toString(), "fail-first-attempt=1:3");
        assertEquals(0, finish(p, log), Files.readString(log));
        assertTrue(Files.readString(log).contains("failed (exitcode: 3) local_rank: 1"), "attempt 0 failed as planned: " + Files.readString(log));
        for (int attempt = 0; attempt < 2; attempt++) {
            for (int r = 0; r < 2; r++) {
                Properties rp = report(dir, r, attempt);
                assertEquals("true", rp.getProperty("agentStore"));
                assertEquals("false", rp.getProperty("hostsStore"), "rank " + r + " is a client of the agent's store");
                assertEquals("" + attempt, rp.getProperty("restartCount"));
                assertEquals("/worker/attempt_" + attempt, rp.getProperty("storePrefix"));
                assertEquals("127.0.0.1", rp.getProperty("masterAddr"));
                assertEquals("" + port, rp.getProperty("masterPort"));
                assertEquals("agent", rp.getProperty("peers"), "the agent's store answers at MASTER_ADDR:MASTER_PORT");
            }
        }
    }

    /** Two "nodes" (two torchrun agents on this machine) of two ranks each, meeting at --rdzv_endpoint: the README's multi-node command. */
    @Test
    void twoNodesMeetAtTheRendezvousEndpoint() throws Exception {
        Path dir = Files.createDirectories(tmp.resolve("nodes"));
        Path probe = script("probe.sh", LaunchProbe.class, dir.toString());
        String endpoint = "127.0.0.1:" + freePort();
        Process[] agents = new Process[2];
        Path[] logs = new Path[2];
        for (int node = 0; node < 2; node++) {
            logs[node] = tmp.resolve("node" + node + ".log");
            agents[node] = torchrun(logs[node], "--nnodes", "2", "--nproc_per_node", "2", "--rdzv_backend", "c10d", "--rdzv_endpoint", endpoint,
                    "--rdzv_id", "jtune-test", "--no_python", probe.toString());
        }
        for (int node = 0; node < 2; node++) assertEquals(0, finish(agents[node], logs[node]), Files.readString(logs[node]));
        String addr = report(dir, 0, 0).getProperty("masterAddr"), port = report(dir, 0, 0).getProperty("masterPort");
        for (int r = 0; r < 4; r++) {
            Properties p = report(dir, r, 0);
            assertEquals("4", p.getProperty("worldSize"));
            assertEquals("2", p.getProperty("localWorldSize"));
            assertEquals("" + (r % 2), p.getProperty("localRank"), "ranks 0,1 on one node and 2,3 on the other");
            assertEquals(addr, p.getProperty("masterAddr"));
            assertEquals(port, p.getProperty("masterPort"));
        }
        assertEquals("1,2,3", report(dir, 0, 0).getProperty("peers"));
    }

    /** `jtune train` itself under torchrun (one rank: what two ranks train together is the data-parallel trainer's tests'). */
    @Test
    void trainUnderTorchrun() throws Exception {
        Path base = tmp.resolve("base");
        var init = dev.jtune.cli.CliTest.run("init-model", "--arch", "llama", "--preset", "tiny", "--tokenizer", "configs/tokenizers/gpt2",
                "--out", base.toString(), "--seed", "1");
        assertEquals(0, init.code(), init.err());
        Path jtune = script("jtune", dev.jtune.cli.Main.class);
        Path out = tmp.resolve("run"), log = tmp.resolve("train.log");
        Process p = torchrun(log, "--standalone", "--nproc_per_node", "2", "--no_python", jtune.toString(), "train", "configs/demo.yaml",
                "--set", "model.path=" + base, "--set", "training.output_dir=" + out, "--set", "training.max_steps=1", "--set", "training.eval_steps=0",
                "--set", "training.predict_with_generate=false");
        assertEquals(0, finish(p, log), Files.readString(log));
        assertTrue(Files.readString(log).contains("data: 302 rows read, 290 kept"), Files.readString(log));
        assertTrue(Files.readString(log).contains("rank 1: trained weights identical to rank 0's"), Files.readString(log));
        assertTrue(Files.isRegularFile(out.resolve("final/model.safetensors")));
    }

    static int freePort() throws IOException {
        try (ServerSocket s = new ServerSocket(0)) {
            return s.getLocalPort();
        }
    }
}
