package dev.jtune.kernels;

import org.bytedeco.javacpp.PointerScope;
import org.bytedeco.pytorch.GradMode;
import org.bytedeco.pytorch.Tensor;
import org.bytedeco.pytorch.TensorBase;
import org.bytedeco.pytorch.TensorTensorHook;

import java.util.Set;
import java.util.concurrent.ConcurrentHashMap;
import java.util.function.UnaryOperator;

/**
 * How the kernel paths join autograd. LibTorch's C++ {@code autograd::Function} cannot be subclassed from Java, so
 * an op's output is made by a cheap differentiable op on "carrier" views of its inputs (an identity view for RoPE,
 * which works in place; an add or a clone for the others), the kernel then overwrites the output's values under
 * no-grad, and tensor hooks replace the gradients: a hook on the output runs the backward kernel and parks the input
 * gradients ({@link #park}), hooks on the carriers hand each input its own ({@link #take}).
 *
 * <p>Limits: no double backward, no {@code retain_graph} second pass. Public for the ops outside this package that join
 * autograd the same way ({@code quant.QuantizedLinear}): one bridge, one place that owns the hooks and saved tensors.
 */
public final class AutogradBridge {
    /** Hooks waiting for their backward pass (kept reachable: native code holds them only weakly). */
    private static final Set<Hook> PENDING = ConcurrentHashMap.newKeySet();

    private AutogradBridge() {}

    /** Hooks registered whose backward has not run yet: 0 after every backward (tests check that none leak). */
    static int pendingHooks() {
        return PENDING.size();
    }

    /** Whether autograd will want t's gradient from this call. */
    static boolean needsGrad(Tensor t) {
        return t.requires_grad() && GradMode.is_enabled();
    }

    /**
     * Survives the current PointerScope (a backward hook may run after it closed): one more reference,
     * so the scope's close leaves the tensor to the garbage collector. (PointerScope.detach would free it.)
     */
    public static Tensor keep(Tensor t) {
        if (PointerScope.getInnerScope() != null) t.retainReference();
        return t;
    }

    /** Slot {@code i} of the gradients the output's hook parked, cleared: each carrier takes its own once. */
    static Tensor take(Tensor[] parked, int i) {
        Tensor g = parked[i];
        parked[i] = null;
        if (g == null) throw new IllegalStateException("kernel backward: the output's hook did not run before the input's");
        return g;
    }

    /** Runs {@code f} on t's incoming gradient during backward; what f returns replaces it. */
    public static void hook(Tensor t, UnaryOperator<Tensor> f) {
        t.register_hook(new Hook(f));
    }

    /** A tensor hook calling back into Java; reachable through PENDING until it ran. */
    private static final class Hook extends TensorTensorHook {
        private final UnaryOperator<Tensor> f;

        Hook(UnaryOperator<Tensor> f) {
            this.f = f;
            if (PointerScope.getInnerScope() != null) retainReference();
            PENDING.add(this);
        }

        @Override
        public TensorBase call(TensorBase grad) {
            PENDING.remove(this);
            return f.apply(new Tensor(grad));
        }
    }
}
