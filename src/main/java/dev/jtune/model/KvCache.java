package dev.jtune.model;

import org.bytedeco.pytorch.Device;
import org.bytedeco.pytorch.Tensor;
import org.bytedeco.pytorch.global.torch;
import org.bytedeco.pytorch.global.torch.ScalarType;

import dev.jtune.util.Tensors;

/**
 * Keys and values of past positions, preallocated to {@code capacity} positions so that decoding one
 * token writes in place instead of concatenating. Per layer: (B, kvHeads, capacity, headDim).
 */
public final class KvCache implements AutoCloseable {
    private final Tensor[] keys;
    private final Tensor[] values;
    private final int capacity;
    private int length;            // positions filled so far (same for every layer after a forward)
    private Tensor slots;          // (B,) int64 on the cache's device: static-shape mode (writeAt), or null

    public KvCache(int layers, long batch, long kvHeads, int capacity, long headDim, ScalarType dtype, Device device) {
        this.keys = new Tensor[layers];
        this.values = new Tensor[layers];
        this.capacity = capacity;
        for (int i = 0; i < layers; i++) {
            keys[i] = torch.zeros(new long[] {batch, kvHeads, capacity, headDim}, Tensors.options(dtype, device));
            values[i] = torch.zeros(new long[] {batch, kvHeads, capacity, headDim}, Tensors.options(dtype, device));
            keys[i].retainReference();
            values[i].retainReference();
        }
    }

    /** Positions already cached: the offset of the tokens now being fed. */
    public int length() {
        return length;
    }

    public int capacity() {
        return capacity;
    }

    /**
     * Stores k, v (B, kvHeads, T, headDim) of layer {@code layer} after the cached positions and returns
     * views of everything cached so far, (B, kvHeads, length + T, headDim).
     */
    public Tensor[] append(int layer, Tensor k, Tensor v) {
        if (slots != null) return writeSlots(layer, k, v);
        long t = k.size(2);
        if (length + t > capacity) {
            throw new IllegalStateException("KV cache full: " + length + " + " + t + " > " + capacity);
        }
        keys[layer].narrow(2, length, t).copy_(k);
        values[layer].narrow(2, length, t).copy_(v);
        return new Tensor[] {keys[layer].narrow(2, 0, length + t), values[layer].narrow(2, 0, length + t)};
    }

    /**
     * Views of everything cached in layer {@code layer}: keys and values, each (B, kvHeads, length, headDim). Lets a
     * server keep one cache per request and assemble a batch from them between decode steps (dev.jtune.serve).
     */
    public Tensor[] cached(int layer) {
        return new Tensor[] {keys[layer].narrow(2, 0, length), values[layer].narrow(2, 0, length)};
    }

    /**
     * Static-shape mode, for a decode step whose shapes must not change from token to token (a captured CUDA graph,
     * {@link dev.jtune.infer.StaticDecodeStep}): while set, {@link #append} takes one token per row (T = 1) and writes
     * row b's key and value at slot {@code slots[b]}, read on the device (no host sync), and returns the whole cache,
     * (B, kvHeads, capacity, headDim), so attention must mask the slots not yet written. {@code null} returns to
     * appending after {@link #length}. The caller keeps {@code slots} alive while set.
     */
    public void writeAt(Tensor slots) {
        this.slots = slots;
    }

    private Tensor[] writeSlots(int layer, Tensor k, Tensor v) {
        long b = k.size(0), kvh = k.size(1), hd = k.size(3);
        if (k.size(2) != 1) throw new IllegalStateException("KV cache in slot mode takes one token per row, got " + k.size(2));
        Tensor index = slots.view(b, 1, 1, 1).expand(b, kvh, 1, hd);     // (B, KV, 1, hd): row b's slot everywhere
        keys[layer].scatter_(2, index, k);
        values[layer].scatter_(2, index, v);
        return new Tensor[] {keys[layer], values[layer]};
    }

    /** Frees the cached tensors now rather than when the garbage collector gets to them (they are large). */
    @Override
    public void close() {
        for (int i = 0; i < keys.length; i++) {
            if (keys[i] != null) keys[i].releaseReference();
            if (values[i] != null) values[i].releaseReference();
            keys[i] = values[i] = null;
        }
    }

    /** Called by the model once all layers have appended {@code t} positions. */
    public void advance(long t) {
        length += (int) t;
    }
}
