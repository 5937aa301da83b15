package dev.jtune.train;

import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import java.util.Locale;
import java.util.concurrent.TimeUnit;

import static dev.jtune.train.DataParallelTest.log;
import static dev.jtune.train.DataParallelTest.runningJob;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * Rank 0 hosts the TCPStore: when it dies or freezes, the survivors cannot ask the store who stopped. REAL processes (Gloo
 * over 127.0.0.1; DataParallelTest's helpers). They must still exit 1 within training.ddp_timeout (plus the bounded
 * diagnosis), saying that rank 0 (the store's host) is gone or does not answer and what they were waiting on; never hang,
 * never crash the JVM (hs_err file, "A fatal error"), never end on a bare stack trace.
 */
class DataParallelFaultTest {
    @TempDir
    static Path tmp;

    @BeforeAll
    static void setUp() throws Exception {
        DataParallelTest.tmp = tmp;
        DataParallelTest.setUp();
    }

    @Test
    void killingRankZeroMakesTheOthersExitNamingIt() throws Exception {
        int timeout = 10;
        List<Process> ranks = runningJob("killed0", true, 3, timeout);
        try {
            long t0 = System.nanoTime();
            ranks.get(0).destroyForcibly().waitFor();   // SIGKILL: the store's server goes with it
            for (int r = 1; r < 3; r++) {
                assertTrue(ranks.get(r).waitFor(60, TimeUnit.SECONDS), "rank " + r + " still runs 60 s after rank 0 was killed");
                double seconds = (System.nanoTime() - t0) / 1e9;
                String log = Files.readString(log("killed0", r));
                assertEquals(1, ranks.get(r).exitValue(), log);
                assertTrue(seconds < timeout + 10, "rank " + r + " exited after " + seconds + " s (ddp_timeout " + timeout + " s)");
                assertTrue(log.contains("jtune: error: rank " + r + " of 3:"), log);
                assertTrue(log.contains("rank 0"), "names rank 0:\n" + log);
                assertTrue(log.contains("collective #") || log.contains("waiting for"), "says what it was waiting on:\n" + log);
                assertFalse(log.contains("A fatal error has been detected") || log.contains("SIGSEGV"), "no JVM crash:\n" + log);
                assertFalse(Files.exists(Path.of("hs_err_pid" + ranks.get(r).pid() + ".log")), "no hs_err file");
                assertFalse(log.contains("internal error") || log.contains("\tat "), "no stack trace:\n" + log);
                int rank = r;
                log.lines().filter(l -> l.startsWith("jtune: error")).forEach(l -> System.out.printf(Locale.ROOT,
                        "rank 0 killed, rank %d after %.1f s: %s%n", rank, seconds, l));
            }
        } finally {
            ranks.forEach(Process::destroyForcibly);
        }
    }

    /**
     * SIGSTOP of rank 0: its store accepts requests but never answers, and c10d's store client waits for an answer to
     * {@code add} without a timeout. Rank 1's collective times out after ddp_timeout; the diagnosis must not wait on the
     * frozen store for good (it did: the survivor hung until killed).
     */
    @Test
    void aFrozenRankZeroMakesTheOthersExitAfterTheTimeout() throws Exception {
        int timeout = 8;
        List<Process> ranks = runningJob("frozen0", true, 2, timeout);
        try {
            long t0 = System.nanoTime();
            assertEquals(0, new ProcessBuilder("kill", "-STOP", String.valueOf(ranks.get(0).pid())).start().waitFor());
            assertTrue(ranks.get(1).waitFor(90, TimeUnit.SECONDS), "rank 1 still runs 90 s after rank 0 froze");
            double seconds = (System.nanoTime() - t0) / 1e9;
            String log = Files.readString(log("frozen0", 1));
            assertEquals(1, ranks.get(1).exitValue(), log);
            assertTrue(seconds >= timeout && seconds < timeout + 20, "exited after " + seconds + " s (ddp_timeout " + timeout + " s)");
            assertTrue(log.contains("jtune: error: rank 1 of 2:") && log.contains("collective #"), log);
            assertTrue(log.contains("rank 0 (it hosts the store) does not answer"), log);
            assertFalse(log.contains("A fatal error has been detected"), "no JVM crash:\n" + log);
            assertFalse(log.contains("internal error") || log.contains("\tat "), "no stack trace:\n" + log);
            log.lines().filter(l -> l.startsWith("jtune: error")).forEach(l -> System.out.printf(Locale.ROOT,
                    "rank 0 frozen, rank 1 after %.1f s: %s%n", seconds, l));
        } finally {
            ranks.forEach(Process::destroyForcibly);   // SIGKILL ends a stopped process too
        }
    }
}
