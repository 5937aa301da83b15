package dev.jtune.distributed;

import dev.jtune.util.UserError;
import org.bytedeco.pytorch.Tensor;

import java.util.ArrayList;
import java.util.List;
import java.util.Locale;
import java.util.Map;

/**
 * What one optimizer step needs from the other ranks, in the order the step needs it: the target tokens of the whole
 * global batch (before any backward, so each rank divides its loss sum by the global count), the gradients' sums (once
 * per step, started during the last micro-batch's backward as the blocks' gradients become final ({@link #gradientsReady}),
 * finished after it ({@link #syncGradients}): accumulation micro-batches never sync), and the loss sum and tokens for the
 * log. With {@link #NONE} (no process group) every call is the identity.
 *
 * <p>It also times its collectives, for {@code jtune bench}'s all-reduce time per step and the part of it the step waits
 * for after the backward ("exposed").
 *
 * <p>Bucket size: {@code training.ddp_bucket_cap_mb} (DDP's {@code bucket_cap_mb}, default 25; the first bucket holds at
 * most 1 MiB); the environment variable {@code JTUNE_DDP_BUCKET_CAP_MB} overrides it (and sets it for bench with
 * --shape). {@code JTUNE_DDP_TRACE=1} prints, per step and rank, how many buckets started during the backward.
 */
public final class DataParallel implements AutoCloseable {
    public static final DataParallel NONE = new DataParallel(DistGroup.single(), null, null);

    private final DistGroup group;
    private final GradientBuckets buckets;
    private final BackwardOrder order;   // null only in NONE
    private final boolean trace = "1".equals(System.getenv("JTUNE_DDP_TRACE"));
    private long step;
    private double commSeconds, exposedSeconds;
    private boolean gradientsBegun;      // this step's buckets were opened for the backward's signals
    private long syncs;                  // gradient syncs so far (the trace's count)
    private ZeroSharding zero;           // ZeRO stage 1, or null

    private DataParallel(DistGroup group, GradientBuckets buckets, BackwardOrder order) {
        this.group = group;
        this.buckets = buckets;
        this.order = order;
    }

    /** DDP's and transformers' default {@code bucket_cap_mb}. */
    public static final double DEFAULT_BUCKET_CAP_MB = GradientBuckets.DEFAULT_BUCKET_BYTES / 1048576.0;

    /**
     * Gradient sync for {@code trained} (by name, in the optimizer's order) of a model with {@code blocks} decoder blocks,
     * over {@code group}: bucketed in backward order ({@link BackwardOrder}), so that buckets start during the backward,
     * in buckets of {@code bucketCapMb} MiB ({@code training.ddp_bucket_cap_mb}; {@code JTUNE_DDP_BUCKET_CAP_MB} overrides it).
     */
    public static DataParallel of(DistGroup group, Map<String, Tensor> trained, int blocks, double bucketCapMb) {
        if (!group.active()) return NONE;
        BackwardOrder order = new BackwardOrder(blocks);
        List<Tensor> tensors = new ArrayList<>(trained.values());
        int[] groupOf = trained.keySet().stream().mapToInt(order::groupOf).toArray();
        long cap = bucketCapBytes(bucketCapMb);
        return new DataParallel(group, new GradientBuckets(group, tensors, groupOf, order.groups(),
                Math.min(GradientBuckets.FIRST_BUCKET_BYTES, cap), cap), order);
    }

    /** {@code JTUNE_DDP_BUCKET_CAP_MB} in bytes when set, else {@code capMb}. */
    static long bucketCapBytes(double capMb) {
        String v = System.getenv("JTUNE_DDP_BUCKET_CAP_MB");
        double mb = v == null || v.isBlank() ? capMb : parseMiB(v);
        return Math.max(1, (long) (mb * 1048576));
    }

    private static double parseMiB(String v) {
        try {
            double mb = Double.parseDouble(v.strip());
            if (mb > 0 && Double.isFinite(mb)) return mb;
        } catch (NumberFormatException ignored) {
            // the message below
        }
        throw new UserError("environment variable JTUNE_DDP_BUCKET_CAP_MB: expected a positive number of MiB (e.g. 25), got '" + v + "'");
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
        exposedSeconds = 0;
        gradientsBegun = false;
    }

    /** The target tokens of the global batch: this rank's {@code local} summed over the ranks. */
    public long globalTargets(long local) {
        if (!active()) return local;
        long t0 = System.nanoTime();
        double[] s = group.allReduceSum(new double[] {local}, String.format(Locale.ROOT, "all-reduce of the target-token count of step %d", step));
        double dt = (System.nanoTime() - t0) / 1e9;
        commSeconds += dt;
        exposedSeconds += dt;
        return Math.round(s[0]);
    }

    /**
     * Call before the forward of the step's last micro-batch: what its backward signals as final starts the all-reduce of
     * those gradients' buckets. Null without a process group.
     */
    public GradientsReady gradientsReady() {
        if (!active()) return null;
        buckets.begin(step);
        gradientsBegun = true;
        return new GradientsReady() {
            @Override
            public void head() {
                buckets.groupReady(order.headGroup());
            }

            @Override
            public void block(int i) {
                buckets.groupReady(order.blockGroup(i));
            }
        };
    }

    /**
     * After the last micro-batch's backward: starts the buckets not started during it, waits for all, and leaves the sums
     * over the ranks in the gradients.
     */
    public void syncGradients() {
        if (!active()) return;
        if (!gradientsBegun) buckets.begin(step);
        gradientsBegun = false;
        buckets.finish();
        syncs++;
        commSeconds += buckets.lastSeconds();
        exposedSeconds += buckets.lastExposedSeconds();
        if (trace) {
            System.err.printf(Locale.ROOT, "ddp trace: rank %d gradient sync %d: %d of %d gradient buckets started during the backward%n",
                    group.rank(), syncs, buckets.lastLaunchedEarly(), buckets.count());
        }
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
        double dt = (System.nanoTime() - t0) / 1e9;
        commSeconds += dt;
        exposedSeconds += dt;
        return s;
    }

    /**
     * Seconds of this step's collectives so far: the scalar all-reduces, and the gradients' from the first bucket's packing
     * to the last one's unpacking (partly during the backward).
     */
    public double commSeconds() {
        return commSeconds;
    }

    /** Of {@link #commSeconds}, what the step waited for outside the backward (the scalar all-reduces included). */
    public double exposedSeconds() {
        return exposedSeconds;
    }

    /** Gradient buckets of the last step whose all-reduce started before the backward returned. */
    public int bucketsStartedDuringBackward() {
        return buckets == null ? 0 : buckets.lastLaunchedEarly();
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
