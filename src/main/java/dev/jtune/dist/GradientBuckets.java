package dev.jtune.dist;

import dev.jtune.util.Tensors;
import org.bytedeco.javacpp.PointerScope;
import org.bytedeco.pytorch.NoGradGuard;
import org.bytedeco.pytorch.Tensor;
import org.bytedeco.pytorch.global.torch;

import java.util.ArrayList;
import java.util.List;
import java.util.Locale;

/**
 * Sums the gradients of the trained tensors across the ranks, in buckets as DistributedDataParallel does: tensors of
 * one dtype packed, in order, into flat buffers of about {@code bucketBytes} (25 MiB, DDP's {@code bucket_cap_mb}); each
 * bucket's all-reduce starts as soon as it is packed, so packing bucket i+1 overlaps the transfer of bucket i, and
 * the sums are unpacked into the gradients as the buckets complete. One collective per bucket instead of one per tensor
 * (hundreds for LoRA).
 *
 * <p>Sums, not means: the loss is already divided by the target tokens of the whole global batch (all ranks), so the
 * sum of the ranks' gradients is the gradient of the global mean. Every rank gets the same bits (Gloo's and NCCL's
 * all-reduce hand the same reduced chunks to every rank), so every rank steps identically.
 *
 * <p>Buffers: one flat tensor per bucket, allocated once (as big as the gradients together).
 */
public final class GradientBuckets implements AutoCloseable {
    public static final long DEFAULT_BUCKET_BYTES = 25L << 20;

    private record Bucket(Tensor flat, List<Tensor> params, long[] offsets) {}

    private final DistGroup group;
    private final List<Bucket> buckets = new ArrayList<>();
    private double lastSeconds;

    public GradientBuckets(DistGroup group, Iterable<Tensor> params, long bucketBytes) {
        this.group = group;
        if (!group.active()) return;
        List<Tensor> current = new ArrayList<>();
        long bytes = 0;
        for (Tensor p : params) {
            long b = p.numel() * Tensors.elementSize(p.scalar_type());
            boolean sameKind = current.isEmpty() || current.get(0).scalar_type().intern() == p.scalar_type().intern();
            if (!current.isEmpty() && (bytes + b > bucketBytes || !sameKind)) {
                add(current);
                current = new ArrayList<>();
                bytes = 0;
            }
            current.add(p);
            bytes += b;
        }
        if (!current.isEmpty()) add(current);
    }

    private void add(List<Tensor> params) {
        long[] offsets = new long[params.size() + 1];
        for (int i = 0; i < params.size(); i++) offsets[i + 1] = offsets[i] + params.get(i).numel();
        Tensor flat;
        try (PointerScope scope = new PointerScope()) {
            flat = torch.zeros(new long[] {offsets[params.size()]}, Tensors.options(params.get(0).scalar_type(), params.get(0).device()));
            flat.retainReference();
        }
        buckets.add(new Bucket(flat, List.copyOf(params), offsets));
    }

    /** Buckets in use (0 without a process group). */
    public int count() {
        return buckets.size();
    }

    /** Seconds the last {@link #allReduce} took, packing and unpacking included (bench's all-reduce time). */
    public double lastSeconds() {
        return lastSeconds;
    }

    /**
     * Replaces every trained tensor's gradient by its sum over the ranks. A tensor without a gradient on this rank counts
     * as zeros (and gets the sum as its gradient), so the ranks cannot diverge.
     */
    public void allReduce(long step) {
        if (buckets.isEmpty()) return;
        long t0 = System.nanoTime();
        String what = String.format(Locale.ROOT, "all-reduce of the gradients of step %d", step);
        try (NoGradGuard ng = new NoGradGuard(); PointerScope scope = new PointerScope()) {
            List<DistGroup.Pending> pending = new ArrayList<>(buckets.size());
            for (Bucket b : buckets) {
                for (int i = 0; i < b.params.size(); i++) {
                    Tensor slot = b.flat.narrow(0, b.offsets[i], b.offsets[i + 1] - b.offsets[i]);
                    Tensor g = Tensors.gradOf(b.params.get(i));
                    if (g == null) slot.zero_();
                    else slot.copy_(g.reshape(-1));
                }
                pending.add(group.allReduceSumAsync(List.of(b.flat), what));   // starts now; the next bucket packs meanwhile
            }
            for (int k = 0; k < buckets.size(); k++) {
                group.wait(pending.get(k), what);
                Bucket b = buckets.get(k);
                for (int i = 0; i < b.params.size(); i++) {
                    Tensor p = b.params.get(i);
                    Tensor sum = b.flat.narrow(0, b.offsets[i], b.offsets[i + 1] - b.offsets[i]).view_as(p);
                    Tensor g = Tensors.gradOf(p);
                    if (g == null) p.mutable_grad().put(sum.clone());
                    else g.copy_(sum);
                }
            }
        }
        lastSeconds = (System.nanoTime() - t0) / 1e9;
    }

    @Override
    public void close() {
        for (Bucket b : buckets) b.flat.close();
        buckets.clear();
    }
}
