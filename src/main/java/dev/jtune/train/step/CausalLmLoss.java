package dev.jtune.train.step;

import dev.jtune.model.CausalLM;
import org.bytedeco.pytorch.Scalar;
import org.bytedeco.pytorch.Tensor;
import org.bytedeco.pytorch.TensorOptional;
import org.bytedeco.pytorch.global.torch;
import org.bytedeco.pytorch.global.torch.ScalarType;

import static dev.jtune.util.Labels.IGNORE_INDEX;

/**
 * Next-token cross-entropy: the logit at position t is scored against the label at t+1; labels of
 * -100 (prompt, padding, packing boundaries) are ignored. Computed in float32 whatever the logits'
 * dtype. Returns the SUM over scored tokens: the trainer divides by the target-token count of the
 * whole effective batch, so gradient accumulation is exact (8 micro-batches of 1 = 1 batch of 8).
 */
public final class CausalLmLoss {
    private static final long REDUCTION_SUM = 2;   // at::Reduction::Sum

    /** CPU: logits per chunk, 4M elements = 16 MiB in fp32, under glibc's mmap threshold (32 MiB) so buffers are reused. */
    static final long CPU_CHUNK_ELEMENTS = 4L << 20;
    /** CUDA: the fewest logits per chunk (16M: 32 MiB in bf16). */
    static final long CUDA_MIN_CHUNK_ELEMENTS = 16L << 20;

    private CausalLmLoss() {}

    /**
     * The same sum, computing logits only where a label counts: hidden states at target positions are
     * gathered first, then projected to the vocabulary. With a large vocabulary the (positions × V)
     * logits dominate memory traffic, and prompts and padding (label -100) are often most positions.
     *
     * @param hidden (B, T, D) final hidden states  @param labels (B, T) int64
     */
    public static Tensor sumAtTargets(CausalLM model, Tensor hidden, Tensor labels) {
        return sumAtTargets(model, hidden, labels, 0.0);
    }

    /**
     * {@link #sumAtTargets(CausalLM, Tensor, Tensor)} with label smoothing epsilon ({@code training.label_smoothing_factor}):
     * each target token scores {@code (1 - eps)·NLL + eps·(mean over the vocabulary of -log p)}, as transformers'
     * LabelSmoother; tokens labelled -100 still score nothing. Divided by the target count it is LabelSmoother's value.
     */
    public static Tensor sumAtTargets(CausalLM model, Tensor hidden, Tensor labels, double smoothing) {
        long t = hidden.size(1), d = hidden.size(2);
        Tensor target = labels.narrow(1, 1, t - 1).reshape(-1);                      // (B·(T-1),)
        Tensor keep = torch.nonzero(target.ne(new Scalar(IGNORE_INDEX))).squeeze(1);  // (N,) host sync on CUDA
        Tensor h = hidden.narrow(1, 0, t - 1).reshape(-1, d).index_select(0, keep);   // (N, D)
        // through the op layer: the CUDA kernel when available, else LibTorch; either way chunked over rows so
        // that at most CHUNK_ELEMENTS logits exist at once
        Tensor w = model.outputWeight();
        long chunk = chunkRows(h.size(0), w.size(0), w.size(1), h.is_cuda());
        return model.kernels().crossEntropySum(h, w, target.index_select(0, keep), chunk, smoothing);
    }

    /**
     * Rows per cross-entropy chunk for n rows, vocabulary v, hidden size d.
     * <ul>
     * <li>CUDA: Liger's rule, {@code nextPow2(ceil(n / ceil(v / d)))}: a chunk's logits (rows × v) are about as
     *     large as the hidden states (n × d), so the loss adds roughly one activation's worth of memory instead of
     *     the (n × v) logits (8192 tokens, v 128256, d 4096: 256 rows per chunk, 32 chunks). Small hidden sizes
     *     with large vocabularies would give chunks of a few rows, so a chunk holds at least
     *     {@link #CUDA_MIN_CHUNK_ELEMENTS} logits (rounded up to a power of two rows): matrix products that keep the
     *     GPU busy, at 32 MiB of bf16 logits.</li>
     * <li>CPU: at most {@link #CPU_CHUNK_ELEMENTS} logits (at least 16 rows): small enough to be reused by malloc
     *     instead of page-faulted every step, which measured 30% faster on the demo (bench/RESULTS.md).</li>
     * </ul>
     */
    public static long chunkRows(long n, long v, long d, boolean cuda) {
        long rows;
        if (cuda) {
            long factor = Math.max(1, (v + d - 1) / d);
            long floor = nextPowerOfTwo((CUDA_MIN_CHUNK_ELEMENTS + v - 1) / Math.max(1, v));
            rows = Math.max(nextPowerOfTwo((n + factor - 1) / factor), floor);
        } else {
            rows = Math.max(16, CPU_CHUNK_ELEMENTS / Math.max(1, v));
        }
        return Math.max(1, Math.min(rows, Math.max(1, n)));
    }

    private static long nextPowerOfTwo(long x) {
        return Long.highestOneBit(Math.max(1, x) * 2 - 1);
    }

    /** @param logits (B, T, V)  @param labels (B, T) int64  @return 0-d float32 sum of token NLLs */
    public static Tensor sum(Tensor logits, Tensor labels) {
        long t = logits.size(1), v = logits.size(2);
        Tensor pred = logits.narrow(1, 0, t - 1).to(ScalarType.Float);              // (B, T-1, V)
        Tensor target = labels.narrow(1, 1, t - 1).reshape(-1);                      // (B·(T-1),)
        Tensor logp = torch.log_softmax(pred, -1).reshape(-1, v);
        return torch.nll_loss(logp, target, new TensorOptional(), REDUCTION_SUM, IGNORE_INDEX);
    }
}
