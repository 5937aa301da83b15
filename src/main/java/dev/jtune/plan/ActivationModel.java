package dev.jtune.plan;

import dev.jtune.model.ModelConfig;
import dev.jtune.peft.LoraTargets;
import dev.jtune.config.Precision;

import java.util.HashMap;
import java.util.List;
import java.util.Map;

/**
 * Bytes per token that one decoder block keeps alive between its forward and the end of the micro-batch's backward,
 * read off jtune's model code (model/llama/LlamaModel, model/gpt2/Gpt2Model, peft/LoraAdapter, kernels/Ops on the CPU).
 *
 * <p>Why "alive until the end of backward" and not "what autograd saves": every tensor the Java forward receives is a
 * JavaCPP object freed when the step's PointerScope closes (TrainStep.run: one scope per micro-batch), after
 * backward. So every intermediate the block's Java code names counts, whether autograd needs it or not; tensors made
 * inside a LibTorch op and saved by autograd (autocast's casts of activations, attention's internals) count too.
 *
 * <p>Element sizes: {@code s} is the residual stream's (the embedding's dtype: fp32 for full fine-tuning, the base's
 * for LoRA), {@code c} that of matrix-product outputs (2 under bf16/fp16 autocast, else s), {@code p} that of RoPE's
 * products (the larger of c and the cos/sin tables, which are in the model's dtype).
 */
final class ActivationModel {
    private ActivationModel() {}

    /** Bytes per token that one block holds; {@code seqLen} matters only where attention is quadratic. */
    static double perTokenPerBlock(PlanRequest r) {
        return r.config().family() == ModelConfig.Family.GPT2 ? gpt2(r) : llama(r);
    }

    private static double llama(PlanRequest r) {
        ModelConfig c = r.config();
        double d = c.hiddenSize(), q = (double) c.numHeads() * c.headDim(), kv = (double) c.numKvHeads() * c.headDim();
        double inter = c.intermediateSize();
        int s = residualBytes(r), cb = computeBytes(r), p = Math.max(cb, s);
        boolean castInputs = s == 4 && cb == 2;                 // autocast copies an fp32 input of each matrix product
        Map<String, Integer> adapted = adapters(r);
        double b = 0;
        b += 2 * rmsNorm(s, d);                                  // input_layernorm, post_attention_layernorm
        b += (castInputs ? 3 * cb * d : 0) + cb * (q + 2 * kv);  // q, k, v projections (each casts n on its own)
        b += lora(r, adapted, "q_proj", q) + lora(r, adapted, "k_proj", kv) + lora(r, adapted, "v_proj", kv);
        if (c.qkNorm()) b += rmsNorm(cb, q) + rmsNorm(cb, kv);
        b += (1.5 * cb + 3 * p) * (q + kv);                      // RoPE reference: neg (half), cat, x·cos, rot·sin, sum
        b += attention(r, p, cb, q, kv);
        b += cb * q;                                             // o.transpose(1, 2).reshape: a copy
        b += cb * d + lora(r, adapted, "o_proj", d) + s * d;     // o_proj, residual add
        b += (castInputs ? 2 * cb * d : 0) + 2 * cb * inter;     // gate, up
        b += lora(r, adapted, "gate_proj", inter) + lora(r, adapted, "up_proj", inter);
        b += 2 * cb * inter;                                     // SwiGLU reference: silu(gate), · up
        b += cb * d + lora(r, adapted, "down_proj", d) + s * d;  // down_proj, residual add
        return b;
    }

    private static double gpt2(PlanRequest r) {
        ModelConfig c = r.config();
        double d = c.hiddenSize(), inner = c.intermediateSize();
        int s = residualBytes(r), cb = computeBytes(r);
        Map<String, Integer> adapted = adapters(r);
        double b = 0;
        boolean autocast = r.precision() != Precision.FP32;
        // layer_norm: in x's dtype on the CPU (CPU autocast leaves it alone: measured, gpt2-124m LoRA bf16 in
        // bench/RESULTS.md); on CUDA autocast runs it in fp32, casting a bf16 x up first
        boolean lnFp32 = s == 4 || (autocast && r.cuda());
        double ln = !lnFp32 ? s * d : s == 4 ? 4 * d : 8 * d;
        double cast = autocast && lnFp32 ? cb * d : 0;           // c_attn and c_fc cast an fp32 layer_norm output
        b += 2 * ln;                                             // ln_1, ln_2
        b += cast + cb * 3 * d + lora(r, adapted, "c_attn", 3 * d);
        b += attention(r, cb, cb, d, d) + 3 * cb * d;            // SDPA takes strided q, k, v views: contiguous copies
        b += cb * d;                                             // transpose(1, 2).reshape: a copy
        b += cb * d + lora(r, adapted, "attn.c_proj", d) + s * d;
        b += cast + cb * inner + lora(r, adapted, "c_fc", inner);
        b += cb * inner;                                         // gelu
        b += cb * d + lora(r, adapted, "mlp.c_proj", d) + s * d;
        return b;
    }

    /** Ops.rmsNormReference: x.to(float32) (a copy unless fp32), rms_norm, .to(x's dtype) (a copy unless fp32), · weight. */
    private static double rmsNorm(int s, double n) {
        return s == 4 ? 8 * n : (4 + 4 + s + s) * n;
    }

    /**
     * Scaled dot-product attention: the output (B, H, T, hd) and its saved log-sum-exp (fp32, one per head and token),
     * plus, when autocast casts fp32 q and k (RoPE's products promote to the tables' fp32), those copies. No (B, H, T, T)
     * scores: CausalLM.attention passes is_causal without a mask for training, which LibTorch's flash kernels take on
     * the CPU and CUDA, grouped-query heads included (measured: the tiny shape, 2 KV heads for 4, adds the same memory per
     * token at 512 tokens as at 128; bench/RESULTS.md). Packed batches (data.packing) pass a block-diagonal mask, which
     * may take the math path and its quadratic scores: not modelled.
     */
    private static double attention(PlanRequest r, int p, int cb, double q, double kv) {
        double b = cb * q + 4.0 * r.config().numHeads();
        if (p == 4 && cb == 2) b += 2 * (q + kv);
        return b;
    }

    /** LoraAdapter.delta: x·Aᵀ (r), ·Bᵀ (out), · scaling (out), and the add to the base output (out). */
    private static double lora(PlanRequest r, Map<String, Integer> adapted, String module, double out) {
        if (!r.lora()) return 0;
        Integer n = adapted.get(module);
        if (n == null || n == 0) return 0;
        int cb = computeBytes(r);
        return cb * (r.loraR() + 3 * out);
    }

    /** Adapted modules per block by short name (q_proj, …; GPT-2: c_attn, attn.c_proj, c_fc, mlp.c_proj). */
    private static Map<String, Integer> adapters(PlanRequest r) {
        Map<String, Integer> m = new HashMap<>();
        if (!r.lora()) return m;
        List<LoraTargets.Linear> mods = LoraTargets.resolve(r.config(), r.loraTargets(), "lora.target_modules");
        for (LoraTargets.Linear l : mods) {
            String name = l.module();
            String key = name.endsWith("attn.c_proj") ? "attn.c_proj" : name.endsWith("mlp.c_proj") ? "mlp.c_proj" : l.shortName();
            m.merge(key, 1, Integer::sum);
        }
        return m;
    }

    /** The residual stream's element size: fp32 for full fine-tuning (fp32 master weights), the base's for LoRA. */
    static int residualBytes(PlanRequest r) {
        return r.lora() ? r.baseBytes() : 4;
    }

    /** Matrix products' output element size: 2 under bf16/fp16 autocast, else the residual's. */
    static int computeBytes(PlanRequest r) {
        return r.precision() == Precision.FP32 ? residualBytes(r) : 2;
    }
}
