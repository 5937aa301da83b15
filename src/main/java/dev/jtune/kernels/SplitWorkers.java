package dev.jtune.kernels;

import org.bytedeco.javacpp.PointerScope;
import org.bytedeco.pytorch.NoGradGuard;

import java.util.concurrent.atomic.AtomicInteger;
import java.util.concurrent.locks.LockSupport;
import java.util.function.IntConsumer;

/**
 * A few daemon threads that run parts 1..P-1 of one job while the caller runs part 0: {@link CpuLinear}'s blocks of
 * weight rows. A decode step hands out ~170 jobs of 0.1-2 ms each, so the hand-off is a volatile generation
 * counter with a short spin and then park/unpark (no executor queue, no allocation besides the job), and waiting
 * threads sleep rather than spin for long: the machine may be shared, and a spinning pool is what made OpenBLAS's
 * own threads slow here.
 *
 * <p>Parts run without autograd (each worker holds a {@link NoGradGuard}) and inside a {@link PointerScope}, so the
 * tensor views a part makes are freed when it ends; a part must write only into tensors the caller owns. One job
 * at a time: concurrent callers queue on the pool's lock.
 */
final class SplitWorkers {
    private static final int SPIN = 2_000;
    private static volatile SplitWorkers shared;

    private final Thread[] workers;
    private volatile long generation;
    private volatile IntConsumer job;
    private volatile int jobParts;
    private final AtomicInteger pending = new AtomicInteger();
    private volatile Thread caller;
    private volatile Throwable failure;

    private SplitWorkers(int parts) {
        workers = new Thread[parts - 1];
        for (int i = 0; i < workers.length; i++) {
            int part = i + 1;
            workers[i] = new Thread(() -> loop(part), "jtune-linear-" + part);
            workers[i].setDaemon(true);
            workers[i].start();
        }
    }

    /** The process's pool: one part per core ({@code JTUNE_NUM_THREADS} overrides), made on first use. */
    static SplitWorkers shared() {
        SplitWorkers s = shared;
        if (s == null) {
            synchronized (SplitWorkers.class) {
                if (shared == null) shared = new SplitWorkers(defaultParts());
                s = shared;
            }
        }
        return s;
    }

    static int defaultParts() {
        String env = System.getenv("JTUNE_NUM_THREADS");
        if (env != null) {
            try {
                return Math.max(1, Math.min(64, Integer.parseInt(env.trim())));
            } catch (NumberFormatException e) {
                // NativeRuntime reports the bad value; fall back to the cores
            }
        }
        return Math.max(1, Math.min(64, Runtime.getRuntime().availableProcessors()));
    }

    /** How many parts a job may have (threads + the caller). */
    int parts() {
        return workers.length + 1;
    }

    /** Runs {@code part.accept(p)} for p in [0, parts), part 0 on this thread; returns when all are done. */
    synchronized void run(int parts, IntConsumer part) {
        if (parts > parts()) throw new IllegalArgumentException(parts + " parts > " + parts());
        if (parts <= 1) {
            part.accept(0);
            return;
        }
        failure = null;
        caller = Thread.currentThread();
        job = part;
        jobParts = parts;
        pending.set(parts - 1);
        generation++;                                 // publishes job and jobParts to the workers
        for (int i = 0; i < parts - 1; i++) LockSupport.unpark(workers[i]);
        Throwable mine = null;
        try {
            part.accept(0);
        } catch (Throwable t) {
            mine = t;
        }
        for (int spin = 0; pending.get() > 0; spin++) {
            if (spin < SPIN) Thread.onSpinWait();
            else LockSupport.park(this);
        }
        job = null;
        Throwable t = mine != null ? mine : failure;
        if (t instanceof RuntimeException r) throw r;
        if (t instanceof Error e) throw e;
        if (t != null) throw new IllegalStateException(t);
    }

    private void loop(int part) {
        NoGradGuard noGrad = new NoGradGuard();       // grad mode is per thread: parts never record a graph
        long seen = 0;
        while (true) {
            long g;
            for (int spin = 0; (g = generation) == seen; spin++) {
                if (spin < SPIN) Thread.onSpinWait();
                else LockSupport.park(this);
            }
            seen = g;
            if (part < jobParts) {
                try (PointerScope scope = new PointerScope()) {
                    job.accept(part);
                } catch (Throwable t) {
                    failure = t;
                }
                if (pending.decrementAndGet() == 0) LockSupport.unpark(caller);
            }
        }
    }
}
