package dev.jtune.quant;

import dev.jtune.kernels.Ops;
import org.bytedeco.javacpp.PointerScope;
import org.bytedeco.pytorch.Device;
import org.bytedeco.pytorch.GradMode;
import org.bytedeco.pytorch.NoGradGuard;
import org.bytedeco.pytorch.Tensor;
import org.bytedeco.pytorch.TensorOptional;
import org.bytedeco.pytorch.global.torch;
import org.bytedeco.pytorch.global.torch.ScalarType;

import static dev.jtune.kernels.AutogradBridge.hook;
import static dev.jtune.kernels.AutogradBridge.keep;

/**
 * A linear layer over a frozen 4-bit weight: {@code y = x W^T + b} with W (out, in) dequantized to the
 * compute dtype inside the op, and dequantized again in the backward, so no dequantized copy outlives the
 * call (LibTorch's own {@code linear} would keep W alive from the forward to the backward, one full
 * 16-bit weight per layer). The gradient flows to x only: W and b are frozen (QLoRA's base).
 *
 * <p>How it joins autograd without a C++ {@code autograd::Function} (not subclassable from Java), as the
 * kernel paths in {@code dev.jtune.kernels.Ops} do: the output is made by a cheap differentiable op on a
 * "carrier" view of x, its values are overwritten under no-grad; a hook on the output captures dy and
 * computes {@code dx = dy W}, a hook on the carrier hands x that gradient. Limits: no double backward,
 * no second backward through the same graph. The reference is {@link #reference}, LibTorch's composition.
 */
@SuppressWarnings("try")
public final class QuantizedLinear {
    private QuantizedLinear() {}

    /**
     * @param x       (..., in), any floating dtype; cast to {@code compute}
     * @param w       the quantized weight, state shape (out, in)
     * @param bias    (out) or null; frozen
     * @param compute the dtype of the matrix product and of the result
     * @return (..., out) in {@code compute}
     */
    public static Tensor forward(Tensor x, QuantizedTensor w, Tensor bias, ScalarType compute) {
        return forward(x, w, bias, compute, Ops.OFF);
    }

    /**
     * Dequantizes W as bitsandbytes' {@code Linear4bit} does: to the quant state's dtype, then cast to {@code
     * compute}; the dequantization goes through {@code ops} (the CUDA kernel on GPU, LibTorch elsewhere).
     */
    static Tensor weight(QuantizedTensor w, ScalarType compute, Ops ops, Device device) {
        ScalarType st = w.state().scalarType();
        QuantState s = w.state();
        Tensor d = ops.dequantize4bit(w.packed(), w.absmax(), w.nestedAbsmax(), w.nestedQuantMap(), s.nestedOffset(),
                s.nestedBlocksize(), w.quantMap(), s.shape(), s.blocksize(), st, () -> FourBitCodec.dequantize(w, st));
        return d.to(device, compute);
    }

    /** {@link #forward(Tensor, QuantizedTensor, Tensor, ScalarType)} with the dequantization run by {@code ops}. */
    public static Tensor forward(Tensor x, QuantizedTensor w, Tensor bias, ScalarType compute, Ops ops) {
        long[] ws = w.state().shape();
        if (ws.length != 2) throw new IllegalArgumentException("quantized linear: weight shape must be (out, in), got " + ws.length + "-D");
        long outF = ws[0], in = ws[1];
        long[] xs = x.sizes().vec().get();
        if (xs[xs.length - 1] != in) {
            throw new IllegalArgumentException("quantized linear: input's last dimension " + xs[xs.length - 1] + " != weight's in " + in);
        }
        long[] ys = xs.clone();
        ys[ys.length - 1] = outF;
        TensorOptional b = bias == null ? new TensorOptional() : new TensorOptional(bias.to(compute));
        if (!x.requires_grad() || !GradMode.is_enabled()) {
            // the result is made in the caller's scope; the dequantized weight lives in an inner one and is freed here
            Tensor y = torch.empty(ys, dev.jtune.util.Tensors.options(compute, x.device()), new org.bytedeco.pytorch.MemoryFormatOptional());
            try (NoGradGuard ng = new NoGradGuard(); PointerScope s = new PointerScope()) {
                y.copy_(torch.linear(x.to(compute), weight(w, compute, ops, x.device()), b));
            }
            return y;
        }
        long rows = x.numel() / in;
        Tensor xc = x.contiguous().view(rows, in);                                   // the carrier (rows, in)
        Tensor out = xc.narrow(1, 0, 1).to(compute).expand(rows, outF).contiguous(); // depends on x, values replaced
        Tensor xd = keep(xc.detach());
        try (NoGradGuard ng = new NoGradGuard(); PointerScope s = new PointerScope()) {
            out.copy_(torch.linear(xd.to(compute), weight(w, compute, ops, x.device()), b));
        }
        Tensor[] dx = new Tensor[1];
        ScalarType xType = x.scalar_type().intern();
        hook(out, g -> {
            // an inner scope frees the dequantized weight at once (else it would live until the caller's step scope closes)
            try (NoGradGuard ng = new NoGradGuard(); PointerScope s = new PointerScope()) {
                Tensor weight = weight(w, compute, ops, g.device());                                 // (out, in), again
                dx[0] = keep(g.to(compute).mm(weight).to(xType));                                // (rows, in)
            }
            return g;
        });
        hook(xc, g -> {
            Tensor r = dx[0];
            dx[0] = null;
            if (r == null) throw new IllegalStateException("quantized linear backward: the output's hook did not run first");
            return r;
        });
        return out.view(ys);
    }

    /** The LibTorch composition the op is tested against: dequantize, then autograd's linear. */
    public static Tensor reference(Tensor x, QuantizedTensor w, Tensor bias, ScalarType compute) {
        Tensor weight = FourBitCodec.dequantize(w).to(x.device(), compute);
        return torch.linear(x.to(compute), weight, bias == null ? new TensorOptional() : new TensorOptional(bias.to(compute)));
    }
}
