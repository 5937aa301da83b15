package dev.jtune.export;

import dev.jtune.model.ModelConfig;
import dev.jtune.model.ParameterSpec;
import dev.jtune.util.UserError;

import java.util.regex.Matcher;
import java.util.regex.Pattern;

/**
 * Hugging Face parameter names to llama.cpp's tensor names (gguf-py's tensor_mapping.py / llama-arch.cpp),
 * with what must happen to the weight on the way: GPT-2's Conv1D weights are stored (in, out) and llama.cpp
 * wants (out, in); Llama/Mistral q and k rows are permuted ({@link QkPermutation}).
 */
final class TensorNameMap {
    /** How a stored tensor becomes the GGUF tensor. */
    public enum Transform { NONE, TRANSPOSE, PERMUTE_Q, PERMUTE_K }

    public record Mapped(String ggufName, Transform transform) {}

    private static final Pattern LLAMA_LAYER = Pattern.compile("model\\.layers\\.(\\d+)\\.(.+)");
    private static final Pattern GPT2_LAYER = Pattern.compile("transformer\\.h\\.(\\d+)\\.(.+)");

    private TensorNameMap() {}

    /**
     * The GGUF name of {@code hfName} (as stored in the model's safetensors), or null for a tensor llama.cpp does
     * not need (a tied lm_head, rotary or attention-mask buffers).
     *
     * @throws UserError for a tensor that has no exact llama.cpp counterpart
     */
    public static Mapped map(ModelConfig c, String hfName) {
        String name = ParameterSpec.canonicalName(c, hfName);
        if (name == null) return null;
        Mapped m = c.family() == ModelConfig.Family.GPT2 ? gpt2(name) : llama(c, name);
        if (m == null) {
            throw new UserError(c.where() + ": the model stores tensor '" + hfName + "', which has no llama.cpp counterpart for "
                    + c.modelType() + "; refusing to export a GGUF that would silently drop it");
        }
        return m;
    }

    private static Mapped llama(ModelConfig c, String name) {
        boolean permute = GgufArchitecture.permutesQk(c);
        switch (name) {
            case "model.embed_tokens.weight": return plain("token_embd.weight");
            case "model.norm.weight": return plain("output_norm.weight");
            case "lm_head.weight": return plain("output.weight");
            default: break;
        }
        Matcher m = LLAMA_LAYER.matcher(name);
        if (!m.matches()) return null;
        String blk = "blk." + m.group(1) + ".";
        String rest = m.group(2);
        int dot = rest.lastIndexOf('.');
        String module = rest.substring(0, dot), kind = rest.substring(dot + 1);   // kind: weight or bias
        String g = switch (module) {
            case "input_layernorm" -> "attn_norm";
            case "post_attention_layernorm" -> "ffn_norm";
            case "self_attn.q_proj" -> "attn_q";
            case "self_attn.k_proj" -> "attn_k";
            case "self_attn.v_proj" -> "attn_v";
            case "self_attn.o_proj" -> "attn_output";
            case "self_attn.q_norm" -> "attn_q_norm";
            case "self_attn.k_norm" -> "attn_k_norm";
            case "mlp.gate_proj" -> "ffn_gate";
            case "mlp.up_proj" -> "ffn_up";
            case "mlp.down_proj" -> "ffn_down";
            default -> null;
        };
        if (g == null) return null;
        Transform t = Transform.NONE;
        if (permute && g.equals("attn_q")) t = Transform.PERMUTE_Q;
        if (permute && g.equals("attn_k")) t = Transform.PERMUTE_K;
        return new Mapped(blk + g + "." + kind, t);
    }

    private static Mapped gpt2(String name) {
        switch (name) {
            case "transformer.wte.weight": return plain("token_embd.weight");
            case "transformer.wpe.weight": return plain("position_embd.weight");
            case "transformer.ln_f.weight": return plain("output_norm.weight");
            case "transformer.ln_f.bias": return plain("output_norm.bias");
            case "lm_head.weight": return plain("output.weight");
            default: break;
        }
        Matcher m = GPT2_LAYER.matcher(name);
        if (!m.matches()) return null;
        String blk = "blk." + m.group(1) + ".";
        String rest = m.group(2);
        int dot = rest.lastIndexOf('.');
        String module = rest.substring(0, dot), kind = rest.substring(dot + 1);
        String g = switch (module) {
            case "ln_1" -> "attn_norm";
            case "ln_2" -> "ffn_norm";
            case "attn.c_attn" -> "attn_qkv";
            case "attn.c_proj" -> "attn_output";
            case "mlp.c_fc" -> "ffn_up";
            case "mlp.c_proj" -> "ffn_down";
            default -> null;
        };
        if (g == null) return null;
        boolean conv1d = !module.startsWith("ln_") && kind.equals("weight");
        return new Mapped(blk + g + "." + kind, conv1d ? Transform.TRANSPOSE : Transform.NONE);
    }

    private static Mapped plain(String n) {
        return new Mapped(n, Transform.NONE);
    }
}
