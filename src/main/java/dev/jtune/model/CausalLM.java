package dev.jtune.model;

import dev.jtune.kernels.Ops;
import dev.jtune.util.Tensors;
import org.bytedeco.pytorch.Device;
import org.bytedeco.pytorch.DoubleOptional;
import org.bytedeco.pytorch.Tensor;
import org.bytedeco.pytorch.TensorOptional;
import org.bytedeco.pytorch.global.torch;
import org.bytedeco.pytorch.global.torch.ScalarType;

import java.util.Collections;
import java.util.LinkedHashMap;
import java.util.Map;

/**
 * A decoder-only language model over LibTorch tensors: token ids in, next-token logits out.
 *
 * <p>Parameters live in one map under their Hugging Face names, so checkpoints map one to one; the
 * forward is plain functional LibTorch code (one readable class per family, shapes in comments), and
 * autograd follows it when parameters require gradients.
 *
 * <p>The forward reads as nanoGPT's: {@link #embed}, then {@link #numBlocks} decoder blocks ({@link #block}), then
 * {@link #finalNorm} and the output projection ({@link #logits}). Each block is a unit with everything it needs in
 * its arguments ({@link BlockContext}), so callers may run blocks one at a time.
 *
 * <p>The fused ops run under the kernel policy the model was built with ({@link #kernels}).
 */
public abstract class CausalLM implements AutoCloseable {
    protected final ModelConfig config;
    protected final Map<String, Tensor> params;
    protected final ScalarType dtype;
    protected final Device device;
    protected final Ops kernels;
    private final AutoCloseable weightSource;
    private Map<String, ProjectionAdapter> adapters = Map.of();
    private Map<String, FrozenLinear> frozenLinears = Map.of();
    private boolean training;
    private ModelDropout dropout;
    private double neftuneNoiseAlpha;
    private boolean closed;

    protected CausalLM(ModelConfig config, Map<String, Tensor> params, ScalarType dtype, Device device,
                       AutoCloseable weightSource, Ops kernels) {
        this.config = config;
        this.params = Collections.unmodifiableMap(new LinkedHashMap<>(params));
        this.dtype = dtype;
        this.device = device;
        this.weightSource = weightSource;
        this.kernels = java.util.Objects.requireNonNull(kernels, "kernels");
        this.dropout = ModelDropout.of(config);
    }

    public ModelConfig config() {
        return config;
    }

    /** Parameters by Hugging Face name, in checkpoint order (a tied lm_head is not listed); owned by the model ({@link #close}). */
    public Map<String, Tensor> parameters() {
        return params;
    }

    public ScalarType dtype() {
        return dtype;
    }

    public Device device() {
        return device;
    }

    /** The kernel policy the fused ops (and the loss through {@link #outputWeight}) run under. */
    public Ops kernels() {
        return kernels;
    }

    public long parameterCount() {
        long n = 0;
        for (Tensor t : params.values()) n += t.numel();
        for (FrozenLinear f : frozenLinears.values()) n += f.parameterCount();
        return n;
    }

    /**
     * Linear modules computed by a {@link FrozenLinear} instead of their {@code .weight}/{@code .bias} parameters
     * (a 4-bit base: those parameters are then absent from {@link #parameters()}), by module name
     * ({@code model.layers.0.mlp.up_proj}). Set once by the loader that built the model.
     */
    public void setFrozenLinears(Map<String, ? extends FrozenLinear> frozen) {
        this.frozenLinears = Map.copyOf(frozen);
    }

    public Map<String, FrozenLinear> frozenLinears() {
        return frozenLinears;
    }

    /** The module's frozen linear, or null when it is computed from its parameters. */
    protected FrozenLinear frozenLinear(String module) {
        return frozenLinears.isEmpty() ? null : frozenLinears.get(module);
    }

    /**
     * Logits (B, T, V) for {@code inputIds} (B, T).
     *
     * @param positionIds   (B, T) positions, or null for {@code cache.length() .. +T}
     * @param attentionMask bool (B, 1, T, S) or (T, S), true where a query may attend a key; or null for
     *                      plain causal attention (S = cached + T)
     * @param cache         past keys/values, appended to and advanced; or null
     */
    public Tensor forward(Tensor inputIds, Tensor positionIds, Tensor attentionMask, KvCache cache) {
        return logits(hidden(inputIds, positionIds, attentionMask, cache));
    }

    public Tensor forward(Tensor inputIds) {
        return forward(inputIds, null, null, null);
    }

    /** Final hidden states (B, T, D), after the last norm: embed, every block in order, final norm. */
    public Tensor hidden(Tensor inputIds, Tensor positionIds, Tensor attentionMask, KvCache cache) {
        BlockContext ctx = context(inputIds, positionIds, attentionMask, cache);
        Tensor x = embed(inputIds, ctx);                                    // (B, T, D)
        for (int i = 0; i < numBlocks(); i++) x = block(i, x, ctx);         // (B, T, D)
        if (cache != null) cache.advance(ctx.length());
        return finalNorm(x);
    }

    /**
     * What the blocks of one pass over {@code inputIds} (B, T) share; the arguments are those of {@link #forward}.
     * A caller running blocks itself advances the cache by T after the last block ({@link KvCache#advance}).
     */
    public BlockContext context(Tensor inputIds, Tensor positionIds, Tensor attentionMask, KvCache cache) {
        long past = cache == null ? 0 : cache.length();
        if (positionIds == null) positionIds = defaultPositions(inputIds, cache);
        Tensor[] cs = rotary(positionIds);
        return new BlockContext(inputIds.size(0), inputIds.size(1), past, positionIds, attentionMask, cache,
                cs == null ? null : cs[0], cs == null ? null : cs[1]);
    }

    /** The rotary tables (cos, sin), each (B, 1, T, hd), for positions (B, T); null for models without RoPE. */
    protected Tensor[] rotary(Tensor positionIds) {
        return null;
    }

    /** The number of decoder blocks ({@code num_hidden_layers}). */
    public int numBlocks() {
        return config.numLayers();
    }

    /** Token (and, for GPT-2, position) embeddings: ids (B, T) -> (B, T, D). */
    public abstract Tensor embed(Tensor inputIds, BlockContext ctx);

    /**
     * Decoder block {@code i} (0-based): (B, T, D) -> (B, T, D), pre-norm attention then pre-norm MLP, each added to
     * the residual stream. With a cache in {@code ctx} it appends this block's keys and values.
     */
    public abstract Tensor block(int i, Tensor x, BlockContext ctx);

    /** The norm after the last block: (B, T, D) -> (B, T, D). */
    public abstract Tensor finalNorm(Tensor x);

    /** Output projection: (B, T, D) -> (B, T, V). */
    public Tensor logits(Tensor hidden) {
        return kernels.linear(hidden, outputWeight(), null);
    }

    /** The output projection's weight (V, D): logits = hidden · W^T, no bias (the token embedding when tied). */
    public abstract Tensor outputWeight();

    public KvCache newCache(long batch, int capacity) {
        return new KvCache(config.numLayers(), batch, config.numKvHeads(), capacity, config.headDim(), dtype, device);
    }

    /**
     * Attaches LoRA adapters by module name (e.g. {@code model.layers.0.self_attn.q_proj}); each adds its
     * low-rank update to that projection's output. An empty map detaches them. The model owns what is attached
     * when it closes ({@link #close} closes them); detached adapters are the caller's to close.
     */
    public void setAdapters(Map<String, ? extends ProjectionAdapter> adapters) {
        this.adapters = Map.copyOf(adapters);
    }

    public Map<String, ProjectionAdapter> adapters() {
        return adapters;
    }

    /**
     * Training mode turns on the model's dropout ({@link #setDropout}), adapter dropout and NEFTune noise
     * ({@link #setNeftuneNoiseAlpha}); evaluation and generation run with all of them off.
     */
    public void setTraining(boolean training) {
        this.training = training;
    }

    public boolean training() {
        return training;
    }

    /** The model's own dropout in training mode; config.json's (with transformers' defaults) until set. */
    public void setDropout(ModelDropout dropout) {
        this.dropout = java.util.Objects.requireNonNull(dropout);
    }

    public ModelDropout dropout() {
        return dropout;
    }

    /**
     * NEFTune ({@code training.neftune_noise_alpha}): in training mode the token embeddings (B, T, D) get uniform noise
     * U(-m, m) with m = alpha / sqrt(T·D), drawn from the default generator of their device, as transformers'
     * {@code neftune_post_forward_hook} does on the input embedding module (T is the padded length of the batch, not
     * the count of real tokens). 0 = off.
     */
    public void setNeftuneNoiseAlpha(double alpha) {
        this.neftuneNoiseAlpha = alpha;
    }

    public double neftuneNoiseAlpha() {
        return neftuneNoiseAlpha;
    }

    /**
     * The NEFTune magnitude for embeddings of length T and width D, computed as transformers computes it, to the bit:
     * {@code alpha / torch.sqrt(torch.tensor(T * D))} takes the square root of an integer tensor in float32, and a
     * number divided by a tensor is {@code tensor.reciprocal() * number} (torch's {@code __rdiv__}), in float32.
     */
    public static double neftuneMagnitude(double alpha, long t, long d) {
        float sqrt = (float) Math.sqrt((float) (t * d));
        return (1f / sqrt) * (float) alpha;
    }

    /** Token embeddings (B, T, D) plus NEFTune noise in training mode (the embedding output's dtype), else as they are. */
    protected Tensor withNeftuneNoise(Tensor tokenEmbeddings) {
        if (!training || neftuneNoiseAlpha <= 0) return tokenEmbeddings;
        double m = neftuneMagnitude(neftuneNoiseAlpha, tokenEmbeddings.size(1), tokenEmbeddings.size(2));
        return tokenEmbeddings.add(torch.empty_like(tokenEmbeddings).uniform_(-m, m, new org.bytedeco.pytorch.GeneratorOptional()));
    }

    /** Dropout with probability p in training mode (scaled by 1 / (1 - p), as torch.nn.Dropout), identity otherwise. */
    protected Tensor dropout(Tensor x, double p) {
        return training && p > 0 ? torch.dropout(x, p, true) : x;
    }

    /** {@code y} plus the adapter's update of {@code x} when module {@code module} has one. */
    protected Tensor withAdapter(String module, Tensor x, Tensor y) {
        ProjectionAdapter a = adapters.get(module);
        return a == null ? y : y.add(a.delta(x, training));
    }

    protected Tensor p(String name) {
        Tensor t = params.get(name);
        if (t == null) throw new IllegalStateException("no parameter " + name);
        return t;
    }

    /** Null-safe optional for LibTorch calls that take an optional bias. */
    protected static TensorOptional opt(Tensor t) {
        return t == null ? new TensorOptional() : new TensorOptional(t);
    }

    protected Tensor optionalParam(String name) {
        return params.get(name);
    }

    protected Tensor defaultPositions(Tensor inputIds, KvCache cache) {
        long b = inputIds.size(0), t = inputIds.size(1);
        long start = cache == null ? 0 : cache.length();
        return torch.arange(new org.bytedeco.pytorch.Scalar(start), new org.bytedeco.pytorch.Scalar(start + t),
                Tensors.options(ScalarType.Long, inputIds.device())).unsqueeze(0).expand(b, t);
    }

    /**
     * Scaled dot-product attention over q (B, H, T, hd) and k, v (B, KV, S, hd) with S = past + T.
     * Uses LibTorch's fused kernel with its causal flag when that is exact (no past, no window), and an
     * explicit boolean mask otherwise; a decode step (one query per row, no dropout) goes through the op layer's
     * {@link Ops#oneQueryAttention} (jtune's CPU kernel on fp32 CPU tensors). Grouped-query attention is handled by SDPA's enable_gqa. In training mode the
     * attention probabilities get the model's attention dropout (SDPA's dropout_p, drawn from the default generator).
     *
     * <p>A sliding window (Mistral's {@code sliding_window} W) follows transformers' masking_utils: query i sees
     * key j iff {@code j <= i} and {@code j > i - W} (absolute indices in the sequence, cache included), on top of
     * any given mask.
     */
    protected Tensor sdpa(Tensor q, Tensor k, Tensor v, Tensor mask, long past, double scale) {
        long t = q.size(2), s = k.size(2);
        double p = training ? dropout.attention() : 0.0;   // attention dropout: training mode only
        boolean gqa = q.size(1) != k.size(1);
        int window = config.slidingWindow();
        if (mask != null && window > 0 && s > window) {
            // transformers applies the window on top of a padding/packing mask too (masking_utils: and_masks)
            mask = mask.logical_and(causalMask(t, past, window, q.device()));
        } else if (mask == null) {
            boolean windowBites = window > 0 && s > window;
            if (past == 0 && !windowBites) {
                return torch.scaled_dot_product_attention(q, k, v, new TensorOptional(), p, true, new DoubleOptional(scale), gqa);
            }
            if (t == 1 && !windowBites) {   // one new token sees everything cached
                if (p == 0) return kernels.oneQueryAttention(q, k, v, null, scale);
                return torch.scaled_dot_product_attention(q, k, v, new TensorOptional(), p, false, new DoubleOptional(scale), gqa);
            }
            mask = causalMask(t, past, window, q.device());
        }
        if (t == 1 && p == 0) return kernels.oneQueryAttention(q, k, v, mask, scale);   // a decode step (batched: padding masked)
        return torch.scaled_dot_product_attention(q, k, v, new TensorOptional(mask), p, false, new DoubleOptional(scale), gqa);
    }

    /** (T, past+T) bool: query i (at index past+i) sees key j iff j <= past+i and past+i - j < window (when window > 0). */
    static Tensor causalMask(long t, long past, int window, Device device) {
        Tensor qpos = torch.arange(new org.bytedeco.pytorch.Scalar(past), new org.bytedeco.pytorch.Scalar(past + t),
                Tensors.options(ScalarType.Long, device)).unsqueeze(1);
        Tensor kpos = torch.arange(new org.bytedeco.pytorch.Scalar(past + t), Tensors.options(ScalarType.Long, device)).unsqueeze(0);
        Tensor diff = qpos.sub(kpos);                                 // (T, S): how far back the key is
        Tensor mask = diff.ge(new org.bytedeco.pytorch.Scalar(0));
        if (window > 0) mask = mask.logical_and(diff.lt(new org.bytedeco.pytorch.Scalar(window)));
        return mask;
    }

    /**
     * Frees the parameters (and the adapters attached), then closes the weight files. The model owns its parameter
     * tensors: whoever built them retained each once past its PointerScope (ModelLoader, ModelInit, Trainable), and
     * this releases that reference, so the native memory goes now, not when the garbage collector finds the Java
     * objects (JavaCPP collects under host memory pressure only, never GPU pressure). Views of the mapped files
     * (zero-copy on the CPU) go before the mapping. The model and its parameter tensors must not be used after.
     * Idempotent.
     */
    @Override
    public void close() {
        if (closed) return;
        closed = true;
        for (ProjectionAdapter a : adapters.values()) a.close();
        adapters = Map.of();
        for (FrozenLinear f : frozenLinears.values()) f.close();   // 4-bit layers hold their own tensors
        frozenLinears = Map.of();
        dev.jtune.kernels.CpuLinear.forget(params.values());   // reordered copies of a decoding session still open
        // a tied head is the embedding's own Tensor object: release each object once
        java.util.Set<Tensor> released = java.util.Collections.newSetFromMap(new java.util.IdentityHashMap<>());
        for (Tensor t : params.values()) if (released.add(t)) t.releaseReference();
        if (weightSource != null) {
            try {
                weightSource.close();
            } catch (Exception e) {
                throw new IllegalStateException(e);
            }
        }
    }
}
