package dev.jtune.dist;

import org.bytedeco.pytorch.Tensor;

import java.util.Locale;

/**
 * What one optimizer step needs from the other ranks, in the order the step needs it: the target tokens of the whole
 * global batch (before any backward, so each rank divides its loss sum by the global count), the gradients' sums (once,
 * after the last micro-batch's backward: accumulation micro-batches never sync), and the loss sum and tokens for the
 * log. With {@link #NONE} (no process group) every call is the identity.
 *
 * <p>It also times its collectives, for {@code jtune bench}'s all-reduce time per step.
 */
public final class DataParallel implements AutoCloseable {
    public static final DataParallel NONE = new DataParallel(DistGroup.single(), null);

    private final DistGroup group;
    private final GradientBuckets buckets;
    private long step;
    private double commSeconds;
    private ZeroSharding zero;   // ZeRO stage 1, or null

    private DataParallel(DistGroup group, GradientBuckets buckets) {
        this.group = group;
        this.buckets = buckets;
    }

    /** Gradient sync for {@code trained} (in the optimizer's order) over {@code group}. */
    public static DataParallel of(DistGroup group, Iterable<Tensor> trained) {
        if (!group.active()) return NONE;
        return new DataParallel(group, new GradientBuckets(group, trained, GradientBuckets.DEFAULT_BUCKET_BYTES));
    }

    public DistGroup group() {
        return group;
    }

    public boolean active() {
        return group.active();
    }

    /** The step that the next {@link #globalTargets} opens (1-based; for failure messages). */
    public void startStep(long stepNumber) {
        step = stepNumber;
        commSeconds = 0;
    }

    /** The target tokens of the global batch: this rank's {@code local} summed over the ranks. */
    public long globalTargets(long local) {
        if (!active()) return local;
        long t0 = System.nanoTime();
        double[] s = group.allReduceSum(new double[] {local}, String.format(Locale.ROOT, "all-reduce of the target-token count of step %d", step));
        commSeconds += (System.nanoTime() - t0) / 1e9;
        return Math.round(s[0]);
    }

    /** Sums the gradients over the ranks (bucketed). */
    public void syncGradients() {
        if (!active()) return;
        buckets.allReduce(step);
        commSeconds += buckets.lastSeconds();
    }

    /** Runs later steps with ZeRO stage 1: the optimizer steps this rank's shard of {@code zero} (null: plain data parallel); returns this. */
    public DataParallel shardOptimizer(ZeroSharding zero) {
        if (zero != null && !active()) throw new IllegalStateException("ZeRO needs a process group");
        this.zero = zero;
        return this;
    }

    /** The optimizer's sharding, or null (plain data parallel, or one process). */
    public ZeroSharding zero() {
        return zero;
    }

    /** After the optimizer stepped its shard (ZeRO stage 1): every tensor from its owner. A no-op otherwise. */
    public void afterOptimizerStep() {
        if (zero == null) return;
        zero.broadcastParameters(step);
        commSeconds += zero.lastSeconds();
    }

    /** {loss sum, tokens} summed over the ranks, for the logged loss and tokens per second. */
    public double[] sumLossAndTokens(double lossSum, long tokens) {
        if (!active()) return new double[] {lossSum, tokens};
        long t0 = System.nanoTime();
        double[] s = group.allReduceSum(new double[] {lossSum, tokens}, String.format(Locale.ROOT, "all-reduce of the loss of step %d", step));
        commSeconds += (System.nanoTime() - t0) / 1e9;
        return s;
    }

    /** Seconds spent in this step's collectives so far (packing the buckets included). */
    public double commSeconds() {
        return commSeconds;
    }

    /** Gradient buckets (0 without a process group). */
    public int bucketCount() {
        return buckets == null ? 0 : buckets.count();
    }

    @Override
    public void close() {
        if (buckets != null) buckets.close();
    }
}
