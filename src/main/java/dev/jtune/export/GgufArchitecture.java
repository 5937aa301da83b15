package dev.jtune.export;

import dev.jtune.model.ModelConfig;
import dev.jtune.model.RopeScaling;
import dev.jtune.util.UserError;

import java.util.ArrayList;
import java.util.List;

/**
 * The llama.cpp architecture of a model and its hyperparameter keys ({@code <arch>.context_length} etc., as
 * gguf-py's constants.py names them and convert_hf_to_gguf.py fills them). Mistral runs as llama.cpp's
 * {@code llama}; Qwen2 and Qwen3 as their own (NeoX-style RoPE, so no q/k permutation).
 * What llama.cpp would compute differently is refused here, before anything is written.
 */
final class GgufArchitecture {
    private GgufArchitecture() {}

    /** llama.cpp's {@code general.architecture} for this model. */
    public static String name(ModelConfig c) {
        return switch (c.modelType()) {
            case "llama", "mistral" -> "llama";
            case "qwen2" -> "qwen2";
            case "qwen3" -> "qwen3";
            case "gpt2" -> "gpt2";
            default -> throw new UserError(c.where() + ": model_type '" + c.modelType() + "' has no GGUF mapping");
        };
    }

    /** Whether q/k rows must be reordered for llama.cpp's adjacent-pair RoPE ({@link QkPermutation}). */
    public static boolean permutesQk(ModelConfig c) {
        return name(c).equals("llama");
    }

    /**
     * Refuses what llama.cpp's graph for this architecture would compute differently.
     *
     * @return notes for the user about exact-but-limited mappings (e.g. a context capped at the sliding window)
     */
    public static List<String> check(ModelConfig c) {
        String where = c.where();
        List<String> notes = new ArrayList<>();
        String arch = name(c);
        if (arch.equals("gpt2")) {
            if (c.hiddenAct().equals("gelu")) {
                throw new UserError(where + ": activation_function 'gelu' (exact erf) has no llama.cpp gpt2 equivalent"
                        + " (llama.cpp uses the tanh approximation: gelu_new / gelu_pytorch_tanh)");
            }
            if (c.scaleAttnByInverseLayerIdx()) {
                throw new UserError(where + ": scale_attn_by_inverse_layer_idx is not supported by llama.cpp's gpt2 graph");
            }
            return notes;
        }
        if (!arch.equals("llama") && (c.outputBias() || c.mlpBias())) {
            throw new UserError(where + ": " + c.modelType() + " with attention_bias/mlp_bias on o_proj or the MLP has no llama.cpp "
                    + arch + " tensor for those biases");
        }
        if (arch.equals("qwen3") && c.qkvBias()) {
            throw new UserError(where + ": qwen3 with attention_bias: llama.cpp's qwen3 graph has no q/k/v biases");
        }
        RopeScaling rs = c.ropeScaling();
        if (rs != null && rs.type().equals("llama3") && !arch.equals("llama")) {
            throw new UserError(where + ": rope_scaling type 'llama3' is only mapped for llama/mistral (rope_freqs tensor), not " + c.modelType());
        }
        if (c.slidingWindow() > 0 && c.slidingWindow() < c.maxPositions()) {
            notes.add("sliding_window " + c.slidingWindow() + ": llama.cpp's " + arch + " graph attends to the whole context,"
                    + " so context_length is set to the window (" + c.slidingWindow() + " tokens), where the two agree");
        }
        return notes;
    }

    /** Context length written to the file: the trained positions, capped at a sliding window (see {@link #check}). */
    public static long contextLength(ModelConfig c) {
        if (c.slidingWindow() > 0 && c.slidingWindow() < c.maxPositions()) return c.slidingWindow();
        return c.maxPositions();
    }

    /** Adds the {@code <arch>.*} hyperparameters. */
    public static void addHyperparameters(GgufMetadata md, ModelConfig c) {
        String a = name(c);
        md.putU32(a + ".context_length", contextLength(c));
        md.putU32(a + ".embedding_length", c.hiddenSize());
        md.putU32(a + ".feed_forward_length", c.intermediateSize());
        md.putU32(a + ".block_count", c.numLayers());
        md.putU32(a + ".attention.head_count", c.numHeads());
        if (a.equals("gpt2")) {
            md.putF32(a + ".attention.layer_norm_epsilon", c.normEps());
            return;
        }
        md.putU32(a + ".attention.head_count_kv", c.numKvHeads());
        md.putF32(a + ".rope.freq_base", c.ropeTheta());
        md.putF32(a + ".attention.layer_norm_rms_epsilon", c.normEps());
        md.putU32(a + ".attention.key_length", c.headDim());
        md.putU32(a + ".attention.value_length", c.headDim());
        md.putU32(a + ".rope.dimension_count", c.headDim());
        md.putU32(a + ".vocab_size", c.vocabSize());
        RopeScaling rs = c.ropeScaling();
        if (rs != null && rs.type().equals("linear")) {
            md.putString(a + ".rope.scaling.type", "linear");
            md.putF32(a + ".rope.scaling.factor", rs.factor());
        }
    }

    /**
     * Llama 3.1's frequency scaling as llama.cpp takes it: a {@code rope_freqs.weight} tensor of D/2 divisors of the
     * rotary frequencies (convert_hf_to_gguf.py's LlamaModel.generate_extra_tensors), or null without llama3 scaling.
     */
    public static float[] ropeFreqFactors(ModelConfig c) {
        RopeScaling rs = c.ropeScaling();
        if (rs == null || !rs.type().equals("llama3")) return null;
        int half = c.headDim() / 2;
        float[] out = new float[half];
        double lowWavelen = rs.originalMaxPositions() / rs.lowFreqFactor();
        double highWavelen = rs.originalMaxPositions() / rs.highFreqFactor();
        for (int i = 0; i < half; i++) {
            double freq = 1.0 / Math.pow(c.ropeTheta(), 2.0 * i / c.headDim());
            double wavelen = 2 * Math.PI / freq;
            double f;
            if (wavelen < highWavelen) {
                f = 1;
            } else if (wavelen > lowWavelen) {
                f = rs.factor();
            } else {
                double smooth = (rs.originalMaxPositions() / wavelen - rs.lowFreqFactor()) / (rs.highFreqFactor() - rs.lowFreqFactor());
                f = 1 / ((1 - smooth) / rs.factor() + smooth);
            }
            out[i] = (float) f;
        }
        return out;
    }
}
