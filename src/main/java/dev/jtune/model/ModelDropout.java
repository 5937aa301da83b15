package dev.jtune.model;

import com.fasterxml.jackson.databind.JsonNode;
import dev.jtune.util.UserError;

import java.util.Map;

/**
 * The model's own dropout probabilities, as its config.json gives them and transformers applies them in training mode
 * (never in evaluation or generation):
 * <ul>
 * <li>Llama, Mistral, Qwen2, Qwen3: {@code attention_dropout} on the attention probabilities (default 0.0);</li>
 * <li>GPT-2: {@code attn_pdrop} on the attention probabilities, {@code resid_pdrop} on the attention and MLP outputs
 *     before each residual add, {@code embd_pdrop} on the summed token and position embeddings (each 0.1 by default,
 *     transformers' {@code GPT2Config}).</li>
 * </ul>
 *
 * @param attention on the attention probabilities (SDPA's dropout_p)
 * @param residual  on each sub-block's output before the residual add (GPT-2 only; 0 for Llama)
 * @param embedding on the input embeddings (GPT-2 only; 0 for Llama)
 */
public record ModelDropout(double attention, double residual, double embedding) {
    public static final ModelDropout NONE = new ModelDropout(0, 0, 0);

    /** GPT2Config's default for attn_pdrop, resid_pdrop and embd_pdrop. */
    static final double GPT2_DEFAULT = 0.1;

    /** What config.json says, with transformers' defaults for what it leaves out. */
    public static ModelDropout of(ModelConfig config) {
        return of(config, Map.of());
    }

    /**
     * config.json's dropout with {@code overrides} by config.json name applied (as transformers'
     * {@code from_pretrained(path, attn_pdrop=0.0)}); names of the other family must have been refused before.
     */
    public static ModelDropout of(ModelConfig config, Map<String, Double> overrides) {
        if (config.family() == ModelConfig.Family.GPT2) {
            return new ModelDropout(value(config, "attn_pdrop", GPT2_DEFAULT, overrides),
                    value(config, "resid_pdrop", GPT2_DEFAULT, overrides), value(config, "embd_pdrop", GPT2_DEFAULT, overrides));
        }
        return new ModelDropout(value(config, "attention_dropout", 0.0, overrides), 0, 0);
    }

    public boolean any() {
        return attention > 0 || residual > 0 || embedding > 0;
    }

    private static double value(ModelConfig config, String key, double dflt, Map<String, Double> overrides) {
        Double o = overrides.get(key);
        if (o != null) return o;
        JsonNode n = config.raw() == null ? null : config.raw().get(key);
        if (n == null || n.isNull()) return dflt;
        if (!n.isNumber() || n.asDouble() < 0 || n.asDouble() >= 1) {
            throw new UserError(config.where() + ": key '" + key + "' must be a dropout probability in [0, 1), got " + n);
        }
        return n.asDouble();
    }
}
