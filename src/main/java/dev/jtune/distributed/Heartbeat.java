package dev.jtune.distributed;

import org.bytedeco.javacpp.chrono.Milliseconds;
import org.bytedeco.pytorch.Store;

import java.util.ArrayList;
import java.util.List;
import java.util.Locale;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.TimeoutException;

/**
 * Who stopped, when a collective fails. Every rank bumps a counter in the store twice a second from a daemon thread,
 * with the collective it is in (or was last in); after a failure {@link #diagnose} reads the counters twice, a second
 * apart: a rank whose counter did not move is dead or frozen, and a rank that is alive but sits in an earlier
 * collective is the one that hung. Counters, not clocks: the nodes' clocks need not agree.
 *
 * <p>The beats and the diagnosis each run on a store client of their own (clones), never on the training thread's. A
 * store whose host is frozen (SIGSTOP, a hung machine) still accepts a request but never answers it, and c10d's
 * {@code add} waits for the answer without a timeout: the thread that asked is stuck for good. So the diagnosis runs on
 * a daemon thread of its own and the failing rank waits for it a bounded time ({@link #DIAGNOSIS_BOUND_MS}); a beat
 * thread stuck that way is left behind (a daemon: it does not keep the process from exiting).
 */
final class Heartbeat {
    private static final long PERIOD_MS = 500;
    /** How long a failing rank waits for the diagnosis: two reads of the counters 1.5 s apart, with the store's 2 s timeout. */
    static final long DIAGNOSIS_BOUND_MS = 3 * PERIOD_MS + 2 * 2_000 + 500;
    private final Store store;
    private final Store diagnosisStore;
    private final int rank;
    private final int worldSize;
    private final String storeHost;
    private final Thread thread;
    private volatile String at = "start-up";
    private volatile boolean stopped;
    private volatile boolean diagnosed;   // after a failure: the beat thread may be stuck in the store for good

    private Heartbeat(Store store, Store diagnosisStore, int rank, int worldSize, String storeHost) {
        this.store = store;
        this.diagnosisStore = diagnosisStore;
        this.rank = rank;
        this.worldSize = worldSize;
        this.storeHost = storeHost;
        this.thread = new Thread(this::beat, "jtune-heartbeat");
        thread.setDaemon(true);
    }

    /**
     * @param storeHost who hosts the store, for the messages: "rank 0 (it hosts the store)" or "torchrun's agent store"
     */
    static Heartbeat start(Store store, int rank, int worldSize, String storeHost) {
        Store own = store.clone(), diagnosis = store.clone();
        own.setTimeout(new Milliseconds(2_000));
        diagnosis.setTimeout(new Milliseconds(2_000));
        Heartbeat h = new Heartbeat(own, diagnosis, rank, worldSize, storeHost);
        h.thread.start();
        return h;
    }

    /** The collective this rank is entering. */
    void at(String collective) {
        at = collective;
    }

    /** Ends the beats and waits for the last one, so that none is in flight when rank 0's store goes away. */
    void stop() {
        stopped = true;
        thread.interrupt();
        if (diagnosed) return;   // the run failed: its exit need not wait for a beat that may never return
        try {
            thread.join(3_000);
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
        }
    }

    private void beat() {
        while (!stopped) {
            try {
                store.add("jtune/beat/" + rank, 1);
                store.set("jtune/at/" + rank, at);
                Thread.sleep(PERIOD_MS);
            } catch (InterruptedException e) {
                return;
            } catch (RuntimeException e) {
                return;   // the store is gone (its host exited): diagnose() says so
            }
        }
    }

    /**
     * Which ranks stopped beating or lag behind, or that the store's host is gone or does not answer; "" when the store
     * cannot tell. Takes about 1.5 s, at most {@link #DIAGNOSIS_BOUND_MS}; never blocks for longer.
     */
    String diagnose() {
        stopped = true;
        diagnosed = true;
        thread.interrupt();
        CompletableFuture<String> result = new CompletableFuture<>();
        Thread t = new Thread(() -> {
            try {
                result.complete(readCounters());
            } catch (Throwable e) {
                result.completeExceptionally(e);
            }
        }, "jtune-diagnosis");
        t.setDaemon(true);
        t.start();
        try {
            return result.get(DIAGNOSIS_BOUND_MS, TimeUnit.MILLISECONDS);
        } catch (TimeoutException e) {
            return rank == 0 && storeHost.startsWith("rank 0") ? ""
                    : storeHost + " does not answer (frozen, or its machine is unreachable)";
        } catch (ExecutionException e) {
            return rank == 0 && storeHost.startsWith("rank 0") ? ""
                    : String.format(Locale.ROOT, "%s is gone: %s", storeHost, DistGroup.firstLine(e.getCause()));
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
            return "";
        }
    }

    /** Reads the counters twice, 1.5 s apart, on the diagnosis thread. */
    private String readCounters() throws InterruptedException {
        long[] before = counters();
        Thread.sleep(3 * PERIOD_MS);
        long[] after = counters();
        List<String> dead = new ArrayList<>(), stuck = new ArrayList<>();
        for (int r = 0; r < worldSize; r++) {
            if (r == rank) continue;
            if (after[r] == before[r]) {
                dead.add("rank " + r + (after[r] == 0 ? " (never beat)" : ""));
            } else {
                String theirs = diagnosisStore.get_to_str("jtune/at/" + r);
                if (!theirs.equals(at)) stuck.add("rank " + r + " is alive but at " + theirs);
            }
        }
        List<String> parts = new ArrayList<>();
        if (!dead.isEmpty()) parts.add(String.join(", ", dead) + " stopped (died or froze: no heartbeat)");
        parts.addAll(stuck);
        return String.join("; ", parts);
    }

    private long[] counters() {
        long[] c = new long[worldSize];
        for (int r = 0; r < worldSize; r++) {
            if (r != rank) c[r] = diagnosisStore.add("jtune/beat/" + r, 0);
        }
        return c;
    }
}
