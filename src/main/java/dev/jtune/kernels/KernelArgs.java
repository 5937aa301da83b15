package dev.jtune.kernels;

import dev.jtune.util.Tensors;
import org.bytedeco.pytorch.Tensor;
import org.bytedeco.pytorch.TensorOptions;
import org.bytedeco.pytorch.global.torch;
import org.bytedeco.pytorch.global.torch.ScalarType;

/** What the kernels accept: the argument checks each op makes before it takes its kernel path. */
final class KernelArgs {
    private KernelArgs() {}

    /** All float32, or all bfloat16: the dtypes the kernels are compiled for. */
    static boolean sameKernelDtype(Tensor first, Tensor... rest) {
        ScalarType s = first.scalar_type().intern();
        if (s != ScalarType.Float && s != ScalarType.BFloat16) return false;
        for (Tensor t : rest) if (t.scalar_type().intern() != s) return false;
        return true;
    }

    static boolean sameDevice(Tensor a, Tensor b) {
        return a.device().type().intern() == b.device().type().intern() && a.device().index() == b.device().index();
    }

    /** The dtype a matrix product on t runs in: autocast's when it is on for t's device, else t's own. */
    static ScalarType computeDtype(Tensor t) {
        torch.DeviceType type = t.is_cuda() ? torch.DeviceType.CUDA : torch.DeviceType.CPU;
        return torch.is_autocast_enabled(type) ? torch.get_autocast_dtype(type).intern() : t.scalar_type().intern();
    }

    static TensorOptions opts(ScalarType dtype, Tensor like) {
        return Tensors.options(dtype, like.device());
    }
}
