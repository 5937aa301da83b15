package dev.jtune.dist;

import org.bytedeco.javacpp.chrono.Milliseconds;
import org.bytedeco.pytorch.Store;

import java.util.ArrayList;
import java.util.List;
import java.util.Locale;

/**
 * Who stopped, when a collective fails. Every rank bumps a counter in the store twice a second from a daemon thread,
 * with the collective it is in (or was last in); after a failure {@link #diagnose} reads the counters twice, a second
 * apart: a rank whose counter did not move is dead or frozen, and a rank that is alive but sits in an earlier
 * collective is the one that hung. Counters, not clocks: the nodes' clocks need not agree.
 *
 * <p>Runs on its own store client (a clone), so it never shares a connection with the training thread.
 */
final class Heartbeat {
    private static final long PERIOD_MS = 500;
    private final Store store;
    private final int rank;
    private final int worldSize;
    private final Thread thread;
    private volatile String at = "start-up";
    private volatile boolean stopped;

    private Heartbeat(Store store, int rank, int worldSize) {
        this.store = store;
        this.rank = rank;
        this.worldSize = worldSize;
        this.thread = new Thread(this::beat, "jtune-heartbeat");
        thread.setDaemon(true);
    }

    static Heartbeat start(Store store, int rank, int worldSize) {
        Store own = store.clone();
        own.setTimeout(new Milliseconds(2_000));
        Heartbeat h = new Heartbeat(own, rank, worldSize);
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
        try {
            thread.join(3_000);
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
        }
    }

    private void beat() {
        while (!stopped) {
            try {
                synchronized (this) {
                    store.add("jtune/beat/" + rank, 1);
                    store.set("jtune/at/" + rank, at);
                }
                Thread.sleep(PERIOD_MS);
            } catch (InterruptedException e) {
                return;
            } catch (RuntimeException e) {
                return;   // the store is gone (rank 0 exited): diagnose() says so
            }
        }
    }

    /** Which ranks stopped beating or lag behind; "" when the store cannot tell. Takes about a second. */
    String diagnose() {
        stopped = true;
        thread.interrupt();
        try {
            synchronized (this) {
                long[] before = counters();
                Thread.sleep(3 * PERIOD_MS);
                long[] after = counters();
                List<String> dead = new ArrayList<>(), stuck = new ArrayList<>();
                for (int r = 0; r < worldSize; r++) {
                    if (r == rank) continue;
                    if (after[r] == before[r]) {
                        dead.add("rank " + r + (after[r] == 0 ? " (never beat)" : ""));
                    } else {
                        String theirs = store.get_to_str("jtune/at/" + r);
                        if (!theirs.equals(at)) stuck.add("rank " + r + " is alive but at " + theirs);
                    }
                }
                List<String> parts = new ArrayList<>();
                if (!dead.isEmpty()) parts.add(String.join(", ", dead) + (dead.size() == 1 ? " stopped" : " stopped")
                        + " (died or froze: no heartbeat)");
                parts.addAll(stuck);
                return String.join("; ", parts);
            }
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
            return "";
        } catch (RuntimeException e) {
            return rank == 0 ? "" : String.format(Locale.ROOT, "rank 0 (it hosts the store) is gone: %s", DistGroup.firstLine(e));
        }
    }

    private long[] counters() {
        long[] c = new long[worldSize];
        for (int r = 0; r < worldSize; r++) {
            if (r != rank) c[r] = store.add("jtune/beat/" + r, 0);
        }
        return c;
    }
}
