package dev.jtune.kernels;

import org.bytedeco.javacpp.PointerScope;
import org.bytedeco.pytorch.DoubleOptional;
import org.bytedeco.pytorch.MemoryFormatOptional;
import org.bytedeco.pytorch.NoGradGuard;
import org.bytedeco.pytorch.Scalar;
import org.bytedeco.pytorch.ScalarTypeOptional;
import org.bytedeco.pytorch.Tensor;
import org.bytedeco.pytorch.global.torch;
import org.bytedeco.pytorch.global.torch.ScalarType;

import static dev.jtune.kernels.AutogradBridge.hook;
import static dev.jtune.kernels.AutogradBridge.keep;
import static dev.jtune.kernels.AutogradBridge.needsGrad;
import static dev.jtune.kernels.AutogradBridge.take;
import static dev.jtune.kernels.KernelArgs.computeDtype;
import static dev.jtune.kernels.KernelArgs.opts;
import static dev.jtune.kernels.KernelArgs.sameDevice;
import static dev.jtune.util.Labels.IGNORE_INDEX;

/**
 * Cross-entropy through the output projection, chunked over tokens: sum over rows with {@code targets != -100} of
 * {@code -log softmax(hidden @ weight^T)[target]}, in float32, computed {@code chunk} rows at a time so that at most
 * one chunk of logits (chunk, V) exists at once. The kernel path runs kernels/cross_entropy.cu on each chunk.
 *
 * <p>Label smoothing ({@code smoothing} = epsilon, {@code training.label_smoothing_factor}) replaces each target row's
 * loss by transformers' LabelSmoother's {@code (1 - eps)·(-log p[target]) + eps·mean over the vocabulary of (-log p)}
 * (the same as {@code torch.nn.functional.cross_entropy(label_smoothing=eps)}), and its gradient by
 * {@code softmax - (1 - eps)·onehot(target) - eps / V}; rows with target -100 still count nothing. The kernel computes
 * the unsmoothed loss and gradient; the kernel path adds the difference around it: {@code eps·(z[target] - mean(z))} to
 * the loss (read from the logits before the kernel overwrites them) and {@code eps·(onehot - 1/V)} to the gradient.
 *
 * <p>The input gradients are computed during the forward, chunk by chunk (as Liger's fused linear cross-entropy
 * does), and handed to autograd through the bridge's hooks ({@link #handOver}): the weight's gradient costs the one
 * (V, D) buffer it accumulates in, nothing more.
 */
final class ChunkedCrossEntropy {
    /** The loss (0-d float32) and the largest logits buffer (elements) it needed: the peak the chunking allows. */
    record Result(Tensor loss, long peakLogitsElements) {}

    private ChunkedCrossEntropy() {}

    /**
     * hidden (N, D), weight (V, D), targets (N,) int64. Gradients are kept: (N, D) for hidden and (V, D) for weight
     * when each requires grad.
     *
     * @param k the kernel backend, or null for LibTorch
     */
    static Result sum(KernelBackend k, Tensor hidden, Tensor weight, Tensor targets, long chunk) {
        return sum(k, hidden, weight, targets, chunk, 0.0);
    }

    /** As {@link #sum(KernelBackend, Tensor, Tensor, Tensor, long)}, with label smoothing epsilon in [0, 1). */
    static Result sum(KernelBackend k, Tensor hidden, Tensor weight, Tensor targets, long chunk, double smoothing) {
        if (hidden.dim() != 2 || weight.dim() != 2 || hidden.size(1) != weight.size(1) || targets.dim() != 1
                || targets.size(0) != hidden.size(0)) {
            throw new IllegalArgumentException("crossEntropySum: hidden (N, D), weight (V, D), targets (N,) expected, got "
                    + hidden.sizes().vec() + ", " + weight.sizes().vec() + ", " + targets.sizes().vec());
        }
        if (chunk < 1) throw new IllegalArgumentException("crossEntropySum: chunk must be >= 1, got " + chunk);
        if (!(smoothing >= 0 && smoothing < 1)) throw new IllegalArgumentException("crossEntropySum: smoothing must be in [0, 1), got " + smoothing);
        // under autocast the projection runs in the autocast dtype (hidden states and float32 master weights cast)
        ScalarType compute = computeDtype(hidden);
        boolean fits = k != null && (compute == ScalarType.Float || compute == ScalarType.BFloat16)
                && sameDevice(hidden, weight) && sameDevice(hidden, targets) && targets.scalar_type().intern() == ScalarType.Long;
        if (k != null) OpPaths.record("crossEntropySum", fits ? null : "compute " + compute + ", targets " + targets.scalar_type());
        return chunked(fits ? k : null, hidden, weight, targets, chunk, smoothing);
    }

    private static Result chunked(KernelBackend k, Tensor hidden, Tensor weight, Tensor targets, long chunk, double smoothing) {
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
                        Tensor smoothingShift = smoothing > 0 ? smoothingShift(logits, tc, smoothing) : null;   // before the overwrite
                        k.crossEntropy(loss, logits, tc, IGNORE_INDEX, grad ? 1.0 : 0.0);     // logits := dloss/dlogits
                        total.add_(loss.sum());
                        if (smoothingShift != null) {
                            total.add_(smoothingShift);
                            if (grad) smoothGradient(logits, tc, smoothing);
                        }
                    } else {
                        libTorchChunk(total, logits, logpBuf == null ? null : logpBuf.narrow(0, 0, len), tc, grad, smoothing);
                    }
                    if (!grad) continue;
                    if (gh && dh.scalar_type().intern() == compute) torch.mm_out(dh.narrow(0, start, len), logits, wc);   // (len, D)
                    else if (gh) dh.narrow(0, start, len).copy_(logits.mm(wc));
                    if (gw && dwSameDtype) dw.addmm_(logits.t(), hc);                       // (V, D)
                    else if (gw) dw.add_(logits.t().mm(hc));                                // fp32 master: accumulate in fp32
                }
            }
        }
        long peak = rows * v;
        if (!grad) return new Result(total, peak);
        return new Result(handOver(total, hidden, weight, dh, dw), peak);
    }

    /**
     * The loss joined to autograd through the bridge ({@link AutogradBridge}): the output is {@code total} plus zero
     * times the sums of carrier views of hidden and weight. A sum's backward is an expand (a view: nothing allocated),
     * so the carriers' hooks receive a free (N, D) / (V, D) placeholder and hand over dh and dw, scaled in place by
     * the gradient arriving at the loss (1 / targets, times the fp16 loss scale). No (V, D) tensor besides dw itself.
     */
    private static Tensor handOver(Tensor total, Tensor hidden, Tensor weight, Tensor dh, Tensor dw) {
        Tensor hCarrier = dh == null ? null : hidden.expand(hidden.sizes());    // (N, D) view
        Tensor wCarrier = dw == null ? null : weight.expand(weight.sizes());    // (V, D) view
        Tensor link = null;
        if (hCarrier != null) link = hCarrier.sum(new ScalarTypeOptional(ScalarType.Float));
        if (wCarrier != null) {
            Tensor l = wCarrier.sum(new ScalarTypeOptional(ScalarType.Float));
            link = link == null ? l : link.add(l);
        }
        // zero times a finite sum; nan_to_num keeps a non-finite weight from turning the loss's value into NaN
        Tensor out = total.add(torch.nan_to_num(link.mul(new Scalar(0.0)), new DoubleOptional(0.0), new DoubleOptional(0.0), new DoubleOptional(0.0)));
        Tensor[] grads = new Tensor[2];
        Tensor dhKept = dh == null ? null : keep(dh), dwKept = dw == null ? null : keep(dw);
        hook(out, g -> {
            try (NoGradGuard ng = new NoGradGuard()) {
                Tensor scale = g.to(ScalarType.Float);                          // 0-d, on the device: no host sync
                if (dhKept != null) grads[0] = keep(dhKept.mul_(scale));
                if (dwKept != null) grads[1] = keep(dwKept.mul_(scale));
            }
            return g;
        }, dhKept, dwKept);
        if (hCarrier != null) hook(hCarrier, g -> take(grads, 0));
        if (wCarrier != null) hook(wCarrier, g -> take(grads, 1));
        return out;
    }

    /**
     * The LibTorch composition of what kernels/cross_entropy.cu does, without autograd: {@code total += sum of
     * -log softmax(logits)[target]} over rows whose target is not -100, and (when {@code grad}) overwrites logits
     * with the gradient {@code softmax - onehot(target)} (zero rows where ignored). log_softmax goes to
     * {@code logp}, a float32 buffer (null when logits is float32: then logits itself), where the gradient is made in place:
     * one log_softmax and one exp pass, where autograd's log_softmax + nll_loss backward would add a zero-filled
     * (len, V) buffer and two more passes. logits, logp (len, V), targets (len,).
     */
    static void libTorchChunk(Tensor total, Tensor logits, Tensor logp, Tensor targets, boolean grad) {
        libTorchChunk(total, logits, logp, targets, grad, 0.0);
    }

    /** As above with label smoothing epsilon: the loss and gradient of the class comment. */
    static void libTorchChunk(Tensor total, Tensor logits, Tensor logp, Tensor targets, boolean grad, double smoothing) {
        boolean inPlace = logp == null;
        if (inPlace) logp = logits;
        else logp.copy_(logits);                                                             // to float32, no temporary
        torch.log_softmax_out(logp, logp, -1);                                               // in place, row by row
        Tensor valid = targets.ne(new Scalar(IGNORE_INDEX));                                 // (len,)
        Tensor safe = targets.clamp_min(new Scalar(0)).unsqueeze(1);                         // (len, 1), -100 -> 0
        Tensor validF = valid.to(ScalarType.Float).unsqueeze(1);                             // (len, 1)
        Tensor picked = logp.gather(1, safe).mul(validF).sum();                              // sum of log p[target]
        if (smoothing > 0) {
            // (1 - eps)·log p[target] + eps·mean_v log p, summed over the valid rows
            Tensor meanLogp = logp.mean(new long[] {1}, true, new ScalarTypeOptional()).mul(validF).sum();
            picked = picked.mul(new Scalar(1 - smoothing)).add(meanLogp.mul(new Scalar(smoothing)));
        }
        total.sub_(picked);
        if (!grad) return;
        logp.exp_();                                                                         // softmax
        logp.scatter_add_(1, safe, validF.mul(new Scalar(-(1 - smoothing))));                // - (1 - eps)·onehot(target)
        if (smoothing > 0) logp.sub_(new Scalar(smoothing / logp.size(1)));                 // - eps / V
        logp.masked_fill_(valid.logical_not().unsqueeze(1), new Scalar(0));                 // ignored rows: 0 (no host sync)
        if (!inPlace) logits.copy_(logp);                                                    // back to the compute dtype
    }

    /**
     * The kernel path's loss correction for smoothing: {@code eps · sum over valid rows of (z[target] - mean(z))}, a 0-d
     * float32 tensor, read from the chunk's logits z (len, V) before the kernel overwrites them. Smoothed minus plain
     * loss per row is {@code (lse - (1-eps)·z[t] - eps·mean z) - (lse - z[t])}.
     */
    private static Tensor smoothingShift(Tensor logits, Tensor targets, double smoothing) {
        Tensor valid = targets.ne(new Scalar(IGNORE_INDEX)).to(ScalarType.Float);            // (len,)
        Tensor safe = targets.clamp_min(new Scalar(0)).unsqueeze(1);                         // (len, 1)
        Tensor zt = logits.gather(1, safe).squeeze(1).to(ScalarType.Float);                  // (len,)
        Tensor zmean = logits.mean(new long[] {1}, false, new ScalarTypeOptional(ScalarType.Float));   // (len,), fp32 accumulation
        return zt.sub(zmean).mul(valid).sum().mul(new Scalar(smoothing));
    }

    /**
     * The kernel path's gradient correction for smoothing, in place over the kernel's {@code softmax - onehot} (len, V):
     * plus {@code eps} at the target, minus {@code eps / V} everywhere, on valid rows only (ignored rows stay 0).
     */
    private static void smoothGradient(Tensor grad, Tensor targets, double smoothing) {
        Tensor validF = targets.ne(new Scalar(IGNORE_INDEX)).to(grad.scalar_type()).unsqueeze(1);   // (len, 1)
        Tensor safe = targets.clamp_min(new Scalar(0)).unsqueeze(1);
        grad.scatter_add_(1, safe, validF.mul(new Scalar(smoothing)));
        grad.sub_(validF.mul(new Scalar(smoothing / grad.size(1))));
    }
}
