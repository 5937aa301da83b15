package dev.jtune.kernels;

import org.bytedeco.javacpp.Pointer;
import org.bytedeco.javacpp.PointerScope;
import org.bytedeco.pytorch.GradMode;
import org.bytedeco.pytorch.Tensor;
import org.bytedeco.pytorch.TensorBase;
import org.bytedeco.pytorch.TensorTensorHook;

import java.util.ArrayList;
import java.util.IdentityHashMap;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.concurrent.ConcurrentHashMap;
import java.util.function.UnaryOperator;

/**
 * How the kernel paths join autograd. LibTorch's C++ {@code autograd::Function} cannot be subclassed from Java, so
 * an op's output is made by a cheap differentiable op on "carrier" views of its inputs (an identity view for RoPE,
 * which works in place; an add or a clone for the others), the kernel then overwrites the output's values under
 * no-grad, and tensor hooks replace the gradients: a hook on the output runs the backward kernel and parks the input
 * gradients (each {@link #keep}s its own), hooks on the carriers hand each input its own ({@link #take}).
 *
 * <p><b>Who frees what.</b> Every native object the bridge holds belongs to a {@link Step}, the one open on the
 * forward's thread when the op ran ({@link #openStep}; the training step opens one per micro-batch), or, with none
 * open, to a process-wide owner that is never closed (tests that call backward themselves):
 * <ul>
 * <li>a tensor saved for the backward ({@link #keep} in the forward, passed to {@link #hook} as {@code saved}) is
 *     released as soon as that hook has run;</li>
 * <li>a hook's temporaries are freed when it returns (each hook runs in its own {@link PointerScope}: autograd's
 *     thread has none open), and so is JavaCPP's copy of the gradient it was called with;</li>
 * <li>what a hook returns must outlive its return: LibTorch's callback receives it by reference
 *     ({@code @ByRef TensorBase call(@ByVal TensorBase)}) and copies it into autograd's own handle (one more
 *     reference to the same storage) after Java has returned. So the bridge's handle is released when the next hook
 *     on the same thread starts (that copy is done by then), or when the step closes;</li>
 * <li>a hook object is released after it ran (same rule), or, when its backward never runs, when its step closes,
 *     with the tensors it saved and the gradients parked for it.</li>
 * </ul>
 * After {@link Step#close} the step's graph must not be run backward (its hooks are gone): the training step closes
 * it after the backward, or after an exception that skipped it.
 *
 * <p>Limits: no double backward, no {@code retain_graph} second pass. Public for the ops outside this package that join
 * autograd the same way ({@code quant.QuantizedLinear}): one bridge, one place that owns the hooks and saved tensors.
 */
public final class AutogradBridge {
    /** Hooks registered whose backward has not run, in any owner (kept reachable: native code holds them only weakly). */
    private static final Set<Hook> PENDING = ConcurrentHashMap.newKeySet();
    /** The owner with no step open: never closed; saved tensors and hooks are still released once their backward ran. */
    private static final Step UNOWNED = new Step(null);
    /** The step open on this thread (the forward's), or the hook's own step while a hook runs on autograd's thread. */
    private static final ThreadLocal<Step> CURRENT = new ThreadLocal<>();

    private AutogradBridge() {}

    /**
     * Opens the owner of what the bridge allocates from now on, on this thread, until it is closed: one forward and
     * backward (a micro-batch). Closing it frees what is left: hooks whose backward never ran, their saved tensors and
     * parked gradients, and the handles of what the last hooks returned. Steps nest; close them in reverse order.
     */
    public static Step openStep() {
        Step s = new Step(CURRENT.get());
        CURRENT.set(s);
        return s;
    }

    /** Hooks registered whose backward has not run yet: 0 after every backward and every closed step (tests check it). */
    static int pendingHooks() {
        return PENDING.size();
    }

    /** Tensors the bridge holds in the step open on this thread (or the process-wide owner): for the tests. */
    static int heldTensors() {
        return owner().heldTensors();
    }

    /** Whether autograd will want t's gradient from this call. */
    static boolean needsGrad(Tensor t) {
        return t.requires_grad() && GradMode.is_enabled();
    }

    /**
     * Holds t for the backward: it survives the current PointerScope (the hook runs after it closed). Give it to the
     * hook that uses it ({@link #hook}'s {@code saved}) to have it released once that hook ran; inside a hook, a kept
     * gradient is released when a hook hands it to autograd ({@link #take}), or when the step closes. Keep a handle
     * of your own (a {@code detach()}, a fresh result): the bridge releases exactly the references it took.
     */
    public static Tensor keep(Tensor t) {
        owner().hold(t);
        return t;
    }

    /** Slot {@code i} of the gradients the output's hook parked, cleared: each carrier takes its own once. */
    static Tensor take(Tensor[] parked, int i) {
        Tensor g = parked[i];
        parked[i] = null;
        if (g == null) throw new IllegalStateException("kernel backward: the output's hook did not run before the input's");
        return g;
    }

    /**
     * Runs {@code f} on t's incoming gradient during backward; what f returns replaces it. The {@code saved} tensors
     * (kept with {@link #keep}; nulls skipped) are released once f has run, or when the step closes if it never does.
     */
    public static void hook(Tensor t, UnaryOperator<Tensor> f, Tensor... saved) {
        Hook h = new Hook(owner(), f, saved);
        t.register_hook(h);
    }

    private static Step owner() {
        Step s = CURRENT.get();
        return s != null ? s : UNOWNED;
    }

    /** Everything the bridge allocated while it was open; see the class comment for when each thing is released. */
    public static final class Step implements AutoCloseable {
        private final Step outer;
        /** Kept tensors and how many references the bridge took on each (identity: a freed Pointer's hash changes). */
        private final Map<Tensor, Integer> held = new IdentityHashMap<>();
        /** Hooks of this step that have not run. */
        private final Set<Hook> pending = ConcurrentHashMap.newKeySet();
        /** Per autograd thread: what its last hook handed back (and the hook itself), released when its next one starts. */
        private final Map<Thread, List<Pointer>> handedBack = new ConcurrentHashMap<>();
        private boolean closed;

        private Step(Step outer) {
            this.outer = outer;
        }

        synchronized int heldTensors() {
            return held.size();
        }

        private synchronized void hold(Tensor t) {
            held.merge(t, 1, Integer::sum);
            t.retainReference();
        }

        /** Releases one reference the bridge took on t; false when it holds none. */
        private synchronized boolean release(Tensor t) {
            Integer n = held.get(t);
            if (n == null) return false;
            if (n == 1) held.remove(t);
            else held.put(t, n - 1);
            t.releaseReference();
            return true;
        }

        /** Gives up one reference the bridge holds on t without releasing it (it goes with t to autograd); false when none. */
        private synchronized boolean forget(Tensor t) {
            Integer n = held.get(t);
            if (n == null) return false;
            if (n == 1) held.remove(t);
            else held.put(t, n - 1);
            return true;
        }

        /** The handles a hook on this thread returned earlier: autograd copied them when that hook returned. */
        private void releaseHandedBack() {
            List<Pointer> prev = handedBack.remove(Thread.currentThread());
            if (prev != null) for (Pointer p : prev) p.releaseReference();
        }

        private void handBack(Pointer... ps) {
            List<Pointer> l = handedBack.computeIfAbsent(Thread.currentThread(), k -> new ArrayList<>(2));
            for (Pointer p : ps) l.add(p);
        }

        /** Frees what is left of this step. Idempotent; the process-wide owner is never closed. */
        @Override
        public void close() {
            if (closed) return;
            closed = true;
            if (CURRENT.get() == this) {
                if (outer == null) CURRENT.remove();
                else CURRENT.set(outer);
            }
            for (List<Pointer> l : handedBack.values()) for (Pointer p : l) p.releaseReference();
            handedBack.clear();
            for (Hook h : pending) {
                PENDING.remove(h);
                h.releaseReference();
            }
            pending.clear();
            synchronized (this) {
                for (Map.Entry<Tensor, Integer> e : held.entrySet()) {
                    for (int i = 0; i < e.getValue(); i++) e.getKey().releaseReference();
                }
                held.clear();
            }
        }
    }

    /** A tensor hook calling back into Java; reachable through PENDING until it ran or its step closed. */
    private static final class Hook extends TensorTensorHook {
        private final Step owner;
        private final UnaryOperator<Tensor> f;
        private final Tensor[] saved;

        Hook(Step owner, UnaryOperator<Tensor> f, Tensor[] saved) {
            this.owner = owner;
            this.f = f;
            this.saved = saved;
            retainReference();   // released by its owner, not by the caller's PointerScope
            PENDING.add(this);
            owner.pending.add(this);
        }

        @Override
        public TensorBase call(TensorBase grad) {
            owner.releaseHandedBack();
            PENDING.remove(this);
            owner.pending.remove(this);
            Step before = CURRENT.get();
            CURRENT.set(owner);   // keep() inside f belongs to this hook's step, whichever thread runs it
            Tensor r;
            try (PointerScope scope = new PointerScope()) {
                r = f.apply(new Tensor(grad));
                // a kept gradient handed to autograd: the bridge's reference goes with it; else one to outlive the scope
                if (!owner.forget(r)) r.retainReference();
            } finally {
                if (before == null) CURRENT.remove();
                else CURRENT.set(before);
                for (Tensor s : saved) if (s != null) owner.release(s);
                // JavaCPP passes the @ByVal argument as a heap copy of its own (a deallocator, reference count 0), one
                // more reference to the incoming gradient: freed now, not when the collector finds it (on CUDA autograd's
                // thread has no scope; on the CPU it would wait for the micro-batch's scope)
                grad.deallocate();
            }
            owner.handBack(r, this);
            return r;
        }
    }
}
