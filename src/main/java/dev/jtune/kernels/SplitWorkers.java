package dev.jtune.kernels;

import org.bytedeco.javacpp.PointerScope;
import org.bytedeco.pytorch.NoGradGuard;

import java.util.concurrent.atomic.AtomicInteger;
import java.util.concurrent.locks.LockSupport;
import java.util.function.IntConsumer;

/**
 * A few daemon threads that, with the caller, run the tasks of one job: {@link CpuLinear}'s chunks of weight rows.
 * Every thread claims the next task from a shared counter until none is left, so a thread the OS takes away (the box
 * is shared) leaves its chunks to the others instead of stalling the whole step.
 *
 * <p>A decode step hands out ~100 jobs of 0.05-2 ms each, separated by the attention and norm ops the caller runs
 * alone (tens of microseconds). Waking a parked thread costs tens of microseconds on this VM (an IPI through the
 * hypervisor), about as long as the work of a small projection, so waiting threads spin for up to a millisecond
 * (measured with the clock, not in iterations: PAUSE costs 10 to 140 cycles depending on the CPU) and only then
 * park: through a decode step they stay hot, and between requests they sleep rather than burn a core. But only while
 * the machine has a core for each runnable thread (Linux's count of runnable tasks, /proc/loadavg's fourth field,
 * read at most every {@link #LOAD_CHECK_NANOS}): on an oversubscribed box a spinning thread takes the core from the
 * thread that holds the work (measured on the shared 2-core box at load 12: spinning made the step 2.3x slower), so
 * there they park at once. {@code JTUNE_SPIN_MICROS} fixes the spin instead.
 *
 * <p>Tasks run without autograd (each worker holds a {@link NoGradGuard}) and each worker's share of a job runs inside
 * a {@link PointerScope}, so the tensor views a task makes are freed when the job ends; a task must write only into
 * tensors the caller owns. One job at a time: concurrent callers queue on the pool's lock.
 */
final class SplitWorkers {
    /** How long an idle thread spins before parking on a machine with free cores: longer than the gaps inside a decode step. */
    static final long SPIN_NANOS = 1_000_000L;
    /**
     * The caller spins at least this long for the workers' last chunks even on a busy box: what is left then is at
     * most one chunk per worker (tens to hundreds of microseconds), and a thread that parks there loses its place in
     * the run queue (measured at load 15-20: parking at once made the one-row step ~2x slower than the old 2,000-PAUSE
     * spin; 30-300 microseconds recovered most of it).
     */
    static final long CALLER_SPIN_NANOS = 100_000L;
    /** How often the spin is re-decided from the runnable-task count. */
    static final long LOAD_CHECK_NANOS = 50_000_000L;
    /** JTUNE_SPIN_MICROS in nanoseconds, or -1: decide from the load. */
    private static final long FIXED_SPIN_NANOS = fixedSpinNanos();
    private static final java.nio.file.Path LOADAVG = java.nio.file.Path.of("/proc/loadavg");
    private static volatile SplitWorkers shared;

    private final Thread[] workers;
    private volatile long generation;
    private volatile IntConsumer job;
    private volatile int jobTasks;
    private final AtomicInteger nextTask = new AtomicInteger();
    private final AtomicInteger running = new AtomicInteger();   // workers still inside the current job
    private volatile Thread caller;
    private volatile boolean callerParked;
    private volatile Throwable failure;
    private volatile long spinNanos = FIXED_SPIN_NANOS >= 0 ? FIXED_SPIN_NANOS : SPIN_NANOS;
    private long spinDecidedAt = Long.MIN_VALUE / 2;

    private SplitWorkers(int threads) {
        workers = new Thread[threads - 1];
        for (int i = 0; i < workers.length; i++) {
            workers[i] = new Thread(this::loop, "jtune-linear-" + (i + 1));
            workers[i].setDaemon(true);
            workers[i].start();
        }
    }

    /** The process's pool: one thread per core, the caller included ({@code JTUNE_NUM_THREADS} overrides), made on first use. */
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

    private static long fixedSpinNanos() {
        String v = System.getenv("JTUNE_SPIN_MICROS");
        try {
            return v == null ? -1 : Math.max(0, Long.parseLong(v.trim())) * 1000L;
        } catch (NumberFormatException e) {
            return -1;
        }
    }

    /** Spin only while every runnable task on the machine has a core (this pool's threads included). */
    private void decideSpin() {
        long now = System.nanoTime();
        if (FIXED_SPIN_NANOS >= 0 || now - spinDecidedAt < LOAD_CHECK_NANOS) return;
        spinDecidedAt = now;
        int runnable = runnableTasks();
        spinNanos = runnable < 0 || runnable <= Runtime.getRuntime().availableProcessors() ? SPIN_NANOS : 0;
    }

    /** Linux's runnable tasks now (/proc/loadavg: "0.52 0.58 0.59 3/467 12345"), or -1 where there is no such file. */
    static int runnableTasks() {
        try {
            String s = java.nio.file.Files.readString(LOADAVG);
            String field = s.split(" ")[3];
            return Integer.parseInt(field.substring(0, field.indexOf('/')));
        } catch (Exception e) {
            return -1;
        }
    }

    /** How many threads take part in a job (the workers and the caller). */
    int parts() {
        return workers.length + 1;
    }

    /** Runs {@code task.accept(t)} for every t in [0, tasks), on the workers and this thread; returns when all are done. */
    synchronized void run(int tasks, IntConsumer task) {
        if (tasks <= 1 || workers.length == 0) {
            for (int t = 0; t < tasks; t++) task.accept(t);
            return;
        }
        decideSpin();
        failure = null;
        caller = Thread.currentThread();
        callerParked = false;
        job = task;
        jobTasks = tasks;
        nextTask.set(0);
        running.set(workers.length);
        generation++;                                 // publishes job and jobTasks to the workers
        for (Thread w : workers) LockSupport.unpark(w);   // a no-op for a spinning worker's next park, a wake-up for a parked one
        Throwable mine = null;
        try {
            for (int t; (t = nextTask.getAndIncrement()) < tasks; ) task.accept(t);
        } catch (Throwable t) {
            mine = t;
            nextTask.set(tasks);                      // the others stop claiming
        }
        long spinUntil = System.nanoTime() + Math.max(spinNanos, CALLER_SPIN_NANOS);
        for (int spin = 0; running.get() > 0; spin++) {
            if ((spin & 63) != 0 || System.nanoTime() < spinUntil) {
                Thread.onSpinWait();
            } else {
                callerParked = true;
                if (running.get() > 0) LockSupport.park(this);
            }
        }
        job = null;
        Throwable t = mine != null ? mine : failure;
        if (t instanceof RuntimeException r) throw r;
        if (t instanceof Error e) throw e;
        if (t != null) throw new IllegalStateException(t);
    }

    private void loop() {
        NoGradGuard noGrad = new NoGradGuard();       // grad mode is per thread: tasks never record a graph
        long seen = 0;
        while (true) {
            long g;
            long spinUntil = System.nanoTime() + spinNanos;
            for (int spin = 0; (g = generation) == seen; spin++) {
                if ((spin & 63) != 0 || System.nanoTime() < spinUntil) Thread.onSpinWait();
                else LockSupport.park(this);
            }
            seen = g;
            IntConsumer task = job;
            int tasks = jobTasks;
            try (PointerScope scope = new PointerScope()) {
                for (int t; (t = nextTask.getAndIncrement()) < tasks; ) task.accept(t);
            } catch (Throwable t) {
                failure = t;
                nextTask.set(tasks);
            }
            if (running.decrementAndGet() == 0 && callerParked) LockSupport.unpark(caller);
        }
    }
}
