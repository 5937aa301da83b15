package dev.jtune.kernels;

import dev.jtune.util.Tensors;
import org.bytedeco.javacpp.PointerScope;
import org.bytedeco.pytorch.DoubleOptional;
import org.bytedeco.pytorch.GradMode;
import org.bytedeco.pytorch.MemoryFormatOptional;
import org.bytedeco.pytorch.NoGradGuard;
import org.bytedeco.pytorch.Scalar;
import org.bytedeco.pytorch.ScalarTypeOptional;
import org.bytedeco.pytorch.Tensor;
import org.bytedeco.pytorch.TensorBase;
import org.bytedeco.pytorch.TensorOptional;
import org.bytedeco.pytorch.TensorOptions;
import org.bytedeco.pytorch.TensorTensorHook;
import org.bytedeco.pytorch.TensorVector;
import org.bytedeco.pytorch.global.torch;
import org.bytedeco.pytorch.global.torch.ScalarType;

import java.util.LinkedHashMap;
import java.util.Locale;
import java.util.Map;
import java.util.Set;
import java.util.concurrent.ConcurrentHashMap;
import java.util.function.UnaryOperator;

/**
 * The op layer: one method per fused op. Each takes LibTorch tensors and runs the CUDA kernel when the
 * tensors are on CUDA, the kernel library is available ({@link KernelLibrary}) and the mode is
 * {@code auto}; otherwise it runs the LibTorch composition, which is the reference the kernels are
 * tested against. Both paths are differentiable.
 *
 * <p>How the kernel paths join autograd (LibTorch's C++ {@code autograd::Function} cannot be subclassed
 * from Java): the output is made by a cheap differentiable op on "carrier" views of the inputs (an
 * identity view for RoPE, which works in place; an add or a clone for the others), the kernel then
 * overwrites the output's values under no-grad, and tensor hooks replace the gradients: a hook on the
 * output runs the backward kernel, hooks on the carriers hand each input its gradient. The
 * cross-entropy computes its input gradients during the forward (as Liger's fused linear
 * cross-entropy does, one chunk at a time) and returns {@code loss + (lin - lin.detach())} with
 * {@code lin = sum(hidden * dHidden) + sum(weight * dWeight)}: the value is the loss, the gradient is
 * exact. Limits of the kernel paths: no double backward, no {@code retain_graph} second pass.
 */
public final class Ops {
    /** {@code training.kernels}: auto = kernels where they can run, off = LibTorch everywhere. */
    public enum Mode {
        AUTO, OFF;

        public static Mode parse(String s) {
            return switch (s.trim().toLowerCase(Locale.ROOT)) {
                case "auto" -> AUTO;
                case "off" -> OFF;
                default -> throw new IllegalArgumentException("kernels: expected auto or off, got '" + s + "'");
            };
        }
    }

    public static final long IGNORE_INDEX = -100;
    static final long RMS_MAX_DIM = 16 * 1024;     // kernels/rmsnorm.cu keeps dw partials in registers

    private static volatile Mode mode = Mode.AUTO;
    private static volatile KernelBackend forcedBackend;   // tests: EmulatedKernels on the CPU
    /** Hooks waiting for their backward pass (kept reachable: native code holds them only weakly). */
    private static final Set<Hook> PENDING = ConcurrentHashMap.newKeySet();
    /** Largest logits chunk (elements) of the last crossEntropySum: the peak the chunking allows. */
    static volatile long lastPeakLogitsElements;

    private Ops() {}

    public static void setMode(Mode m) {
        mode = m;
    }

    public static void setMode(String m) {
        mode = Mode.parse(m);
    }

    public static Mode mode() {
        return mode;
    }

    /** Runs the kernel paths with {@code backend} on any device (null restores the CUDA kernels). Tests only. */
    static void useBackend(KernelBackend backend) {
        forcedBackend = backend;
    }

    static int pendingHooks() {
        return PENDING.size();
    }

    /**
     * Which path each op takes for a run on CUDA ({@code cuda}) or the CPU, in this process's mode:
     * op name to a short description, in the op layer's order. For the run log and bench's JSON.
     */
    public static Map<String, String> paths(boolean cuda) {
        String path;
        if (mode == Mode.OFF) path = "LibTorch (kernels: off)";
        else if (forcedBackend != null) path = "kernel path, " + forcedBackend.name() + " backend (test)";
        else if (!cuda) path = "LibTorch (CPU tensors)";
        else if (KernelLibrary.available()) path = "CUDA kernel (float32/bfloat16; LibTorch for other dtypes)";
        else path = "LibTorch (CUDA kernels unavailable)";
        boolean kernel = path.startsWith("CUDA");
        Map<String, String> m = new LinkedHashMap<>();
        m.put("rmsNorm", path + (kernel ? ", dim <= " + RMS_MAX_DIM : ""));
        m.put("rope", path + (kernel ? ", in place" : ""));
        m.put("swiglu", path);
        m.put("crossEntropySum", path + ", chunked over tokens");
        return m;
    }

    /** {@link #paths} as lines for the run log, headed by the mode and (on CUDA) whether the kernel library loaded. */
    public static String describe(boolean cuda) {
        // on a CPU run the library's state does not matter (and without a GPU its reason is CUDA's driver message)
        String lib = !cuda ? "a CPU run" : KernelLibrary.available() ? "CUDA kernels available: " + KernelLibrary.reason()
                : "CUDA kernels unavailable: " + KernelLibrary.reason();
        StringBuilder b = new StringBuilder("kernels: " + mode.name().toLowerCase(Locale.ROOT) + "; " + lib);
        paths(cuda).forEach((op, path) -> b.append(String.format(Locale.ROOT, "%n  %-16s %s", op, path)));
        return b.toString();
    }

    // ------------------------------------------------------------------------------------------------
    // RMSNorm

    /**
     * transformers' LlamaRMSNorm: normalise in float32, cast back to the input dtype, then multiply by
     * weight. x (..., D), weight (D).
     */
    public static Tensor rmsNorm(Tensor x, Tensor weight, double eps) {
        KernelBackend k = backendFor(x);
        if (k != null && sameKernelDtype(x, weight) && weight.dim() == 1 && weight.size(0) == x.size(-1)
                && x.size(-1) <= RMS_MAX_DIM && sameDevice(x, weight)) {
            return rmsNormKernel(k, x, weight, eps);
        }
        return rmsNormReference(x, weight, eps);
    }

    static Tensor rmsNormReference(Tensor x, Tensor weight, double eps) {
        ScalarType in = x.scalar_type();
        Tensor normed = torch.rms_norm(x.to(ScalarType.Float), new long[] {x.size(-1)}, new TensorOptional(),
                new DoubleOptional(eps));
        return normed.to(in).mul(weight);
    }

    private static Tensor rmsNormKernel(KernelBackend k, Tensor x, Tensor weight, double eps) {
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
        });
        if (gx) hook(xCarrier, g -> take(grads, 0));
        if (gw) hook(wCarrier, g -> take(grads, 1));
        return out.view(x.sizes());
    }

    // ------------------------------------------------------------------------------------------------
    // RoPE

    /**
     * Rotary embedding, Hugging Face's rotate-half convention: {@code x*cos + rotate_half(x)*sin} for x
     * (B, H, T, hd) and cos, sin (B or 1, 1, T, hd). The kernel path works IN PLACE: it overwrites x
     * (unless x is a leaf that requires grad) and returns it, so treat x as consumed.
     */
    public static Tensor rope(Tensor x, Tensor cos, Tensor sin) {
        KernelBackend k = backendFor(x);
        if (k != null && ropeFits(x, cos, sin)) return ropeKernel(k, x, cos, sin);
        return ropeReference(x, cos, sin);
    }

    static Tensor ropeReference(Tensor x, Tensor cos, Tensor sin) {
        long half = x.size(-1) / 2;
        Tensor x1 = x.narrow(-1, 0, half);
        Tensor x2 = x.narrow(-1, half, half);
        Tensor rotated = torch.cat(new TensorVector(x2.neg(), x1), -1);
        return x.mul(cos).add(rotated.mul(sin));
    }

    private static boolean ropeFits(Tensor x, Tensor cos, Tensor sin) {
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

    private static Tensor ropeKernel(KernelBackend k, Tensor x, Tensor cos, Tensor sin) {
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
        });
        return out;
    }

    // ------------------------------------------------------------------------------------------------
    // SwiGLU

    /** silu(gate) * up. */
    public static Tensor swiglu(Tensor gate, Tensor up) {
        KernelBackend k = backendFor(gate);
        if (k != null && sameKernelDtype(gate, up) && sameDevice(gate, up) && java.util.Arrays.equals(gate.sizes().vec().get(), up.sizes().vec().get())) {
            return swigluKernel(k, gate, up);
        }
        return swigluReference(gate, up);
    }

    static Tensor swigluReference(Tensor gate, Tensor up) {
        return torch.silu(gate).mul(up);
    }

    private static Tensor swigluKernel(KernelBackend k, Tensor gate, Tensor up) {
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
        });
        if (gg) hook(gCarrier, g -> take(grads, 0));
        if (gu) hook(uCarrier, g -> take(grads, 1));
        return out;
    }

    // ------------------------------------------------------------------------------------------------
    // Cross-entropy through the output projection

    /**
     * Sum over rows with {@code targets != -100} of {@code -log softmax(hidden @ weight^T)[target]}, in
     * float32, computed {@code chunk} rows at a time so that at most one chunk of logits (chunk, V)
     * exists at once. hidden (N, D), weight (V, D), targets (N,) int64; returns a 0-d float32 tensor,
     * differentiable with respect to hidden and weight.
     *
     * <p>Gradients are computed chunk by chunk during this call (both paths; the LibTorch path through
     * autograd on each chunk) and kept: (N, D) for hidden, (V, D) for weight when it requires grad.
     */
    public static Tensor crossEntropySum(Tensor hidden, Tensor weight, Tensor targets, long chunk) {
        if (hidden.dim() != 2 || weight.dim() != 2 || hidden.size(1) != weight.size(1) || targets.dim() != 1
                || targets.size(0) != hidden.size(0)) {
            throw new IllegalArgumentException("crossEntropySum: hidden (N, D), weight (V, D), targets (N,) expected, got "
                    + hidden.sizes().vec() + ", " + weight.sizes().vec() + ", " + targets.sizes().vec());
        }
        if (chunk < 1) throw new IllegalArgumentException("crossEntropySum: chunk must be >= 1, got " + chunk);
        KernelBackend k = backendFor(hidden);
        // under autocast the projection runs in the autocast dtype (hidden states and float32 master weights cast)
        ScalarType compute = computeDtype(hidden);
        boolean fits = k != null && (compute == ScalarType.Float || compute == ScalarType.BFloat16)
                && sameDevice(hidden, weight) && sameDevice(hidden, targets) && targets.scalar_type().intern() == ScalarType.Long;
        return crossEntropyChunked(fits ? k : null, hidden, weight, targets, chunk);
    }

    private static Tensor crossEntropyChunked(KernelBackend k, Tensor hidden, Tensor weight, Tensor targets, long chunk) {
        long n = hidden.size(0), v = weight.size(0);
        boolean gh = needsGrad(hidden), gw = needsGrad(weight);
        boolean grad = gh || gw;
        Tensor total = torch.zeros(new long[] {}, opts(ScalarType.Float, hidden));
        Tensor dh = null, dw = null;
        long rows = Math.max(1, Math.min(chunk, n));
        try (NoGradGuard ng = new NoGradGuard()) {
            Tensor hd = hidden.detach(), wd = weight.detach(), td = targets.detach();
            ScalarType compute = computeDtype(hd);
            Tensor hcast = hd.scalar_type().intern() == compute ? hd : hd.to(compute);      // (N, D)
            boolean dwSameDtype = wd.scalar_type().intern() == compute;
            Tensor wc = dwSameDtype ? wd : wd.to(compute);                                  // (V, D), cast once
            if (gh) dh = torch.empty_like(hd);
            if (gw) dw = torch.zeros_like(wd);
            // the chunk buffers, made once and reused by every chunk: allocating them per chunk costs page faults
            // (measured: 25% slower on the CPU), and keeping each chunk's own would hold all the logits at once
            Tensor logitsBuf = torch.empty(new long[] {rows, v}, opts(compute, hd), new MemoryFormatOptional());
            Tensor logpBuf = k != null || compute == ScalarType.Float ? null                 // null: log_softmax in place
                    : torch.empty(new long[] {rows, v}, opts(ScalarType.Float, hd), new MemoryFormatOptional());
            for (long start = 0; start < n; start += rows) {
                // one scope per chunk: the wrappers and temporaries of a chunk are released before the next
                try (PointerScope chunkScope = new PointerScope()) {
                    long len = Math.min(rows, n - start);
                    Tensor hc = hcast.narrow(0, start, len), tc = td.narrow(0, start, len);
                    Tensor logits = torch.mm_out(logitsBuf.narrow(0, 0, len), hc, wc.t());  // (len, V), compute dtype
                    if (k != null) {
                        Tensor loss = torch.empty(new long[] {len}, opts(ScalarType.Float, hidden), new MemoryFormatOptional());
                        k.crossEntropy(loss, logits, tc, IGNORE_INDEX, grad ? 1.0 : 0.0);     // logits := dloss/dlogits
                        total.add_(loss.sum());
                    } else {
                        crossEntropyLibTorch(total, logits, logpBuf == null ? null : logpBuf.narrow(0, 0, len), tc, grad);
                    }
                    if (!grad) continue;
                    if (gh && dh.scalar_type().intern() == compute) torch.mm_out(dh.narrow(0, start, len), logits, wc);   // (len, D)
                    else if (gh) dh.narrow(0, start, len).copy_(logits.mm(wc));
                    if (gw && dwSameDtype) dw.addmm_(logits.t(), hc);                       // (V, D)
                    else if (gw) dw.add_(logits.t().mm(hc));                                // fp32 master: accumulate in fp32
                }
            }
        }
        lastPeakLogitsElements = rows * v;
        if (!grad) return total;
        Tensor lin = null;
        if (gh) lin = hidden.mul(dh).sum(new ScalarTypeOptional(ScalarType.Float));
        if (gw) {
            Tensor l = weight.mul(dw).sum(new ScalarTypeOptional(ScalarType.Float));
            lin = lin == null ? l : lin.add(l);
        }
        return total.add(lin.sub(lin.detach()));   // value: the loss; gradient: dh, dw times the incoming scale
    }

    /**
     * The LibTorch composition of what kernels/cross_entropy.cu does, without autograd: {@code total += sum of
     * -log softmax(logits)[target]} over rows whose target is not -100, and (when {@code grad}) overwrites logits
     * with the gradient {@code softmax - onehot(target)} (zero rows where ignored). log_softmax goes to
     * {@code logp}, a float32 buffer (null when logits is float32: then logits itself), where the gradient is made in place:
     * one log_softmax and one exp pass, where autograd's log_softmax + nll_loss backward would add a zero-filled
     * (len, V) buffer and two more passes. logits, logp (len, V), targets (len,).
     */
    static void crossEntropyLibTorch(Tensor total, Tensor logits, Tensor logp, Tensor targets, boolean grad) {
        boolean inPlace = logp == null;
        if (inPlace) logp = logits;
        else logp.copy_(logits);                                                             // to float32, no temporary
        torch.log_softmax_out(logp, logp, -1);                                               // in place, row by row
        Tensor valid = targets.ne(new Scalar(IGNORE_INDEX));                                 // (len,)
        Tensor safe = targets.clamp_min(new Scalar(0)).unsqueeze(1);                         // (len, 1), -100 -> 0
        Tensor validF = valid.to(ScalarType.Float).unsqueeze(1);                             // (len, 1)
        total.sub_(logp.gather(1, safe).mul(validF).sum());
        if (!grad) return;
        logp.exp_();                                                                         // softmax
        logp.scatter_add_(1, safe, validF.neg());                                            // - onehot(target)
        Tensor ignored = torch.nonzero(valid.logical_not()).squeeze(1);
        if (ignored.numel() > 0) logp.index_fill_(0, ignored, new Scalar(0));
        if (!inPlace) logits.copy_(logp);                                                    // back to the compute dtype
    }

    // ------------------------------------------------------------------------------------------------
    // helpers

    private static KernelBackend backendFor(Tensor t) {
        if (mode == Mode.OFF) return null;
        KernelBackend forced = forcedBackend;
        if (forced != null) return forced;
        if (!t.is_cuda() || !KernelLibrary.available()) return null;
        return CudaKernels.INSTANCE;
    }

    /** The dtype the output projection runs in: autocast's when it is on for t's device, else t's own. */
    private static ScalarType computeDtype(Tensor t) {
        torch.DeviceType type = t.is_cuda() ? torch.DeviceType.CUDA : torch.DeviceType.CPU;
        return torch.is_autocast_enabled(type) ? torch.get_autocast_dtype(type).intern() : t.scalar_type().intern();
    }

    private static boolean needsGrad(Tensor t) {
        return t.requires_grad() && GradMode.is_enabled();
    }

    private static boolean sameKernelDtype(Tensor first, Tensor... rest) {
        ScalarType s = first.scalar_type().intern();
        if (s != ScalarType.Float && s != ScalarType.BFloat16) return false;
        for (Tensor t : rest) if (t.scalar_type().intern() != s) return false;
        return true;
    }

    private static boolean sameDevice(Tensor a, Tensor b) {
        return a.device().type().intern() == b.device().type().intern() && a.device().index() == b.device().index();
    }

    static TensorOptions opts(ScalarType dtype, Tensor like) {
        return Tensors.options(dtype, like.device());
    }

    /**
     * Survives the current PointerScope (a backward hook may run after it closed): one more reference,
     * so the scope's close leaves the tensor to the garbage collector. (PointerScope.detach would free it.)
     */
    private static Tensor keep(Tensor t) {
        if (PointerScope.getInnerScope() != null) t.retainReference();
        return t;
    }

    private static Tensor take(Tensor[] grads, int i) {
        Tensor g = grads[i];
        grads[i] = null;
        if (g == null) throw new IllegalStateException("kernel backward: the output's hook did not run before the input's");
        return g;
    }

    private static void hook(Tensor t, UnaryOperator<Tensor> f) {
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
