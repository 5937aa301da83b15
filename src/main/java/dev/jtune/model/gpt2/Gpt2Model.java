package dev.jtune.model.gpt2;

import dev.jtune.kernels.Ops;
import dev.jtune.model.BlockContext;
import dev.jtune.model.CausalLM;
import dev.jtune.model.FrozenLinear;
import dev.jtune.model.ModelConfig;
import dev.jtune.util.UserError;
import org.bytedeco.pytorch.Device;
import org.bytedeco.pytorch.Tensor;
import org.bytedeco.pytorch.TensorOptional;
import org.bytedeco.pytorch.global.torch;
import org.bytedeco.pytorch.global.torch.ScalarType;

import java.util.Map;

/**
 * GPT-2: learned position embeddings, pre-norm blocks with LayerNorm, fused q/k/v projection, GELU
 * (tanh approximation, "gelu_new") MLP, and an output head tied to the token embedding. Weights use
 * the Conv1D layout (in, out), so projections multiply by the weight rather than its transpose.
 * Mirrors transformers' modeling_gpt2.py (and nanoGPT's model.py); B = batch, T = new tokens, S = past + T,
 * D = n_embd, H = n_head, hd = D / H. GPT-2 uses none of the fused ops, so the kernel policy changes nothing here.
 * In training mode, transformers' three dropouts: {@code embd_pdrop} on the embeddings, {@code attn_pdrop} on the attention
 * probabilities, {@code resid_pdrop} on the attention and MLP outputs (see {@link dev.jtune.model.ModelDropout}).
 */
public final class Gpt2Model extends CausalLM {
    private final Tensor wte;   // (V, D)
    private final Tensor wpe;   // (P, D)
    private final Tensor lmHead;

    public Gpt2Model(ModelConfig config, Map<String, Tensor> params, ScalarType dtype, Device device, AutoCloseable source,
                     Ops kernels) {
        super(config, params, dtype, device, source, kernels);
        this.wte = p("transformer.wte.weight");
        this.wpe = p("transformer.wpe.weight");
        this.lmHead = config.tied() ? wte : p("lm_head.weight");
    }

    @Override
    public Tensor embed(Tensor inputIds, BlockContext ctx) {
        long end = ctx.past() + ctx.length();
        if (end > config.maxPositions()) {
            throw new UserError("sequence of " + end + " tokens is longer than the model's n_positions (" + config.maxPositions() + ")");
        }
        Tensor tokens = withNeftuneNoise(torch.embedding(wte, inputIds));                       // (B, T, D)
        return dropout(tokens.add(torch.embedding(wpe, ctx.positionIds())), dropout().embedding());   // embd_pdrop
    }

    /** x + attn(ln_1(x)), then x + mlp(ln_2(x)): (B, T, D) -> (B, T, D). */
    @Override
    public Tensor block(int i, Tensor x, BlockContext ctx) {
        String pre = "transformer.h." + i + ".";
        x = x.add(attention(i, layerNorm(x, pre + "ln_1"), ctx));
        return x.add(mlp(i, layerNorm(x, pre + "ln_2")));
    }

    /** Self-attention of block i on its normed input n (B, T, D) -> (B, T, D); appends to the cache when there is one. */
    private Tensor attention(int i, Tensor n, BlockContext ctx) {
        String pre = "transformer.h." + i + ".attn.";
        long b = ctx.batch(), t = ctx.length(), d = config.hiddenSize();
        int h = config.numHeads(), hd = config.headDim();
        Tensor qkv = conv1d(n, pre + "c_attn");                                      // (B, T, 3D)
        Tensor q = qkv.narrow(-1, 0, d).view(b, t, h, hd).transpose(1, 2);          // (B, H, T, hd)
        Tensor k = qkv.narrow(-1, d, d).view(b, t, h, hd).transpose(1, 2);
        Tensor v = qkv.narrow(-1, 2 * d, d).view(b, t, h, hd).transpose(1, 2);
        if (ctx.cache() != null) {
            Tensor[] kv = ctx.cache().append(i, k, v);                               // (B, H, S, hd)
            k = kv[0];
            v = kv[1];
        }
        double scale = 1.0 / Math.sqrt(hd);
        if (config.scaleAttnByInverseLayerIdx()) scale /= (i + 1);
        Tensor o = sdpa(q, k, v, ctx.attentionMask(), ctx.past(), scale).transpose(1, 2).reshape(b, t, d);   // (B, T, D)
        return dropout(conv1d(o, pre + "c_proj"), dropout().residual());             // resid_pdrop
    }

    /** c_proj(gelu(c_fc(n))): (B, T, D) -> (B, T, 4D) -> (B, T, D). */
    private Tensor mlp(int i, Tensor n) {
        String pre = "transformer.h." + i + ".mlp.";
        Tensor f = conv1d(n, pre + "c_fc");
        f = config.hiddenAct().equals("gelu") ? torch.gelu(f) : torch.gelu(f, "tanh");
        return dropout(conv1d(f, pre + "c_proj"), dropout().residual());             // resid_pdrop
    }

    @Override
    public Tensor finalNorm(Tensor x) {
        return layerNorm(x, "transformer.ln_f");
    }

    @Override
    public Tensor outputWeight() {
        return lmHead;
    }

    /** Conv1D: x @ W + b with W stored (in, out). */
    private Tensor conv1d(Tensor x, String prefix) {
        FrozenLinear f = frozenLinear(prefix);   // a 4-bit base: quantized as W^T (out, in), as bitsandbytes does
        return withAdapter(prefix, x, f != null ? f.apply(x) : kernels.linear(x, p(prefix + ".weight").t(), p(prefix + ".bias")));
    }

    private Tensor layerNorm(Tensor x, String prefix) {
        return torch.layer_norm(x, new long[] {x.size(-1)}, new TensorOptional(p(prefix + ".weight")),
                new TensorOptional(p(prefix + ".bias")), config.normEps(), false);
    }
}
