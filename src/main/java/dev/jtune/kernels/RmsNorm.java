package dev.jtune.kernels;

import org.bytedeco.pytorch.DoubleOptional;
import org.bytedeco.pytorch.MemoryFormatOptional;
import org.bytedeco.pytorch.NoGradGuard;
import org.bytedeco.pytorch.Tensor;
import org.bytedeco.pytorch.TensorOptional;
import org.bytedeco.pytorch.global.torch;
import org.bytedeco.pytorch.global.torch.ScalarType;

import static dev.jtune.kernels.AutogradBridge.hook;
import static dev.jtune.kernels.AutogradBridge.keep;
import static dev.jtune.kernels.AutogradBridge.needsGrad;
import static dev.jtune.kernels.AutogradBridge.take;
import static dev.jtune.kernels.KernelArgs.opts;
import static dev.jtune.kernels.KernelArgs.sameDevice;
import static dev.jtune.kernels.KernelArgs.sameKernelDtype;

/**
 * transformers' LlamaRMSNorm: normalise in float32, cast back to the input dtype, then multiply by weight.
 * x (..., D), weight (D). The kernel path is kernels/rmsnorm.cu; the LibTorch path is the reference.
 */
final class RmsNorm {
    /** kernels/rmsnorm.cu keeps the dw partials in registers: rows up to this width. */
    static final long MAX_DIM = 16 * 1024;

    private RmsNorm() {}

    /** @param k the kernel backend, or null for LibTorch */
    static Tensor apply(KernelBackend k, Tensor x, Tensor weight, double eps) {
        if (k != null && sameKernelDtype(x, weight) && weight.dim() == 1 && weight.size(0) == x.size(-1)
                && x.size(-1) <= MAX_DIM && sameDevice(x, weight)) {
            OpPaths.record("rmsNorm", null);
            return kernel(k, x, weight, eps);
        }
        if (k != null) OpPaths.record("rmsNorm", "x " + x.scalar_type() + " dim " + x.size(-1) + ", weight " + weight.scalar_type());
        return reference(x, weight, eps);
    }

    static Tensor reference(Tensor x, Tensor weight, double eps) {
        ScalarType in = x.scalar_type();
        Tensor normed = torch.rms_norm(x.to(ScalarType.Float), new long[] {x.size(-1)}, new TensorOptional(),
                new DoubleOptional(eps));
        return normed.to(in).mul(weight);
    }

    private static Tensor kernel(KernelBackend k, Tensor x, Tensor weight, double eps) {
        long dim = x.size(-1), rows = x.numel() / dim;
        Tensor x2 = x.contiguous().view(rows, dim);                                    // (N, D)
        Tensor w = weight.contiguous();
        Tensor rstd = torch.empty(new long[] {rows}, opts(ScalarType.Float, x), new MemoryFormatOptional());
        boolean gx = needsGrad(x), gw = needsGrad(weight);
        if (!gx && !gw) {
            Tensor out = torch.empty_like(x2);
            try (NoGradGuard ng = new NoGradGuard()) {
                k.rmsNormForward(out, rstd, x2, w, eps);
            }
            return out.view(x.sizes());
        }
        Tensor xd = keep(x2.detach()), wd = keep(w.detach());
        keep(rstd);
        Tensor xCarrier = gx ? x2.view(rows, dim) : null;
        Tensor wCarrier = gw ? w.view(1, dim) : null;
        Tensor out = xCarrier != null && wCarrier != null ? xCarrier.add(wCarrier)
                : xCarrier != null ? xCarrier.clone() : wCarrier.expand(rows, dim).contiguous();
        try (NoGradGuard ng = new NoGradGuard()) {
            k.rmsNormForward(out, rstd, xd, wd, eps);
        }
        Tensor[] grads = new Tensor[2];
        hook(out, g -> {
            try (NoGradGuard ng = new NoGradGuard()) {
                Tensor dx = torch.empty_like(xd);
                Tensor dw = gw ? torch.empty_like(wd) : null;
                k.rmsNormBackward(dx, dw, g.contiguous(), xd, wd, rstd);
                grads[0] = keep(dx);
                grads[1] = dw == null ? null : keep(dw.view(1, dim));
            }
            return g;
        }, xd, wd, rstd);
        if (gx) hook(xCarrier, g -> take(grads, 0));
        if (gw) hook(wCarrier, g -> take(grads, 1));
        return out.view(x.sizes());
    }
}
