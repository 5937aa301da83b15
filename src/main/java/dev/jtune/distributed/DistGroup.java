package dev.jtune.distributed;

import dev.jtune.util.UserError;
import dev.jtune.util.Devices;
import dev.jtune.util.NativeRuntime;
import dev.jtune.util.Tensors;
import org.bytedeco.javacpp.DoublePointer;
import org.bytedeco.javacpp.PointerScope;
import org.bytedeco.javacpp.chrono.Milliseconds;
import org.bytedeco.pytorch.AllreduceOptions;
import org.bytedeco.pytorch.Backend;
import org.bytedeco.pytorch.BarrierOptions;
import org.bytedeco.pytorch.BroadcastOptions;
import org.bytedeco.pytorch.Device;
import org.bytedeco.pytorch.PrefixStore;
import org.bytedeco.pytorch.ProcessGroupGloo;
import org.bytedeco.pytorch.Store;
import org.bytedeco.pytorch.TCPStore;
import org.bytedeco.pytorch.TCPStoreOptions;
import org.bytedeco.pytorch.Tensor;
import org.bytedeco.pytorch.TensorVector;
import org.bytedeco.pytorch.Work;
import org.bytedeco.pytorch.global.torch;
import org.bytedeco.pytorch.global.torch.ScalarType;

import java.io.PrintStream;
import java.time.Duration;
import java.util.List;
import java.util.Locale;

/**
 * The ranks of a data-parallel run and their collectives, on LibTorch's c10d: a {@link TCPStore} (rank 0 hosts it, or
 * with {@code TORCHELASTIC_USE_AGENT_STORE=True} every rank joins torchrun's agent store as a client), under a
 * {@link PrefixStore} keyed by the restart count, and a process group over it: Gloo on the CPU, NCCL on CUDA (GPU build).
 *
 * <p>{@link #single()} is a run without a process group: every collective is the identity. A launcher with
 * {@code WORLD_SIZE=1} still gets a real group, so that world size 1 goes through the whole path.
 *
 * <p>Every collective is waited for with the run's {@code ddp_timeout}; a failure (a rank died, or hung past the
 * timeout) becomes a {@link DistributedFailure} naming this rank, the collective and, where the store can tell, the rank
 * that stopped ({@link Heartbeat}).
 */
public final class DistGroup implements AutoCloseable {
    /** Gloo's sum is the only reduction jtune needs: it has no AVG, so means are sums divided by the world size. */
    private final Backend backend;
    private final Store store;
    /**
     * The native objects under the group, held for the life of the run: JavaCPP frees what a collected Java object
     * points to whatever c10's reference counts say (seen: rank 0's store server shut down mid-run after a GC).
     */
    private final Object[] keepAlive;
    private final Heartbeat heartbeat;
    private final int rank;
    private final int worldSize;
    private final Duration timeout;
    private final String kind;
    private long collectives;   // how many collectives this rank has issued: the failure message says which one failed

    private DistGroup(Backend backend, Store store, Heartbeat heartbeat, int rank, int worldSize, Duration timeout, String kind,
                      Object... keepAlive) {
        this.keepAlive = keepAlive;
        this.backend = backend;
        this.store = store;
        this.heartbeat = heartbeat;
        this.rank = rank;
        this.worldSize = worldSize;
        this.timeout = timeout;
        this.kind = kind;
    }

    /** One process, no process group. */
    public static DistGroup single() {
        return new DistGroup(null, null, null, 0, 1, Duration.ZERO, "none");
    }

    /**
     * Joins the job {@code env} describes: the store (rank 0 hosts it unless the agent's store is used), then the process
     * group for {@code device}. On the CPU, when {@code JTUNE_NUM_THREADS} is not set, the ranks of a node divide its
     * cores between them.
     */
    public static DistGroup join(LaunchEnv env, Device device, Duration timeout, PrintStream out) {
        Devices.makeCurrent(device);   // before any CUDA call of this rank: NCCL's communicator and every allocation use it
        NativeRuntime.configureThreads();   // once per process: the later call when the model loads keeps what is set here
        if (System.getenv("JTUNE_NUM_THREADS") == null && !device.is_cuda()) {
            int cores = Runtime.getRuntime().availableProcessors();
            torch.set_num_threads(Math.max(1, cores / env.localWorldSize()));
        }
        Milliseconds ms = new Milliseconds(timeout.toMillis());
        Store store;
        TCPStore tcp;
        TCPStoreOptions o = new TCPStoreOptions();
        try {
            o.port((short) env.masterPort());
            o.isServer(env.rank() == 0 && !env.agentStore());
            o.waitWorkers(false);
            o.timeout(ms);
            tcp = new TCPStore(env.masterAddr(), o);
            // torchelastic's agent keeps each restart's keys under this prefix; a fresh attempt never sees stale keys
            store = new PrefixStore("/worker/attempt_" + env.restartCount(), tcp);
        } catch (RuntimeException e) {
            throw new DistributedFailure(String.format(Locale.ROOT,
                    "rank %d of %d: could not %s the store at %s:%d within %d s (training.ddp_timeout): %s", env.rank(),
                    env.worldSize(), env.rank() == 0 && !env.agentStore() ? "host" : "reach", env.masterAddr(), env.masterPort(),
                    timeout.toSeconds(), firstLine(e)), e);
        }
        Backend backend;
        String kind;
        ProcessGroupGloo.Options opts = null;
        try {
            if (device.is_cuda()) {
                backend = Nccl.create(store, env.rank(), env.worldSize(), ms, device);
                kind = "nccl";
            } else {
                opts = ProcessGroupGloo.Options.create(ms);
                String ifname = System.getenv("GLOO_SOCKET_IFNAME");
                opts.devices().push_back(ifname != null && !ifname.isBlank()
                        ? ProcessGroupGloo.createDeviceForInterface(ifname.split(",")[0].trim())
                        : ProcessGroupGloo.createDefaultDevice());
                ProcessGroupGloo.Options gloo = opts;
                // Gloo announces its connections on std::cout: keep rank 0's stdout for jtune's own output
                backend = NativeStdout.toStderr(() -> new ProcessGroupGloo(store, env.rank(), env.worldSize(), gloo));
                kind = "gloo";
            }
        } catch (RuntimeException e) {
            throw new DistributedFailure(String.format(Locale.ROOT,
                    "rank %d of %d: the process group did not form within %d s (training.ddp_timeout); are all %d ranks started? %s",
                    env.rank(), env.worldSize(), timeout.toSeconds(), env.worldSize(), firstLine(e)), e);
        }
        Heartbeat hb = Heartbeat.start(store, env.rank(), env.worldSize(),
                env.agentStore() ? "torchrun's agent store" : "rank 0 (it hosts the store)");
        DistGroup g = new DistGroup(backend, store, hb, env.rank(), env.worldSize(), timeout, kind, tcp, o, ms, opts);
        out.printf(Locale.ROOT, "distributed: rank %d of %d (local rank %d of %d, from %s), %s over %s:%d%s, ddp_timeout %d s%n",
                env.rank(), env.worldSize(), env.localRank(), env.localWorldSize(), env.source(), kind, env.masterAddr(),
                env.masterPort(), env.agentStore() ? " (torchrun's agent store)" : "", timeout.toSeconds());
        return g;
    }

    public int rank() {
        return rank;
    }

    public int worldSize() {
        return worldSize;
    }

    public boolean isMain() {
        return rank == 0;
    }

    /** Whether collectives go through a process group (also at world size 1 under a launcher). */
    public boolean active() {
        return backend != null;
    }

    /** "gloo", "nccl" or "none". */
    public String kind() {
        return kind;
    }

    /** Sums {@code tensors} in place across the ranks (each one a collective of its own); waits. */
    public void allReduceSum(List<Tensor> tensors, String what) {
        if (backend == null) return;
        wait(allReduceSumAsync(tensors, what), what);
    }

    /** Starts the sum of {@code tensors} across the ranks as one collective; {@link #wait} it before reading them. */
    public Pending allReduceSumAsync(List<Tensor> tensors, String what) {
        if (backend == null) return null;
        String label = label(what);
        heartbeat.at(label);
        try {
            TensorVector v = new TensorVector(tensors.toArray(new Tensor[0]));
            AllreduceOptions o = new AllreduceOptions();
            o.timeout(new Milliseconds(timeout.toMillis()));
            return new Pending(backend.allreduce(v, o), v, label);
        } catch (RuntimeException e) {
            throw failure(label, e);
        }
    }

    /** A started collective; keeps its tensors alive until it is waited for. */
    public static final class Pending {
        final Work work;
        final TensorVector tensors;
        final String label;

        Pending(Work work, TensorVector tensors, String label) {
            this.work = work;
            this.tensors = tensors;
            this.label = label;
        }

        /** Keeps the native work and tensors past the PointerScope they were made in; {@link #release} after the wait. */
        Pending retain() {
            work.retainReference();
            tensors.retainReference();
            return this;
        }

        void release() {
            work.releaseReference();
            tensors.releaseReference();
        }
    }

    /** Waits for a started collective (null: nothing was started). */
    public void wait(Pending p, String what) {
        if (p == null) return;
        try {
            await(p.work);
        } catch (RuntimeException e) {
            throw failure(p.label, e);
        }
    }

    /**
     * Waits for a collective as DDP does. Gloo: the host blocks, bounded by the timeout. NCCL: {@code wait()} without
     * a timeout only makes the current CUDA stream wait for the collective's stream, so the host never polls; a hung
     * peer is caught by the group's own timeout (set when it was made: its watchdog aborts the communicator), and
     * {@code _wait(timeout)} would instead block the host thread in a busy loop until the GPU finishes.
     */
    private void await(Work work) {
        if (kind.equals("nccl")) work._wait();
        else work._wait(new Milliseconds(timeout.toMillis()));
    }

    /** Sums host numbers across the ranks (one small collective in float64). */
    public double[] allReduceSum(double[] values, String what) {
        if (backend == null) return values.clone();
        try (PointerScope scope = new PointerScope()) {
            Tensor t;
            try (DoublePointer p = new DoublePointer(values)) {   // float64: token counts stay exact far beyond 2^24
                t = torch.from_blob(p, new long[] {values.length}, Tensors.options(ScalarType.Double)).clone();
            }
            if (kind.equals("nccl")) t = t.to(Nccl.device(), ScalarType.Double);
            allReduceSum(List.of(t), what);
            Tensor host = t.cpu().contiguous();
            double[] out = new double[values.length];
            new DoublePointer(host.data_ptr_double()).capacity(out.length).get(out);
            return out;
        }
    }

    /** Whether any rank says yes (preemption: a signal reached one rank, and every rank stops at the same step). */
    public boolean anyTrue(boolean mine, String what) {
        if (backend == null) return mine;
        return allReduceSum(new double[] {mine ? 1 : 0}, what)[0] > 0;
    }

    /** Copies {@code tensors} from rank {@code root} to every rank, in place. */
    public void broadcast(List<Tensor> tensors, int root, String what) {
        if (backend == null || tensors.isEmpty()) return;
        String label = label(what);
        heartbeat.at(label);
        try (PointerScope scope = new PointerScope()) {
            for (Tensor t : tensors) {
                BroadcastOptions o = new BroadcastOptions();
                o.rootRank(root);
                o.timeout(new Milliseconds(timeout.toMillis()));
                await(backend.broadcast(new TensorVector(t), o));
            }
        } catch (RuntimeException e) {
            throw failure(label, e);
        }
    }

    /** Waits until every rank reaches this point (e.g. while rank 0 writes a checkpoint). */
    public void barrier(String what) {
        if (backend == null) return;
        String label = label(what);
        heartbeat.at(label);
        try (PointerScope scope = new PointerScope()) {
            BarrierOptions o = new BarrierOptions();
            o.timeout(new Milliseconds(timeout.toMillis()));
            await(backend.barrier(o));
        } catch (RuntimeException e) {
            throw failure(label, e);
        }
    }

    /**
     * Rank 0's {@code value} on every rank, through the store (e.g. the checkpoint rank 0 chose to resume from). A value
     * starting with "!" is rank 0's error: the other ranks fail with it at once instead of waiting for the timeout.
     */
    public String fromMain(String key, String value) {
        if (backend == null) return value;
        String k = "jtune/share/" + key;
        try {
            if (rank == 0) {
                store.set(k, value);
                return value;
            }
            heartbeat.at("waiting for rank 0's " + key);
            return store.get_to_str(k);
        } catch (RuntimeException e) {
            throw failure("reading rank 0's " + key + " from the store", e);
        }
    }

    private String label(String what) {
        return what + " (collective #" + (++collectives) + ")";
    }

    private DistributedFailure failure(String label, RuntimeException e) {
        String who = heartbeat == null ? "" : heartbeat.diagnose();
        return new DistributedFailure(String.format(Locale.ROOT, "rank %d of %d: %s failed: %s%s (training.ddp_timeout is %d s)",
                rank, worldSize, label, who.isEmpty() ? "" : who + "; ", firstLine(e), timeout.toSeconds()), e);
    }

    /** The innermost cause's class and message: a LinkageError's own message often only says "could not initialize". */
    static String rootMessage(Throwable e) {
        Throwable c = e;
        while (c.getCause() != null && c.getCause() != c) c = c.getCause();
        return c == e ? String.valueOf(e) : e + ", caused by " + c;
    }

    static String firstLine(Throwable e) {
        String m = String.valueOf(e.getMessage()).strip();
        // c10d's messages carry a C++ backtrace after the first lines; the first line says what happened
        int nl = m.indexOf('\n');
        m = nl < 0 ? m : m.substring(0, nl);
        // and Gloo's start with the build machine's source path: "[/home/…/pair.cc:547] Connection closed by peer …"
        return m.startsWith("[") && m.indexOf("] ") > 0 ? m.substring(m.indexOf("] ") + 2) : m;
    }

    /** Ends the heartbeat. The native group and store are left to the process's exit (their teardown waits on peers). */
    @Override
    public void close() {
        if (heartbeat != null) heartbeat.stop();
    }

    /** NCCL through the GPU build's class, found by reflection so that the CPU build compiles and runs without it. */
    static final class Nccl {
        private static Device device;

        static Device device() {
            return device;
        }

        static Backend create(Store store, int rank, int world, Milliseconds timeout, Device onDevice) {
            try {
                Class<?> pg = Class.forName("org.bytedeco.pytorch.nccl.ProcessGroupNCCL");
                Class<?> opts = Class.forName("org.bytedeco.pytorch.nccl.ProcessGroupNCCL$Options");
                Object o = opts.getConstructor().newInstance();
                try {
                    opts.getMethod("timeout", Milliseconds.class).invoke(o, timeout);
                } catch (NoSuchMethodException ignored) {
                    // older bindings name it differently; the store's timeout still applies
                }
                device = onDevice;
                return (Backend) pg.getConstructor(Store.class, int.class, int.class, opts).newInstance(store, rank, world, o);
            } catch (ClassNotFoundException e) {
                throw new UserError("training.device is cuda in a distributed run, but this jtune build has no NCCL "
                        + "(org.bytedeco.pytorch.nccl.ProcessGroupNCCL): use the GPU build, or training.device: cpu for Gloo");
            } catch (LinkageError e) {   // the class is there, its natives are not: say which library and why
                throw new UserError("training.device is cuda in a distributed run, but NCCL's natives did not load ("
                        + "org.bytedeco.pytorch.nccl.ProcessGroupNCCL): " + rootMessage(e)
                        + "; check that libnccl.so.2 is on the linker path (jtune env lists what loaded)");
            } catch (ReflectiveOperationException e) {
                Throwable c = e.getCause() == null ? e : e.getCause();
                throw new RuntimeException("ProcessGroupNCCL: " + c.getMessage(), c);
            }
        }
    }
}
