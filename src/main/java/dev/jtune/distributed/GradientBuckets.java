package dev.jtune.distributed;

import dev.jtune.util.Tensors;
import org.bytedeco.javacpp.PointerScope;
import org.bytedeco.pytorch.NoGradGuard;
import org.bytedeco.pytorch.Tensor;
import org.bytedeco.pytorch.global.torch;

import java.util.ArrayList;
import java.util.Comparator;
import java.util.List;
import java.util.Locale;
import java.util.stream.IntStream;

/**
 * Sums the gradients of the trained tensors across the ranks, in buckets as DistributedDataParallel does, overlapped with
 * the backward where the step allows.
 *
 * <p><b>Buckets.</b> Each trained tensor belongs to a ready group ({@link BackwardOrder}: the head, the blocks from last
 * to first, the rest), numbered in the order the backward completes them. Tensors are packed in that order into flat
 * buffers of one dtype: the first up to {@code firstBucketBytes} (1 MiB, DDP's {@code first_bucket_bytes_cap}, so the
 * first transfer starts early), the others up to {@code bucketBytes} (25 MiB, DDP's {@code bucket_cap_mb}). Since the
 * groups are packed in order, a bucket holds consecutive groups only. One collective per bucket instead of one per
 * tensor (hundreds for LoRA).
 *
 * <p><b>One step.</b> {@link #begin}, then {@link #groupReady} as the backward finishes each group (the training step's
 * hooks, possibly on autograd's thread): every bucket whose groups are all ready is packed and its asynchronous all-reduce
 * started, in bucket order (every rank issues the same collectives in the same order: Gloo and NCCL match them by
 * order). Then {@link #finish} after the backward returned: the buckets left are started, all are waited for and their
 * sums unpacked into the gradients.
 *
 * <p>Sums, not means: the loss is already divided by the target tokens of the whole global batch (all ranks), so the
 * sum of the ranks' gradients is the gradient of the global mean. Every rank gets the same bits (Gloo's and NCCL's
 * all-reduce hand the same reduced chunks to every rank), so every rank steps identically.
 *
 * <p>Buffers: one flat tensor per bucket, allocated once (as big as the gradients together).
 */
public final class GradientBuckets implements AutoCloseable {
    public static final long DEFAULT_BUCKET_BYTES = 25L << 20;
    public static final long FIRST_BUCKET_BYTES = 1L << 20;

    /** Tensors {@code params} packed at {@code offsets} in {@code flat}; complete when groups first … last are ready. */
    private record Bucket(Tensor flat, List<Tensor> params, long[] offsets, int firstGroup, int lastGroup) {}

    private final DistGroup group;
    private final List<Bucket> buckets = new ArrayList<>();
    private final boolean[] ready;
    private final DistGroup.Pending[] pending;
    // one step's state: written by the hooks (autograd's thread, while the step's thread waits in backward) and by finish
    private String what = "all-reduce of the gradients";
    private int launched;              // buckets started so far, in order
    private int launchedEarly;         // of those, started before finish: during the backward
    private long firstLaunchNanos;
    private RuntimeException failure;  // a failure inside a hook, thrown by finish (not through autograd)
    private double lastSeconds, lastExposedSeconds;

    /**
     * @param params           the trained tensors, in the optimizer's order
     * @param groupOf          each one's ready group
     * @param groups           how many ready groups there are
     */
    public GradientBuckets(DistGroup group, List<Tensor> params, int[] groupOf, int groups, long firstBucketBytes, long bucketBytes) {
        this.group = group;
        this.ready = new boolean[groups];
        if (group.active()) {
            long[] bytes = new long[params.size()];
            int[] kind = new int[params.size()];
            for (int i = 0; i < bytes.length; i++) {
                Tensor p = params.get(i);
                bytes[i] = p.numel() * Tensors.elementSize(p.scalar_type());
                kind[i] = p.scalar_type().intern().value;
            }
            for (int[] members : layout(bytes, kind, groupOf, firstBucketBytes, bucketBytes)) {
                List<Tensor> ps = new ArrayList<>(members.length);
                for (int i : members) ps.add(params.get(i));
                add(ps, groupOf[members[0]], groupOf[members[members.length - 1]]);
            }
        }
        this.pending = new DistGroup.Pending[buckets.size()];
    }

    /**
     * Which tensors go in which bucket, as indices into the tensors: ordered by ready group (stably: within a group the
     * given order), a new bucket when the next tensor would take the bucket past its cap (the first bucket's cap is
     * {@code firstCap}) or has another dtype ({@code kind}). A tensor bigger than the cap gets a bucket of its own.
     */
    static List<int[]> layout(long[] bytes, int[] kind, int[] groupOf, long firstCap, long cap) {
        List<Integer> order = IntStream.range(0, bytes.length).boxed().sorted(Comparator.comparingInt(i -> groupOf[i])).toList();
        List<int[]> out = new ArrayList<>();
        List<Integer> current = new ArrayList<>();
        long size = 0;
        for (int i : order) {
            long limit = out.isEmpty() ? firstCap : cap;
            if (!current.isEmpty() && (size + bytes[i] > limit || kind[current.get(0)] != kind[i])) {
                out.add(current.stream().mapToInt(Integer::intValue).toArray());
                current.clear();
                size = 0;
            }
            current.add(i);
            size += bytes[i];
        }
        if (!current.isEmpty()) out.add(current.stream().mapToInt(Integer::intValue).toArray());
        return out;
    }

    private void add(List<Tensor> params, int firstGroup, int lastGroup) {
        long[] offsets = new long[params.size() + 1];
        for (int i = 0; i < params.size(); i++) offsets[i + 1] = offsets[i] + params.get(i).numel();
        Tensor flat;
        try (PointerScope scope = new PointerScope()) {
            flat = torch.zeros(new long[] {offsets[params.size()]}, Tensors.options(params.get(0).scalar_type(), params.get(0).device()));
            flat.retainReference();
        }
        buckets.add(new Bucket(flat, List.copyOf(params), offsets, firstGroup, lastGroup));
    }

    /** Buckets in use (0 without a process group). */
    public int count() {
        return buckets.size();
    }

    /**
     * Seconds of the last step's gradient reduction, from the first bucket's packing to the last one's unpacking (bench's
     * all-reduce time): during the backward where it overlapped, then {@link #lastExposedSeconds}.
     */
    public double lastSeconds() {
        return lastSeconds;
    }

    /** Seconds the last step waited for the reduction after its backward returned ({@link #finish}). */
    public double lastExposedSeconds() {
        return lastExposedSeconds;
    }

    /** Buckets of the last step whose all-reduce started before its backward returned. */
    public int lastLaunchedEarly() {
        return launchedEarly;
    }

    /** Opens step {@code step}'s reduction: no group ready, no bucket started. */
    public void begin(long step) {
        what = String.format(Locale.ROOT, "all-reduce of the gradients of step %d", step);
        java.util.Arrays.fill(ready, false);
        launched = 0;
        launchedEarly = 0;
        firstLaunchNanos = 0;
        failure = null;
    }

    /**
     * Ready group {@code g}'s gradients are final: starts every bucket that is now complete. Called from gradient hooks:
     * it never throws (a Java exception through autograd would lose its type); a failure is thrown by {@link #finish}.
     */
    public void groupReady(int g) {
        if (failure != null || buckets.isEmpty()) return;
        try {
            ready[g] = true;
            launchReady();
        } catch (RuntimeException e) {
            failure = e;
        }
    }

    private void launchReady() {
        while (launched < buckets.size() && complete(buckets.get(launched))) launch(launched++);
    }

    private boolean complete(Bucket b) {
        for (int g = b.firstGroup; g <= b.lastGroup; g++) if (!ready[g]) return false;
        return true;
    }

    /** Packs bucket k and starts its all-reduce. A tensor without a gradient on this rank counts as zeros. */
    private void launch(int k) {
        if (firstLaunchNanos == 0) firstLaunchNanos = System.nanoTime();
        Bucket b = buckets.get(k);
        try (NoGradGuard ng = new NoGradGuard(); PointerScope scope = new PointerScope()) {
            for (int i = 0; i < b.params.size(); i++) {
                Tensor slot = b.flat.narrow(0, b.offsets[i], b.offsets[i + 1] - b.offsets[i]);
                Tensor g = Tensors.gradOf(b.params.get(i));
                if (g == null) slot.zero_();
                else slot.copy_(g.reshape(-1));
            }
            DistGroup.Pending p = group.allReduceSumAsync(List.of(b.flat), what);
            // the collective outlives this scope (a hook's): held until finish waited for it
            pending[k] = p.retain();
        }
    }

    /**
     * After the backward: starts the buckets not started yet, waits for all, and replaces every trained tensor's gradient by
     * its sum over the ranks (a tensor without a gradient on this rank gets the sum as its gradient, so the ranks cannot
     * diverge).
     */
    public void finish() {
        if (buckets.isEmpty()) return;
        long t0 = System.nanoTime();
        launchedEarly = launched;
        try {
            if (failure != null) throw failure;
            java.util.Arrays.fill(ready, true);
            launchReady();
            try (NoGradGuard ng = new NoGradGuard(); PointerScope scope = new PointerScope()) {
                for (int k = 0; k < buckets.size(); k++) {
                    group.wait(pending[k], what);
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
        } finally {
            for (int k = 0; k < pending.length; k++) {
                if (pending[k] != null) pending[k].release();
                pending[k] = null;
            }
        }
        long t1 = System.nanoTime();
        lastExposedSeconds = (t1 - t0) / 1e9;
        lastSeconds = (t1 - firstLaunchNanos) / 1e9;
    }

    @Override
    public void close() {
        for (Bucket b : buckets) b.flat.close();
        buckets.clear();
    }
}
