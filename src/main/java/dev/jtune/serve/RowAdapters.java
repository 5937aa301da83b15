package dev.jtune.serve;

import dev.jtune.util.Tensors;
import org.bytedeco.pytorch.Device;
import org.bytedeco.pytorch.Tensor;
import org.bytedeco.pytorch.global.torch.ScalarType;

import java.util.Arrays;

/**
 * Which adapter each row of the batch now in the forward uses: -1 for the base model, else an index into the served
 * adapters. Set by the batcher before each forward, read by every {@link MultiLoraProjection}; used on the batcher's
 * thread only.
 */
final class RowAdapters {
    private final Device device;
    private int[] rows = new int[0];
    private Tensor[] indexByAdapter = new Tensor[0];   // lazily built (n,) long row indices per adapter, for this batch
    private boolean uniform;

    RowAdapters(Device device) {
        this.device = device;
    }

    /**
     * Rows of the next forward, each an adapter index or -1. Call it inside the forward's PointerScope: the index
     * tensors built for the batch belong to that scope.
     */
    void set(int[] adapterPerRow) {
        rows = adapterPerRow.clone();
        int max = -1;
        for (int a : rows) max = Math.max(max, a);
        indexByAdapter = new Tensor[max + 1];
        uniform = Arrays.stream(rows).distinct().count() <= 1;
    }

    int[] rows() {
        return rows;
    }

    /** Every row uses the same adapter (or the base): the adapter then runs on the whole batch, no gather. */
    boolean uniform() {
        return uniform;
    }

    /** (n,) long: the rows that use adapter {@code adapter}, on the model's device; null when none does. */
    Tensor rowsOf(int adapter) {
        if (adapter >= indexByAdapter.length) return null;
        if (indexByAdapter[adapter] == null) {
            long[] idx = indices(adapter);
            if (idx.length == 0) return null;
            indexByAdapter[adapter] = Tensors.longs(idx).to(device, ScalarType.Long);
        }
        return indexByAdapter[adapter];
    }

    private long[] indices(int adapter) {
        return java.util.stream.IntStream.range(0, rows.length).filter(i -> rows[i] == adapter).mapToLong(i -> i).toArray();
    }
}
