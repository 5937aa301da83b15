package dev.jtune.model.llama;

import dev.jtune.kernels.Ops;
import dev.jtune.model.BlockContext;
import dev.jtune.model.CausalLM;
import dev.jtune.model.FrozenLinear;
import dev.jtune.model.ModelConfig;
import dev.jtune.model.Rope;
import org.bytedeco.pytorch.Device;
import org.bytedeco.pytorch.Tensor;
import org.bytedeco.pytorch.global.torch;
import org.bytedeco.pytorch.global.torch.ScalarType;

import java.util.Map;

/**
 * Llama, Mistral, Qwen2 and Qwen3: pre-norm decoder blocks with RMSNorm, rotary attention (grouped
 * query), and a SwiGLU MLP. The families differ only in config flags: q/k/v biases (Qwen2), per-head
 * q/k RMSNorm before RoPE (Qwen3), an explicit head_dim, Llama 3 frequency scaling, a sliding window.
 * Mirrors transformers' modeling_llama.py; B = batch, T = new tokens, S = past + T, D = hidden, H = heads,
 * KV = key/value heads, hd = head_dim, I = intermediate. RMSNorm, RoPE and SwiGLU go through the op layer
 * ({@link Ops}, under the model's kernel policy): fused CUDA kernels on the GPU, transformers' formulas in
 * LibTorch elsewhere. In training mode the attention probabilities get config.json's {@code attention_dropout} (the
 * family's only dropout; see {@link dev.jtune.model.ModelDropout}).
 */
public final class LlamaModel extends CausalLM {
    private final Rope rope;
    private final Tensor embedTokens;   // (V, D)
    private final Tensor lmHead;        // (V, D), the embedding itself when tied

    public LlamaModel(ModelConfig config, Map<String, Tensor> params, ScalarType dtype, Device device, AutoCloseable source,
                      Ops kernels) {
        super(config, params, dtype, device, source, kernels);
        this.rope = new Rope(config);
        this.embedTokens = p("model.embed_tokens.weight");
        this.lmHead = config.tied() ? embedTokens : p("lm_head.weight");
    }

    @Override
    protected Tensor[] rotary(Tensor positionIds) {
        return rope.cosSin(positionIds, dtype);                                     // each (B, 1, T, hd)
    }

    @Override
    public Tensor embed(Tensor inputIds, BlockContext ctx) {
        return withNeftuneNoise(torch.embedding(embedTokens, inputIds));            // (B, T, D)
    }

    /** x + attention(norm(x)), then x + mlp(norm(x)): (B, T, D) -> (B, T, D). */
    @Override
    public Tensor block(int i, Tensor x, BlockContext ctx) {
        String pre = "model.layers." + i + ".";
        double eps = config.normEps();
        x = x.add(attention(i, kernels.rmsNorm(x, p(pre + "input_layernorm.weight"), eps), ctx));
        return x.add(mlp(i, kernels.rmsNorm(x, p(pre + "post_attention_layernorm.weight"), eps)));
    }

    /** Self-attention of block i on its normed input n (B, T, D) -> (B, T, D); appends to the cache when there is one. */
    private Tensor attention(int i, Tensor n, BlockContext ctx) {
        String pre = "model.layers." + i + ".self_attn.";
        long b = ctx.batch(), t = ctx.length();
        int h = config.numHeads(), kvh = config.numKvHeads(), hd = config.headDim();
        Tensor[] qkv = linears(n, pre + "q_proj", pre + "k_proj", pre + "v_proj");
        Tensor q = qkv[0].view(b, t, h, hd);                                         // (B, T, H, hd)
        Tensor k = qkv[1].view(b, t, kvh, hd);                                       // (B, T, KV, hd)
        Tensor v = qkv[2].view(b, t, kvh, hd);
        if (config.qkNorm()) {                                                       // Qwen3: per head, before RoPE
            q = kernels.rmsNorm(q, p(pre + "q_norm.weight"), config.normEps());
            k = kernels.rmsNorm(k, p(pre + "k_norm.weight"), config.normEps());
        }
        // the kernel path rotates in place: q and k are fresh projections nothing else holds
        q = kernels.rope(q.transpose(1, 2), ctx.cos(), ctx.sin());                  // (B, H, T, hd)
        k = kernels.rope(k.transpose(1, 2), ctx.cos(), ctx.sin());                  // (B, KV, T, hd)
        v = v.transpose(1, 2);
        if (ctx.cache() != null) {
            Tensor[] kv = ctx.cache().append(i, k, v);                               // (B, KV, S, hd)
            k = kv[0];
            v = kv[1];
        }
        Tensor o = sdpa(q, k, v, ctx.attentionMask(), ctx.past(), 1.0 / Math.sqrt(hd));   // (B, H, T, hd)
        o = o.transpose(1, 2).reshape(b, t, (long) h * hd);                          // (B, T, H·hd)
        return linear(o, pre + "o_proj");                                            // (B, T, D)
    }

    /** down(silu(gate(n)) * up(n)): (B, T, D) -> (B, T, I) -> (B, T, D). */
    private Tensor mlp(int i, Tensor n) {
        String pre = "model.layers." + i + ".mlp.";
        Tensor[] gateUp = linears(n, pre + "gate_proj", pre + "up_proj");          // each (B, T, I)
        Tensor act = kernels.swiglu(gateUp[0], gateUp[1]);                           // (B, T, I)
        return linear(act, pre + "down_proj");
    }

    @Override
    public Tensor finalNorm(Tensor x) {
        return kernels.rmsNorm(x, p("model.norm.weight"), config.normEps());
    }

    @Override
    public Tensor outputWeight() {
        return lmHead;
    }

    /**
     * The projections of one input (q/k/v, gate/up) in one pass over their weights ({@link Ops#linears}), each with
     * its adapter; one by one when any of them is a 4-bit frozen linear.
     */
    private Tensor[] linears(Tensor x, String... prefixes) {
        Tensor[] out = new Tensor[prefixes.length];
        for (String prefix : prefixes) {
            if (frozenLinear(prefix) != null) {
                for (int j = 0; j < prefixes.length; j++) out[j] = linear(x, prefixes[j]);
                return out;
            }
        }
        Tensor[] w = new Tensor[prefixes.length], bias = new Tensor[prefixes.length];
        for (int j = 0; j < prefixes.length; j++) {
            w[j] = p(prefixes[j] + ".weight");
            bias[j] = optionalParam(prefixes[j] + ".bias");
        }
        Tensor[] y = kernels.linears(x, w, bias);
        for (int j = 0; j < prefixes.length; j++) out[j] = withAdapter(prefixes[j], x, y[j]);
        return out;
    }

    private Tensor linear(Tensor x, String prefix) {
        FrozenLinear f = frozenLinear(prefix);   // a 4-bit base
        return withAdapter(prefix, x, f != null ? f.apply(x) : kernels.linear(x, p(prefix + ".weight"), optionalParam(prefix + ".bias")));
    }
}
