package dev.jtune.util;

import org.bytedeco.pytorch.Dispatcher;
import org.bytedeco.pytorch.GenericList;
import org.bytedeco.pytorch.IValue;
import org.bytedeco.pytorch.OperatorHandle;
import org.bytedeco.pytorch.Tensor;
import org.bytedeco.pytorch.TensorType;
import org.bytedeco.pytorch.Type;

import java.util.List;
import java.util.Map;
import java.util.concurrent.ConcurrentHashMap;

/**
 * ATen operators the PyTorch preset does not bind as functions (the multi-tensor {@code _foreach_*},
 * {@code _fused_adamw_}, the AMP ops), reached through the boxed dispatcher as torch.optim and GradScaler
 * reach them: {@code op(name, overload).callBoxed(stack)}, arguments as IValues in schema order, returns left
 * on the stack.
 */
public final class AtenOps {
    private static final Map<String, OperatorHandle> OPS = new ConcurrentHashMap<>();

    private AtenOps() {}

    /** The operator {@code name.overload} ("" for the default overload), looked up once and kept. */
    public static OperatorHandle op(String name, String overload) {
        return OPS.computeIfAbsent(name + "." + overload, k -> {
            OperatorHandle h = Dispatcher.singleton().findSchemaOrThrow(name, overload);
            h.retainReference();   // outlives every PointerScope
            return h;
        });
    }

    /**
     * A {@code Tensor[]} argument: a {@link GenericList} whose element type is {@code TensorType.get()} (the
     * preset binds no {@code IValue(TensorList)} constructor, and this is what {@code IValue::isTensorList()}
     * accepts). The list shares the tensors: in-place ops on it change them.
     */
    public static IValue tensorList(List<Tensor> tensors) {
        GenericList l = new GenericList(new Type.TypePtr(TensorType.get()));
        for (Tensor t : tensors) l.push_back(new IValue(t));
        return new IValue(l);
    }
}
