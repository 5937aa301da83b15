package dev.jtune.kernels;

import org.bytedeco.pytorch.MemoryFormatOptional;
import org.bytedeco.pytorch.NoGradGuard;
import org.bytedeco.pytorch.Tensor;
import org.bytedeco.pytorch.TensorVector;
import org.bytedeco.pytorch.global.torch;
import org.bytedeco.pytorch.global.torch.ScalarType;

import static dev.jtune.kernels.AutogradBridge.hook;
import static dev.jtune.kernels.AutogradBridge.keep;
import static dev.jtune.kernels.AutogradBridge.needsGrad;
import static dev.jtune.kernels.KernelArgs.opts;
import static dev.jtune.kernels.KernelArgs.sameDevice;
import static dev.jtune.kernels.KernelArgs.sameKernelDtype;

/**
 * Rotary embedding (RoPE), Hugging Face's rotate-half convention: {@code x*cos + rotate_half(x)*sin} for x
 * (B, H, T, hd) and cos, sin (B or 1, 1, T, hd). The kernel path (kernels/rope.cu) works IN PLACE: it overwrites x
 * (unless x is a leaf that requires grad) and returns it, so callers treat x as consumed.
 */
final class RotaryEmbedding {
    private RotaryEmbedding() {}

    /**
     * @param k the kernel backend, or null for LibTorch. Under autocast x arrives in bf16 while cos and sin stay
     *          float32 (the model's dtype): the kernel then takes them cast to x's dtype, as transformers' rotary
     *          embedding returns {@code cos.to(x.dtype)}; before, the dtype mismatch sent every call to LibTorch.
     */
    static Tensor apply(KernelBackend k, Tensor x, Tensor cos, Tensor sin) {
        if (k == null) return reference(x, cos, sin);
        ScalarType xt = x.scalar_type().intern();
        if (xt == ScalarType.BFloat16 && cos.scalar_type().intern() == ScalarType.Float && sin.scalar_type().intern() == ScalarType.Float
                && !needsGrad(cos) && !needsGrad(sin)) {
            cos = cos.to(xt);
            sin = sin.to(xt);
        }
        if (fits(x, cos, sin)) {
            OpPaths.record("rope", null);
            return kernel(k, x, cos, sin);
        }
        OpPaths.record("rope", "x " + x.scalar_type() + " " + java.util.Arrays.toString(x.sizes().vec().get()) + ", cos "
                + cos.scalar_type() + " " + java.util.Arrays.toString(cos.sizes().vec().get()));
        return reference(x, cos, sin);
    }

    static Tensor reference(Tensor x, Tensor cos, Tensor sin) {
        long half = x.size(-1) / 2;
        Tensor x1 = x.narrow(-1, 0, half);
        Tensor x2 = x.narrow(-1, half, half);
        Tensor rotated = torch.cat(new TensorVector(x2.neg(), x1), -1);
        return x.mul(cos).add(rotated.mul(sin));
    }

    private static boolean fits(Tensor x, Tensor cos, Tensor sin) {
        if (x.dim() != 4 || cos.dim() != 4 || sin.dim() != 4 || !sameKernelDtype(x, cos, sin)) return false;
        if (!sameDevice(x, cos) || !sameDevice(x, sin) || needsGrad(cos) || needsGrad(sin)) return false;
        long b = x.size(0), t = x.size(2), hd = x.size(3);
        for (Tensor c : new Tensor[] {cos, sin}) {
            if ((c.size(0) != 1 && c.size(0) != b) || c.size(1) != 1 || c.size(2) != t || c.size(3) != hd || c.stride(3) != 1) {
                return false;
            }
        }
        return hd % 2 == 0 && x.stride(3) == 1 && cos.stride(0) == sin.stride(0) && cos.stride(2) == sin.stride(2);
    }

    private static Tensor kernel(KernelBackend k, Tensor x, Tensor cos, Tensor sin) {
        Tensor c3 = cos.select(1, 0), s3 = sin.select(1, 0);                           // (Bc, T, hd)
        if (!needsGrad(x)) {
            try (NoGradGuard ng = new NoGradGuard()) {
                k.rope(x, x, c3, s3, false);
            }
            return x;
        }
        // an identity view to hang the hook on; a leaf is not overwritten (its value is the parameter)
        Tensor out = x.is_leaf() ? x.clone() : x.view_as(x);
        try (NoGradGuard ng = new NoGradGuard()) {
            k.rope(out, out, c3, s3, false);
        }
        Tensor cd = keep(c3.detach()), sd = keep(s3.detach());
        hook(out, g -> {
            try (NoGradGuard ng = new NoGradGuard()) {
                Tensor dx = torch.empty(g.sizes().vec().get(), opts(g.scalar_type(), g), new MemoryFormatOptional());
                Tensor gl = g.stride(3) == 1 ? g : g.contiguous();
                k.rope(dx, gl, cd, sd, true);
                return dx;
            }
        }, cd, sd);
        return out;
    }
}
