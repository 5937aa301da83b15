package dev.jtune.distributed;

import dev.jtune.util.Tensors;
import org.bytedeco.javacpp.PointerScope;
import org.bytedeco.pytorch.NoGradGuard;
import org.bytedeco.pytorch.Tensor;
import org.bytedeco.pytorch.TensorVector;
import org.bytedeco.pytorch.global.torch;

import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.function.Function;

/**
 * ZeRO stage 1 ({@code training.zero_stage: 1}; DeepSpeed's {@code zero_optimization.stage: 1}, PyTorch's
 * {@code ZeroRedundancyOptimizer}): the optimizer state is sharded across the ranks by {@link ZeroPartition}, each rank
 * steps only the tensors it owns, and then every tensor is broadcast from its owner, so all ranks again hold the same
 * weights.
 *
 * <p>The gradients are still all-reduced whole ({@link GradientBuckets}), not reduce-scattered, as PyTorch's
 * ZeroRedundancyOptimizer under DistributedDataParallel does it: every rank then holds the full summed gradient, so
 * clipping sees the global norm and a non-finite gradient (fp16) skips the step on every rank without another
 * collective, and the owners step on exactly the gradients plain data parallel steps on: the results are the same bits.
 * DeepSpeed's reduce-scatter (half the gradient traffic) needs equal slices of one flat buffer, tensors split across
 * ranks; the binding has Gloo's {@code _reduce_scatter_base}, unused and untested here. The memory stage 1 saves is
 * the optimizer state either way.
 *
 * <p>Per step: one broadcast per bucket of about {@link GradientBuckets#DEFAULT_BUCKET_BYTES} of each owner's tensors
 * (one dtype per bucket; a tensor larger than that goes alone, in place, without a copy).
 */
public final class ZeroSharding {
    private record Bucket(int owner, List<Tensor> tensors) {}

    private final DistGroup group;
    private final ZeroPartition partition;
    private final Map<String, Tensor> params;
    private final List<Bucket> buckets = new ArrayList<>();
    private double lastSeconds;

    private ZeroSharding(DistGroup group, ZeroPartition partition, Map<String, Tensor> params, long bucketBytes) {
        this.group = group;
        this.partition = partition;
        this.params = params;
        for (int r = 0; r < group.worldSize(); r++) {
            List<Tensor> current = new ArrayList<>();
            long bytes = 0;
            for (String n : partition.ownedBy(r)) {
                Tensor p = params.get(n);
                long b = p.numel() * Tensors.elementSize(p.scalar_type());
                boolean sameKind = current.isEmpty() || current.get(0).scalar_type().intern() == p.scalar_type().intern();
                if (!current.isEmpty() && (bytes + b > bucketBytes || !sameKind)) {
                    buckets.add(new Bucket(r, current));
                    current = new ArrayList<>();
                    bytes = 0;
                }
                current.add(p);
                bytes += b;
            }
            if (!current.isEmpty()) buckets.add(new Bucket(r, current));
        }
    }

    /** Sharding of {@code trained} (by name, in the optimizer's order) over {@code group}'s ranks. */
    public static ZeroSharding of(DistGroup group, Map<String, Tensor> trained) {
        Map<String, Long> sizes = new LinkedHashMap<>();
        trained.forEach((n, t) -> sizes.put(n, t.numel()));
        return new ZeroSharding(group, ZeroPartition.of(sizes, group.worldSize()), trained, GradientBuckets.DEFAULT_BUCKET_BYTES);
    }

    public ZeroPartition partition() {
        return partition;
    }

    /** Whether this rank owns (keeps the optimizer state of, and updates) the tensor {@code name}. */
    public boolean owns(String name) {
        return partition.ownerOf(name) == group.rank();
    }

    /** Broadcasts the collective after the optimizer step makes: every tensor from its owner, so all ranks hold the same weights. */
    public void broadcastParameters(long step) {
        long t0 = System.nanoTime();
        String what = String.format(Locale.ROOT, "broadcast of the sharded optimizer's updated weights of step %d", step);
        try (NoGradGuard ng = new NoGradGuard(); PointerScope scope = new PointerScope()) {
            for (Bucket b : buckets) {
                if (b.tensors.size() == 1) {   // alone: in place (parameters are contiguous leaves)
                    group.broadcast(List.of(b.tensors.get(0)), b.owner, what);
                    continue;
                }
                boolean mine = b.owner == group.rank();
                TensorVector flatParts = new TensorVector();
                long numel = 0;
                for (Tensor p : b.tensors) {
                    if (mine) flatParts.push_back(p.detach().reshape(-1));
                    numel += p.numel();
                }
                Tensor p0 = b.tensors.get(0);
                Tensor flat = mine ? torch.cat(flatParts) : torch.zeros(new long[] {numel}, Tensors.options(p0.scalar_type(), p0.device()));
                group.broadcast(List.of(flat), b.owner, what);
                if (mine) continue;
                long off = 0;
                for (Tensor p : b.tensors) {
                    p.detach().copy_(flat.narrow(0, off, p.numel()).view_as(p));
                    off += p.numel();
                }
            }
        }
        lastSeconds = (System.nanoTime() - t0) / 1e9;
    }

    /** Seconds the last {@link #broadcastParameters} took. */
    public double lastSeconds() {
        return lastSeconds;
    }

    /**
     * The optimizer state of every rank, on rank 0 (for the checkpoint, which stays the file plain data parallel writes).
     * Every rank must call it at the same point. {@code mine} is this rank's state (the keys of the tensors it owns);
     * {@code keys} all keys in the file's order, {@code tensorOf} the trained tensor a key belongs to (its owner sends
     * it, its shape receives it). On rank 0 the returned map holds every key (tensors received here are retained: call
     * {@link Gathered#close}); on the others it is empty.
     */
    public Gathered gatherToMain(Map<String, Tensor> mine, List<String> keys, Function<String, String> tensorOf) {
        Map<String, Tensor> out = new LinkedHashMap<>();
        List<Tensor> received = new ArrayList<>();
        try (NoGradGuard ng = new NoGradGuard()) {
            for (String k : keys) {
                try (PointerScope scope = new PointerScope()) {   // a received tensor lives past it on rank 0 only
                    int owner = partition.ownerOf(tensorOf.apply(k));
                    Tensor t = mine.get(k);
                    if (owner != group.rank()) {
                        t = torch.zeros_like(params.get(tensorOf.apply(k)));
                        if (group.isMain()) {
                            t.retainReference();
                            received.add(t);
                        }
                    } else if (t == null) {
                        throw new IllegalStateException("rank " + group.rank() + " owns " + k + " but has no such state");
                    }
                    group.broadcast(List.of(t), owner, "gather of the sharded optimizer state for the checkpoint");
                    if (group.isMain()) out.put(k, t);
                }
            }
        }
        return new Gathered(group.isMain() ? out : Map.of(), received);
    }

    /** Gathered state; closing releases what was received. */
    public record Gathered(Map<String, Tensor> state, List<Tensor> received) implements AutoCloseable {
        @Override
        public void close() {
            for (Tensor t : received) t.releaseReference();
        }
    }
}
