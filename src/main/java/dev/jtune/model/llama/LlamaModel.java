package dev.jtune.model.llama;

import dev.jtune.kernels.Ops;
import dev.jtune.model.CausalLM;
import dev.jtune.model.KvCache;
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
 * Mirrors transformers' modeling_llama.py; D = hidden, H = heads, KV = key/value heads, hd = head_dim,
 * I = intermediate. RMSNorm, RoPE and SwiGLU go through the op layer ({@link Ops}): fused CUDA kernels on
 * the GPU, transformers' formulas in LibTorch elsewhere.
 */
public final class LlamaModel extends CausalLM {
    private final Rope rope;
    private final Tensor embed;     // (V, D)
    private final Tensor lmHead;    // (V, D), the embedding itself when tied

    public LlamaModel(ModelConfig config, Map<String, Tensor> params, ScalarType dtype, Device device, AutoCloseable source) {
        super(config, params, dtype, device, source);
        this.rope = new Rope(config);
        this.embed = p("model.embed_tokens.weight");
        this.lmHead = config.tied() ? embed : p("lm_head.weight");
    }

    @Override
    public Tensor hidden(Tensor inputIds, Tensor positionIds, Tensor attentionMask, KvCache cache) {
        long b = inputIds.size(0), t = inputIds.size(1);
        long past = cache == null ? 0 : cache.length();
        if (positionIds == null) positionIds = defaultPositions(inputIds, cache);
        Tensor[] cs = rope.cosSin(positionIds, dtype);                   // each (B, 1, T, hd)
        Tensor x = torch.embedding(embed, inputIds);                    // (B, T, D)
        int h = config.numHeads(), kvh = config.numKvHeads(), hd = config.headDim();
        double scale = 1.0 / Math.sqrt(hd), eps = config.normEps();
        for (int i = 0; i < config.numLayers(); i++) {
            String pre = "model.layers." + i + ".";
            // --- attention ---
            Tensor n = Ops.rmsNorm(x, p(pre + "input_layernorm.weight"), eps);
            Tensor q = linear(n, pre + "self_attn.q_proj").view(b, t, h, hd);       // (B, T, H, hd)
            Tensor k = linear(n, pre + "self_attn.k_proj").view(b, t, kvh, hd);
            Tensor v = linear(n, pre + "self_attn.v_proj").view(b, t, kvh, hd);
            if (config.qkNorm()) {                                                   // Qwen3: per head, before RoPE
                q = Ops.rmsNorm(q, p(pre + "self_attn.q_norm.weight"), eps);
                k = Ops.rmsNorm(k, p(pre + "self_attn.k_norm.weight"), eps);
            }
            // the kernel path rotates in place: q and k are fresh projections nothing else holds
            q = Ops.rope(q.transpose(1, 2), cs[0], cs[1]);                           // (B, H, T, hd)
            k = Ops.rope(k.transpose(1, 2), cs[0], cs[1]);                           // (B, KV, T, hd)
            v = v.transpose(1, 2);
            if (cache != null) {
                Tensor[] kv = cache.append(i, k, v);                                 // (B, KV, past+T, hd)
                k = kv[0];
                v = kv[1];
            }
            Tensor o = attention(q, k, v, attentionMask, past, scale);              // (B, H, T, hd)
            o = o.transpose(1, 2).reshape(b, t, (long) h * hd);
            x = x.add(linear(o, pre + "self_attn.o_proj"));
            // --- MLP: down(silu(gate(x)) * up(x)) ---
            n = Ops.rmsNorm(x, p(pre + "post_attention_layernorm.weight"), eps);
            Tensor act = Ops.swiglu(linear(n, pre + "mlp.gate_proj"), linear(n, pre + "mlp.up_proj"));   // (B, T, I)
            x = x.add(linear(act, pre + "mlp.down_proj"));
        }
        if (cache != null) cache.advance(t);
        return Ops.rmsNorm(x, p("model.norm.weight"), eps);
    }

    @Override
    public Tensor outputWeight() {
        return lmHead;
    }

    private Tensor linear(Tensor x, String prefix) {
        return withAdapter(prefix, x, torch.linear(x, p(prefix + ".weight"), opt(optionalParam(prefix + ".bias"))));
    }
}
