package dev.jtune.distributed;

import org.bytedeco.javacpp.PointerScope;
import org.bytedeco.pytorch.NoGradGuard;
import org.bytedeco.pytorch.Tensor;
import org.bytedeco.pytorch.TensorVector;
import org.bytedeco.pytorch.global.torch;
import org.bytedeco.pytorch.global.torch.ScalarType;

import java.util.List;
import java.util.Locale;

/**
 * The check that every rank stepped identically: each rank takes a fingerprint of its trained tensors (per tensor, the
 * float64 sum and sum of squares), rank 0's is broadcast, and every rank compares it with its own, bit for bit.
 * Identical weights give identical fingerprints; weights that drifted apart (a missed all-reduce, a rank that read other
 * data) almost surely do not. One pass over the weights at the end of a run.
 */
public final class WeightCheck {
    private WeightCheck() {}

    /** Returns the line the rank prints: the weights match rank 0's, or by how much the fingerprints differ. */
    public static String compare(DistGroup group, List<Tensor> trained) {
        try (NoGradGuard ng = new NoGradGuard(); PointerScope scope = new PointerScope()) {
            TensorVector parts = new TensorVector();
            for (Tensor p : trained) {
                Tensor d = p.detach().to(ScalarType.Double);
                parts.push_back(torch.stack(new TensorVector(d.sum(), d.mul(d).sum())));
            }
            Tensor mine = torch.cat(parts);
            Tensor main = mine.clone();
            group.broadcast(List.of(main), 0, "broadcast of rank 0's weight fingerprint");
            boolean same = torch.equal(mine, main);
            double diff = mine.sub(main).abs().max().item_double();
            return same
                    ? String.format(Locale.ROOT, "rank %d: trained weights identical to rank 0's (fingerprint of %d tensors)", group.rank(), trained.size())
                    : String.format(Locale.ROOT, "warning: rank %d: trained weights DIFFER from rank 0's (fingerprints differ by up to %.3g)", group.rank(), diff);
        }
    }
}
