package dev.jtune.export;

import dev.jtune.util.UserError;

import java.util.regex.Matcher;
import java.util.regex.Pattern;

/**
 * llama.cpp's choice of ggml type per tensor for the quantized file types jtune writes, as
 * {@code llama_tensor_get_type} in src/llama-quant.cpp makes it (no importance matrix, no experts):
 * <ul>
 *   <li>not quantized: norms, position embeddings (stay as written: F32 for 1-D, F16 for GPT-2's position table);</li>
 *   <li>output.weight, or token_embd.weight when there is no output.weight (tied): Q6_K unless the type is Q8_0
 *       (Q8_0 when rows do not split into the type's blocks);</li>
 *   <li>q4_k_m: attn_v / attn_qkv and ffn_down of "more bits" layers get Q6_K
 *       ({@code i < n/8 || i >= 7n/8 || (i - n/8) % 3 == 2});</li>
 *   <li>rows that do not split into blocks fall back as llama.cpp's tensor_type_fallback does (Q4_K to Q5_0, Q6_K to
 *       Q8_0, then F16 when even 32 does not divide them); where llama.cpp gives up (Q8_0, Q4_0) the export is refused.</li>
 * </ul>
 */
final class QuantMix {
    private static final Pattern LAYER = Pattern.compile("blk\\.(\\d+)\\..*");

    private final ExportType type;
    private final int layers;
    private final boolean tied;

    /** @param tied whether the model has no output.weight (llama.cpp then treats token_embd as the output) */
    public QuantMix(ExportType type, int layers, boolean tied) {
        this.type = type;
        this.layers = layers;
        this.tied = tied;
    }

    GgmlType choose(String name, long[] shape) {
        long cols = shape[shape.length - 1];
        if (!name.endsWith("weight") || name.contains("_norm.weight") || name.equals("position_embd.weight")) {
            return GgmlType.F16;   // llama.cpp keeps what the converter wrote: F16 for these 2-D tensors
        }
        GgmlType t = type.base;
        boolean output = name.equals("output.weight") || (tied && name.equals("token_embd.weight"));
        if (output) {
            if (cols % t.blockSize != 0) t = GgmlType.Q8_0;
            else if (t != GgmlType.Q8_0) t = GgmlType.Q6_K;
        } else if (type == ExportType.Q4_K_M && (name.contains("attn_v.weight") || name.contains("attn_qkv.weight")
                || name.contains("ffn_down"))) {
            if (moreBits(layer(name), layers)) t = GgmlType.Q6_K;
        }
        if (cols % t.blockSize != 0) {
            GgmlType fallback = switch (t) {
                case Q4_K -> GgmlType.Q5_0;
                case Q6_K -> GgmlType.Q8_0;
                default -> throw new UserError("tensor " + name + " has rows of " + cols + " elements, not a multiple of " + t.blockSize
                        + " as " + t + " needs (llama.cpp refuses such a model for this type too): export it as f16, f32 or q4_k_m");
            };
            return cols % fallback.blockSize == 0 ? fallback : GgmlType.F16;
        }
        return t;
    }

    static boolean moreBits(int i, int n) {
        return i < n / 8 || i >= 7 * n / 8 || (i - n / 8) % 3 == 2;
    }

    private static int layer(String name) {
        Matcher m = LAYER.matcher(name);
        if (!m.matches()) throw new IllegalStateException("no layer in " + name);
        return Integer.parseInt(m.group(1));
    }
}
