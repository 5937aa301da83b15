package dev.jtune.sweep;

import com.fasterxml.jackson.databind.JsonNode;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.TimeUnit;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * A sweep killed with SIGKILL (a real child JVM, as ResumeTest kills a run) during its second trial and continued with
 * {@code --resume DIR} writes the same leaderboard as the uninterrupted sweep with the same seed: the first trial is
 * kept, the second resumes from its checkpoint, ASHA decides as it would have.
 */
class SweepResumeTest {
    @TempDir
    static Path tmp;
    static SweepFixture fx;

    @BeforeAll
    static void setUp() throws IOException {
        fx = new SweepFixture(tmp);
    }

    /** `jtune sweep` in a child JVM with one intra-op thread, so that every run sums in the same order. */
    static Process child(Path log, String... args) throws IOException {
        List<String> cmd = new ArrayList<>(List.of(Path.of(System.getProperty("java.home"), "bin", "java").toString(),
                "-cp", System.getProperty("java.class.path"), "dev.jtune.cli.Main", "sweep"));
        cmd.addAll(List.of(args));
        ProcessBuilder pb = new ProcessBuilder(cmd).redirectErrorStream(true).redirectOutput(log.toFile());
        pb.environment().put("JTUNE_NUM_THREADS", "1");
        return pb.start();
    }

    static String[] sweepArgs(Path yaml, Path dir) {
        return new String[] {yaml.toString(), "--param", "training.learning_rate=loguniform(1e-4,3e-2)", "--trials", "2",
                "--prune", "asha", "--eta", "2", "--seed", "7", "--out", dir.toString()};
    }

    static long lastLoggedStep(Path trialDir) throws IOException {
        Path m = trialDir.resolve("metrics.jsonl");
        if (!Files.exists(m)) return 0;
        long last = 0;
        for (String line : Files.readAllLines(m)) {
            try {
                JsonNode n = SweepFixture.JSON.readTree(line);
                if (n.has("loss")) last = Math.max(last, n.get("step").asLong());
            } catch (IOException cut) {
                // the child may be writing this line right now
            }
        }
        return last;
    }

    @Test
    void killedSweepResumesToTheSameLeaderboard() throws Exception {
        Path yaml = fx.experiment("resume", 6);
        Path whole = tmp.resolve("whole"), cut = tmp.resolve("cut");
        Process ref = child(tmp.resolve("whole.log"), sweepArgs(yaml, whole));   // both at once: one thread each
        Process victim = child(tmp.resolve("cut.log"), sweepArgs(yaml, cut));
        long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(180);
        while (lastLoggedStep(cut.resolve("trial-002")) < 3) {   // after trial 2's checkpoint at step 2
            assertTrue(victim.isAlive(), "the sweep ended before trial 2's step 3: " + Files.readString(tmp.resolve("cut.log")));
            assertTrue(System.nanoTime() < deadline, "no step 3 of trial 2 within 180 s");
            Thread.sleep(20);
        }
        victim.destroyForcibly().waitFor();   // SIGKILL: no chance to clean up
        assertTrue(Files.readString(cut.resolve("sweep.json")).contains("\"running\""), "killed during a trial");

        assertEquals(0, ref.waitFor(), Files.readString(tmp.resolve("whole.log")));
        Process resumed = child(tmp.resolve("resume.log"), "--resume", cut.toString());
        assertEquals(0, resumed.waitFor(), Files.readString(tmp.resolve("resume.log")));
        String log = Files.readString(tmp.resolve("resume.log"));
        assertTrue(log.contains("1 of 2 trials finished") && log.contains("resume: continuing from"), log);
        assertEquals(Files.readString(whole.resolve("leaderboard.csv")).replace(whole.toString(), "DIR"),
                Files.readString(cut.resolve("leaderboard.csv")).replace(cut.toString(), "DIR"));
        assertEquals(SweepFixture.evalLosses(whole.resolve("trial-002")), SweepFixture.evalLosses(cut.resolve("trial-002")));
        assertTrue(Files.isRegularFile(cut.resolve("best.yaml")) && Files.isRegularFile(cut.resolve("sweep.html")));
    }
}
