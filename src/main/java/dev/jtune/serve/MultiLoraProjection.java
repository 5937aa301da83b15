package dev.jtune.serve;

import dev.jtune.model.ProjectionAdapter;
import dev.jtune.peft.LoraAdapter;
import dev.jtune.util.Tensors;
import org.bytedeco.pytorch.Tensor;
import org.bytedeco.pytorch.global.torch;

/**
 * One linear module's LoRA updates for several adapters served on one base, picked per batch row (as vLLM's
 * multi-LoRA serving does): rows of adapter k get {@code B_k A_k x}, base rows get nothing. The base weights are
 * never merged or copied; each adapter's A and B stay as they were loaded.
 *
 * <p>When all rows share an adapter the update runs on the whole batch; otherwise each adapter's rows are gathered
 * (index_select on dim 0 of x (B, T, in)), updated, and scattered into a zero (B, T, out) delta.
 */
final class MultiLoraProjection implements ProjectionAdapter {
    private final LoraAdapter[] byAdapter;     // index = adapter; null where that adapter leaves this module alone
    private final RowAdapters rows;
    private final long outFeatures;

    MultiLoraProjection(LoraAdapter[] byAdapter, RowAdapters rows) {
        this.byAdapter = byAdapter.clone();
        this.rows = rows;
        long out = -1;
        for (LoraAdapter a : byAdapter) if (a != null) out = a.b().size(0);
        if (out < 0) throw new IllegalArgumentException("no adapter for this module");
        this.outFeatures = out;
    }

    /** x (B, T, in) -> (B, T, out), or a 0-dim zero (broadcasts, adds nothing) when no row has an update here. */
    @Override
    public Tensor delta(Tensor x, boolean training) {
        int[] r = rows.rows();
        if (r.length != x.size(0)) throw new IllegalStateException("batch of " + x.size(0) + " rows, adapters set for " + r.length);
        if (rows.uniform()) {
            LoraAdapter a = r[0] < 0 ? null : byAdapter[r[0]];
            return a == null ? zero(x) : a.delta(x, false);
        }
        Tensor out = null;
        for (int k = 0; k < byAdapter.length; k++) {
            if (byAdapter[k] == null) continue;
            Tensor idx = rows.rowsOf(k);
            if (idx == null) continue;
            Tensor d = byAdapter[k].delta(x.index_select(0, idx), false);        // (n, T, out)
            if (out == null) {
                long[] shape = x.sizes().vec().get();
                shape[shape.length - 1] = outFeatures;
                out = torch.zeros(shape, Tensors.options(d.scalar_type(), d.device()));
            }
            out.index_copy_(0, idx, d);
        }
        return out == null ? zero(x) : out;
    }

    private static Tensor zero(Tensor x) {
        return torch.zeros(new long[0], Tensors.options(x.scalar_type(), x.device()));
    }

    /** The adapters' tensors belong to {@link ServedModels}, which closes each once. */
    @Override
    public void close() {}
}
