package dev.jtune.distributed;

import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.io.IOException;
import java.io.Reader;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.Properties;
import java.util.concurrent.TimeUnit;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNotEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * The built-in launcher with real processes: a launcher JVM ({@link LauncherProbeMain}) starts N probe JVMs
 * ({@link LaunchProbe}), which report what they see. `jtune train --nproc-per-node 2` itself: TrainLauncherTest.
 */
class LauncherTest {
    @TempDir
    Path tmp;

    /** A launcher process, its stdout/stderr in files. */
    record Launch(Process process, Path outFile, Path errFile, Path logs, Path reports) {
        int await() throws Exception {
            assertTrue(process.waitFor(90, TimeUnit.SECONDS), "the launcher should finish; stderr: " + err());
            return process.exitValue();
        }

        String err() throws IOException {
            return Files.readString(errFile);
        }

        String out() throws IOException {
            return Files.readString(outFile);
        }

        Properties report(int rank) throws IOException {
            return report(rank, 0);
        }

        Properties report(int rank, int attempt) throws IOException {
            Properties p = new Properties();
            try (Reader r = Files.newBufferedReader(reports.resolve("rank" + rank + "-attempt" + attempt + ".properties"))) {
                p.load(r);
            }
            return p;
        }

        /** Waits until every rank has reported (their signal handlers are then in place). */
        void awaitReports(int n) throws InterruptedException {
            long deadline = System.currentTimeMillis() + 60_000;
            for (int r = 0; r < n; r++) {
                while (!Files.exists(reports.resolve("rank" + r + "-attempt0.properties"))) {
                    assertTrue(System.currentTimeMillis() < deadline && process.isAlive(), "rank " + r + " never reported");
                    Thread.sleep(50);
                }
            }
        }
    }

    Launch launch(int n, long graceMs, String... probeArgs) throws IOException {
        return launch(n, graceMs, Map.of(), probeArgs);
    }

    Launch launch(int n, long graceMs, Map<String, String> env, String... probeArgs) throws IOException {
        Path logs = tmp.resolve("logs"), reports = Files.createDirectories(tmp.resolve("reports"));
        List<String> cmd = new ArrayList<>(List.of(Path.of(System.getProperty("java.home"), "bin", "java").toString(), "-cp",
                System.getProperty("java.class.path"), LauncherProbeMain.class.getName(), "" + n, "" + graceMs, logs.toString(),
                reports.toString()));
        cmd.addAll(List.of(probeArgs));
        Path out = tmp.resolve("launcher.out"), err = tmp.resolve("launcher.err");
        ProcessBuilder pb = new ProcessBuilder(cmd).redirectOutput(out.toFile()).redirectError(err.toFile());
        pb.environment().keySet().removeIf(k -> k.equals("RANK") || k.equals("WORLD_SIZE") || k.startsWith("SLURM_") || k.startsWith("TORCHELASTIC_"));
        pb.environment().putAll(env);
        return new Launch(pb.start(), out, err, logs, reports);
    }

    @Test
    void everyRankSeesItsVariablesAndRankZeroOwnsTheConsole() throws Exception {
        Launch l = launch(3, 5000);
        assertEquals(0, l.await(), l.err());
        long launcherPid = l.process().pid();
        String port = l.report(0).getProperty("masterPort");
        assertTrue(Integer.parseInt(port) > 0, port);
        for (int r = 0; r < 3; r++) {
            Properties p = l.report(r);
            assertEquals("" + r, p.getProperty("rank"));
            assertEquals("" + r, p.getProperty("localRank"));
            assertEquals("3", p.getProperty("worldSize"));
            assertEquals("3", p.getProperty("localWorldSize"));
            assertEquals("127.0.0.1", p.getProperty("masterAddr"));
            assertEquals(port, p.getProperty("masterPort"), "every rank gets the same store");
            assertEquals("jtune", p.getProperty("source"));
            assertEquals("false", p.getProperty("agentStore"));
            assertEquals("" + (r == 0), p.getProperty("hostsStore"));
            assertEquals("" + launcherPid, p.getProperty("ppid"), "the ranks are the launcher's own children (setsid execs, not forks)");
            String launcherSession = LaunchProbe.session("" + launcherPid);
            if (!launcherSession.isEmpty() && Files.isExecutable(Path.of("/usr/bin/setsid"))) {
                assertNotEquals(launcherSession, p.getProperty("session"), "ranks run in their own session: a Ctrl-C reaches them once");
            }
        }
        assertEquals("1,2", l.report(0).getProperty("peers"), "rank 0 met ranks 1 and 2 at MASTER_ADDR:MASTER_PORT");
        // rank 0 prints to the console; ranks 1 and 2 to their own logs, named on the console
        assertTrue(l.out().contains("probe rank 0: rank 0 of 3 (local 0 of 3, via jtune), store 127.0.0.1:" + port), l.out());
        assertFalse(l.out().contains("probe rank 1") || l.out().contains("probe rank 2"), l.out());
        for (int r = 1; r < 3; r++) {
            String log = Files.readString(l.logs().resolve("rank" + r + ".log"));
            assertTrue(log.contains("probe rank " + r + ": rank " + r + " of 3 (local " + r + " of 3, via jtune)"), log);
            assertTrue(log.startsWith("=== ") && log.contains("jtune launcher: rank " + r + " of 3"), log);
        }
        assertTrue(l.err().contains("jtune launcher: 3 processes on this node, store 127.0.0.1:" + port + "; rank 0 prints here, ranks 1..2 write "
                + l.logs().resolve("rank<K>.log")), l.err());
    }

    @Test
    void aFailingRankStopsTheOthersAndLendsTheLauncherItsExitCode() throws Exception {
        Launch l = launch(3, 20_000, "wait", "exit=1:7");
        assertEquals(7, l.await(), l.err());
        assertEquals("SIGTERM\n", Files.readString(l.reports().resolve("rank0.signal")), "rank 0 was asked to stop");
        assertEquals("SIGTERM\n", Files.readString(l.reports().resolve("rank2.signal")));
        String err = l.err();
        assertTrue(err.contains("jtune launcher: rank 1 exited with code 7; stopping the other ranks (SIGTERM, then SIGKILL after 20 s)"), err);
        assertTrue(err.contains("  | probe rank 1: exiting with 7"), "the failed rank's log tail is on the console: " + err);
        assertTrue(err.contains("jtune launcher: exit code 7 (rank 1)"), err);
    }

    @Test
    void ranksThatIgnoreSigtermAreKilledAfterTheGracePeriod() throws Exception {
        long start = System.nanoTime();
        Launch l = launch(2, 1500, "wait", "ignore-term", "exit=1:3");
        assertEquals(3, l.await(), l.err());
        assertEquals("SIGTERM\n", Files.readString(l.reports().resolve("rank0.signal")), "rank 0 got SIGTERM first");
        assertTrue(l.err().contains("the other ranks did not stop within 1 s; killing them"), l.err());
        assertTrue((System.nanoTime() - start) / 1e9 < 60, "killed after the grace period, not after the probe's own 120 s");
    }

    @Test
    void aRankKilledBySignalGivesTheShellsCode() throws Exception {
        Launch l = launch(2, 5000, "wait", "kill9=1");
        assertEquals(128 + 9, l.await(), l.err());
        assertTrue(l.err().contains("rank 1 exited with code 137"), l.err());
    }

    @Test
    void sigtermToTheLauncherReachesEveryRankOnce() throws Exception {
        Launch l = launch(2, 5000, "wait");
        l.awaitReports(2);
        l.process().destroy();   // SIGTERM to the launcher alone, as Kubernetes or `kill PID` sends it
        assertEquals(0, l.await(), "every rank exited 0 after its SIGTERM: " + l.err());
        assertEquals("SIGTERM\n", Files.readString(l.reports().resolve("rank0.signal")));
        assertEquals("SIGTERM\n", Files.readString(l.reports().resolve("rank1.signal")));
        assertTrue(l.err().contains("jtune launcher: SIGTERM: passing it on to the ranks"), l.err());
        assertTrue(Files.readString(l.logs().resolve("rank1.log")).contains("probe rank 1: got SIGTERM"));
    }

    @Test
    void sigintToTheLauncherPassesOnAsSigint() throws Exception {
        // a process tree started in the background by a non-interactive shell (`cmd &`, nohup) ignores SIGINT, and an
        // ignored signal stays ignored in every child: the launcher could never see it
        String ignored = Files.readAllLines(Path.of("/proc/self/status")).stream().filter(x -> x.startsWith("SigIgn:"))
                .map(x -> x.substring(7).trim()).findFirst().orElse("0");
        org.junit.jupiter.api.Assumptions.assumeTrue((Long.parseUnsignedLong(ignored, 16) & (1L << 1)) == 0,
                "SIGINT is ignored in this process tree (started in the background by a shell); a launcher cannot receive it");
        Launch l = launch(2, 5000, "wait");
        l.awaitReports(2);
        assertEquals(0, new ProcessBuilder("kill", "-INT", "" + l.process().pid()).start().waitFor());
        assertEquals(0, l.await(), l.err());
        assertEquals("SIGINT\n", Files.readString(l.reports().resolve("rank0.signal")));
        assertEquals("SIGINT\n", Files.readString(l.reports().resolve("rank1.signal")));
    }

    /** A rank whose launcher vanished (SIGKILL: nothing could forward) exits instead of running on alone in its session. */
    @Test
    void ranksDoNotOutliveTheirLauncher() throws Exception {
        Launch l = launch(2, 5000, "wait");
        l.awaitReports(2);
        List<ProcessHandle> ranks = new ArrayList<>();
        for (int r = 0; r < 2; r++) ranks.add(ProcessHandle.of(Long.parseLong(l.report(r).getProperty("pid"))).orElseThrow());
        l.process().destroyForcibly();
        for (ProcessHandle h : ranks) {
            try {
                h.onExit().get(30, TimeUnit.SECONDS);
            } finally {
                h.destroyForcibly();   // never leave a probe behind, whatever happened
            }
        }
        assertTrue(Files.readString(l.logs().resolve("rank1.log")).contains("jtune: the launcher that started this rank is gone; exiting"));
    }

    @Test
    void launchingInsideAnotherLaunchersRankIsRefused() throws Exception {
        Launch l = launch(2, 5000, Map.of("RANK", "1", "WORLD_SIZE", "2", "MASTER_ADDR", "h", "MASTER_PORT", "29500"));
        assertEquals(2, l.await());
        assertTrue(l.err().contains("--nproc-per-node: this process already runs as rank 1 of 2 (started by env)"), l.err());
        Launch bad = launch(2, 5000, Map.of("RANK", "x", "WORLD_SIZE", "2"));
        assertEquals(2, bad.await());
        assertTrue(bad.err().contains("environment: RANK='x' is not an integer"), bad.err());
    }

    @Test
    void optionsAreRemovedFromTheRanksCommandLine() {
        assertEquals(List.of("train", "x.yaml", "--set", "a=b"),
                Launcher.withoutOptions(List.of("train", "--nproc-per-node", "2", "x.yaml", "--master-port=1234", "--set", "a=b"),
                        "--nproc-per-node", "--master-port"));
        assertEquals(List.of("bench", "--set", "x=--nproc-per-node"),
                Launcher.withoutOptions(List.of("bench", "--nproc-per-node=4", "--set", "x=--nproc-per-node"), "--nproc-per-node", "--master-port"));
    }
}
