package dev.jtune.kernels;

import org.bytedeco.pytorch.Scalar;
import org.bytedeco.pytorch.Tensor;
import org.bytedeco.pytorch.TensorVector;
import org.bytedeco.pytorch.global.torch;
import org.bytedeco.pytorch.global.torch.ScalarType;

/**
 * What each CUDA kernel computes, written with LibTorch ops (the formulas of kernels/*.cu), on any
 * device. Not a fast path: it lets the CPU tests drive {@link Ops}' kernel wiring (preallocated
 * outputs, in-place writes, autograd hooks) without a GPU.
 */
final class EmulatedKernels implements KernelBackend {
    static final EmulatedKernels INSTANCE = new EmulatedKernels();

    private EmulatedKernels() {}

    @Override
    public String name() {
        return "emulated";
    }

    private static Scalar s(double v) {
        return new Scalar(v);
    }

    @Override
    public void rmsNormForward(Tensor y, Tensor rstd, Tensor x, Tensor w, double eps) {
        Tensor xf = x.to(ScalarType.Float);
        Tensor r = xf.mul(xf).mean(new long[] {-1}, true, new org.bytedeco.pytorch.ScalarTypeOptional()).add(s(eps)).rsqrt();
        rstd.copy_(r.view(-1));
        y.copy_(xf.mul(r).to(x.scalar_type()).mul(w));
    }

    @Override
    public void rmsNormBackward(Tensor dx, Tensor dw, Tensor dy, Tensor x, Tensor w, Tensor rstd) {
        Tensor r = rstd.unsqueeze(1);
        Tensor n = x.to(ScalarType.Float).mul(r);
        Tensor dn = dy.mul(w).to(ScalarType.Float);
        Tensor dot = dn.mul(n).mean(new long[] {-1}, true, new org.bytedeco.pytorch.ScalarTypeOptional());
        dx.copy_(r.mul(dn.sub(n.mul(dot))));
        if (dw != null) dw.copy_(dy.mul(n.to(x.scalar_type())).to(ScalarType.Float).sum(0));
    }

    @Override
    public void rope(Tensor out, Tensor x, Tensor cos, Tensor sin, boolean backward) {
        long half = x.size(3) / 2;
        Tensor c = cos.unsqueeze(1), sn = sin.unsqueeze(1);                         // (Bc, 1, T, hd)
        Tensor x1 = x.narrow(3, 0, half), x2 = x.narrow(3, half, half);
        Tensor c1 = c.narrow(3, 0, half), c2 = c.narrow(3, half, half);
        Tensor s1 = sn.narrow(3, 0, half), s2 = sn.narrow(3, half, half);
        Tensor o1, o2;
        if (!backward) {
            o1 = x1.mul(c1).sub(x2.mul(s1));
            o2 = x2.mul(c2).add(x1.mul(s2));
        } else {
            o1 = x1.mul(c1).add(x2.mul(s2));
            o2 = x2.mul(c2).sub(x1.mul(s1));
        }
        out.copy_(torch.cat(new TensorVector(o1, o2), 3));   // both halves computed before the write: in place is safe
    }

    @Override
    public void swigluForward(Tensor y, Tensor gate, Tensor up) {
        y.copy_(torch.silu(gate).mul(up));
    }

    @Override
    public void swigluBackward(Tensor dgate, Tensor dup, Tensor dy, Tensor gate, Tensor up) {
        Tensor g = gate.to(ScalarType.Float);
        Tensor sig = torch.sigmoid(g);
        Tensor silu = torch.silu(gate);
        Tensor dsilu = dy.mul(up).to(ScalarType.Float);
        Tensor dg = dsilu.mul(sig.mul(g.mul(sig.neg().add(s(1))).add(s(1))));
        Tensor du = dy.mul(silu);
        dgate.copy_(dg);
        dup.copy_(du);
    }

    @Override
    public void crossEntropy(Tensor loss, Tensor logits, Tensor targets, long ignoreIndex, double scale) {
        Tensor z = logits.to(ScalarType.Float);
        Tensor valid = targets.ne(s(ignoreIndex));
        Tensor safe = torch.where(valid, targets, torch.zeros_like(targets));
        Tensor lse = torch.logsumexp(z, new long[] {-1}, false);
        Tensor picked = z.gather(1, safe.unsqueeze(1)).squeeze(1);
        loss.copy_(lse.sub(picked).mul(valid.to(ScalarType.Float)));
        if (scale != 0) {
            Tensor grad = torch.softmax(z, -1, new org.bytedeco.pytorch.ScalarTypeOptional());
            grad = grad.sub(torch.one_hot(safe, z.size(1)).to(ScalarType.Float));
            logits.copy_(grad.mul(valid.to(ScalarType.Float).unsqueeze(1)).mul(s(scale)));
        }
    }

    /** kernels/dequantize_4bit.cu's formula, element by element in float32, one rounding to out's dtype. */
    @Override
    public void dequantize4bit(Tensor out, Tensor packed, Tensor absmax, Tensor qabsmax, Tensor nestedAbsmax, Tensor nestedMap,
                               float offset, long nestedBlocksize, Tensor quantMap, long n, long blocksize) {
        Tensor bytes = packed.reshape(-1);
        Tensor codes = torch.stack(new TensorVector(bytes.bitwise_right_shift(new Scalar(4L)), bytes.bitwise_and(new Scalar(15L))), 1)
                .view(-1).narrow(0, 0, n).to(ScalarType.Long);                                  // (n)
        Tensor block = torch.arange(new Scalar(n), dev.jtune.util.Tensors.options(ScalarType.Long, out.device())).floor_divide(new Scalar(blocksize));   // (n) block of each element
        Tensor scale;
        if (qabsmax == null) {
            scale = absmax.reshape(-1).index_select(0, block);
        } else {
            Tensor q = qabsmax.reshape(-1).to(ScalarType.Long).index_select(0, block);
            Tensor nested = nestedAbsmax.reshape(-1).index_select(0, block.floor_divide(new Scalar(nestedBlocksize)));
            scale = nestedMap.reshape(-1).index_select(0, q).mul(nested).add(new Scalar(offset));
        }
        out.view(-1).copy_(quantMap.reshape(-1).index_select(0, codes).mul(scale));
    }
}
