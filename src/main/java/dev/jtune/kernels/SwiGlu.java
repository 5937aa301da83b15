package dev.jtune.kernels;

import org.bytedeco.pytorch.NoGradGuard;
import org.bytedeco.pytorch.Tensor;
import org.bytedeco.pytorch.global.torch;

import java.util.Arrays;

import static dev.jtune.kernels.AutogradBridge.hook;
import static dev.jtune.kernels.AutogradBridge.keep;
import static dev.jtune.kernels.AutogradBridge.needsGrad;
import static dev.jtune.kernels.AutogradBridge.take;
import static dev.jtune.kernels.KernelArgs.sameDevice;
import static dev.jtune.kernels.KernelArgs.sameKernelDtype;

/** The SwiGLU activation {@code silu(gate) * up}, gate and up of one shape. The kernel path is kernels/swiglu.cu. */
final class SwiGlu {
    private SwiGlu() {}

    /** @param k the kernel backend, or null for LibTorch */
    static Tensor apply(KernelBackend k, Tensor gate, Tensor up) {
        if (k != null && sameKernelDtype(gate, up) && sameDevice(gate, up)
                && Arrays.equals(gate.sizes().vec().get(), up.sizes().vec().get())) {
            OpPaths.record("swiglu", null);
            return kernel(k, gate, up);
        }
        if (k != null) OpPaths.record("swiglu", "gate " + gate.scalar_type() + ", up " + up.scalar_type());
        return reference(gate, up);
    }

    static Tensor reference(Tensor gate, Tensor up) {
        return torch.silu(gate).mul(up);
    }

    private static Tensor kernel(KernelBackend k, Tensor gate, Tensor up) {
        Tensor gc = gate.contiguous(), uc = up.contiguous();
        boolean gg = needsGrad(gate), gu = needsGrad(up);
        if (!gg && !gu) {
            Tensor out = torch.empty_like(gc);
            try (NoGradGuard ng = new NoGradGuard()) {
                k.swigluForward(out, gc, uc);
            }
            return out;
        }
        Tensor gd = keep(gc.detach()), ud = keep(uc.detach());
        Tensor gCarrier = gg ? gc.view_as(gc) : null;
        Tensor uCarrier = gu ? uc.view_as(uc) : null;
        Tensor out = gCarrier != null && uCarrier != null ? gCarrier.add(uCarrier)
                : (gCarrier != null ? gCarrier : uCarrier).clone();
        try (NoGradGuard ng = new NoGradGuard()) {
            k.swigluForward(out, gd, ud);
        }
        Tensor[] grads = new Tensor[2];
        hook(out, g -> {
            try (NoGradGuard ng = new NoGradGuard()) {
                Tensor dg = torch.empty_like(gd), du = torch.empty_like(ud);
                k.swigluBackward(dg, du, g.contiguous(), gd, ud);
                grads[0] = keep(dg);
                grads[1] = keep(du);
            }
            return g;
        }, gd, ud);
        if (gg) hook(gCarrier, g -> take(grads, 0));
        if (gu) hook(uCarrier, g -> take(grads, 1));
        return out;
    }
}
