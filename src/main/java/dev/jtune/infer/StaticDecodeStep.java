package dev.jtune.infer;

import dev.jtune.model.CausalLM;
import dev.jtune.model.KvCache;
import dev.jtune.util.Tensors;
import org.bytedeco.javacpp.PointerScope;
import org.bytedeco.pytorch.Scalar;
import org.bytedeco.pytorch.Tensor;
import org.bytedeco.pytorch.global.torch.ScalarType;

/**
 * One decode step (one new token for each of B rows) whose tensor shapes and addresses never change from token to
 * token, so that on CUDA it can be captured once as a CUDA graph and replayed per token without launching its
 * ~10 kernels per layer one by one ({@link CudaGraph}); on the CPU, or when capture is not possible, the same step runs
 * eagerly (the fallback, and what the CPU tests check against the ordinary decode path).
 *
 * <p>Static buffers on the model's device: token ids (B, 1), positions (B, 1), cache slots (B,) and the key mask
 * (B, capacity); the step writes row b's key/value at its slot ({@link KvCache#writeAt}), marks the slot visible,
 * attends over the whole capacity under the mask, and leaves the logits in a static (B, V) buffer. Each call copies
 * the host's ids, positions and slots into the buffers, runs (or replays) the step and returns that buffer: read it
 * before the next call.
 *
 * <p>Replay conditions (checked on every call; otherwise the step runs eagerly, and says why in
 * {@link #fallbackReason}): the model on CUDA, not in training mode, the same adapters as at capture, no sliding window
 * shorter than the capacity (its mask depends on the length), every slot inside the capacity.
 */
public final class StaticDecodeStep implements AutoCloseable {
    private final CausalLM model;
    private final KvCache cache;
    private final int batch;
    private final int capacity;
    private final Tensor ids;         // (B, 1) int64
    private final Tensor positions;   // (B, 1) int64
    private final Tensor slots;       // (B,) int64
    private final Tensor keyValid;    // (B, capacity) bool: slots a query may see
    private final Tensor logits;      // (B, V) in the model's dtype
    private final Object adaptersAtCapture;
    private final boolean useGraph;
    private CudaGraph graph;
    private String captureFailure;
    private long replays;

    /**
     * @param keyValid (B, capacity) bool, true at the cache slots already filled with real tokens (the prompt's,
     *                 padding excluded); copied. Slots written by the steps become visible as they are written.
     * @param useGraph capture a CUDA graph on the first step when the conditions hold (false: always eager)
     */
    public StaticDecodeStep(CausalLM model, KvCache cache, Tensor keyValid, boolean useGraph) {
        this.model = model;
        this.cache = cache;
        this.batch = (int) keyValid.size(0);
        this.capacity = (int) keyValid.size(1);
        if (capacity != cache.capacity()) {
            throw new IllegalArgumentException("key mask of " + capacity + " slots for a cache of " + cache.capacity());
        }
        var device = model.device();
        try (PointerScope scope = new PointerScope()) {
            ids = keep(Tensors.longs(new long[batch]).view(batch, 1).to(device, ScalarType.Long));
            positions = keep(Tensors.longs(new long[batch]).view(batch, 1).to(device, ScalarType.Long));
            slots = keep(Tensors.longs(new long[batch]).to(device, ScalarType.Long));
            this.keyValid = keep(keyValid.to(device, ScalarType.Bool).clone());
            logits = keep(org.bytedeco.pytorch.global.torch.zeros(new long[] {batch, model.config().vocabSize()},
                    Tensors.options(model.dtype(), device)));
        }
        this.adaptersAtCapture = model.adapters();
        this.useGraph = useGraph;
    }

    private static Tensor keep(Tensor t) {
        t.retainReference();
        return t;
    }

    /**
     * Logits (B, V) for one new token per row: {@code tokens[b]} at position {@code positions[b]}, its key and value
     * stored in cache slot {@code slots[b]}. The returned tensor is this step's static buffer.
     */
    public Tensor step(long[] tokens, long[] positionIds, long[] slotIds) {
        if (tokens.length != batch || positionIds.length != batch || slotIds.length != batch) {
            throw new IllegalArgumentException("a step takes " + batch + " tokens, positions and slots; got "
                    + tokens.length + ", " + positionIds.length + ", " + slotIds.length);
        }
        for (long s : slotIds) {
            if (s < 0 || s >= capacity) throw new IllegalStateException("KV cache full: slot " + s + " outside " + capacity);
        }
        try (PointerScope scope = new PointerScope()) {
            ids.copy_(Tensors.longs(tokens).view(batch, 1));          // host to device into the static buffers
            positions.copy_(Tensors.longs(positionIds).view(batch, 1));
            slots.copy_(Tensors.longs(slotIds));
        }
        String blocker = replayBlocker();
        if (blocker != null) {
            body();
        } else if (graph == null) {
            // runs the body eagerly first (this token's step, and the warm-up capture needs), then captures it
            graph = CudaGraph.capture(model.device(), this::body);
            if (graph == null) captureFailure = "capture failed: " + CudaGraph.lastFailure();
        } else {
            graph.replay();
            replays++;
        }
        cache.advance(1);
        return logits;
    }

    /** The step itself: no host sync, no shape that depends on the length, every write into a static buffer. */
    private void body() {
        try (PointerScope scope = new PointerScope()) {
            keyValid.scatter_(1, slots.view(batch, 1), new Scalar(1));            // the new token sees itself
            cache.writeAt(slots);
            try {
                Tensor mask = keyValid.view(batch, 1, 1, capacity);                  // (B, 1, 1, capacity)
                Tensor hidden = model.hidden(ids, positions, mask, cache);          // (B, 1, D); advances the cache by 1
                logits.copy_(model.logits(hidden).select(1, 0));                    // (B, V)
            } finally {
                cache.writeAt(null);
            }
        }
        cache.advance(-1);   // hidden() advanced it; step() advances once per call, captured or not
    }

    /** Why a graph cannot be captured for this model at all, or null. */
    private String graphBlocker() {
        if (!useGraph) return "graphs off";
        if (!model.device().is_cuda()) return "not on CUDA";
        int window = model.config().slidingWindow();
        if (window > 0 && window < capacity) return "sliding window " + window + " < capacity " + capacity;
        return null;
    }

    /** Why this call may not capture or replay the graph, or null. */
    private String replayBlocker() {
        String b = graphBlocker();
        if (b != null) return b;
        if (captureFailure != null) return captureFailure;
        if (model.training()) return "model in training mode";
        if (model.adapters() != adaptersAtCapture) return "adapters changed since capture";
        return null;
    }

    /** Null while the graph path is taken (or about to be); else why the step runs eagerly. */
    public String fallbackReason() {
        return replayBlocker();
    }

    /** Steps served by replaying the captured graph. */
    public long replays() {
        return replays;
    }

    /** The static key mask (B, capacity): which slots the next query sees. */
    public Tensor keyValid() {
        return keyValid;
    }

    @Override
    public void close() {
        if (graph != null) graph.close();
        graph = null;
        for (Tensor t : new Tensor[] {ids, positions, slots, keyValid, logits}) t.releaseReference();
    }
}
