package dev.jtune.config;

import dev.jtune.model.ModelConfig;
import dev.jtune.util.UserError;

import java.util.List;

/**
 * Every check of an experiment against its model's config.json, in one place: the file must describe a model
 * jtune implements, and {@code data.max_seq_length} must fit the positions the model has. {@link Experiment#load}
 * runs them once, after the sections are valid, so the problems name the experiment file, the line and the key
 * like every other mistake (and all are listed together).
 */
public final class ModelChecks {
    private ModelChecks() {}

    /**
     * Checks {@code exp} against {@code config} (read from {@code exp.model().path()}); for an experiment that did
     * not come from {@link Experiment#load}, which already ran these checks with line numbers.
     *
     * @throws UserError naming the experiment file and the key, as {@link Experiment#load} does
     */
    public static void check(Experiment exp, ModelConfig config) {
        Problems p = new Problems(String.valueOf(exp.file()));
        check(config, exp.model(), exp.data(), p);
        p.throwIfAny();
    }

    /** Reads {@code model.path}'s config.json (unless model.path is already wrong) and checks against it. */
    static void check(ModelSection m, DataSection d, Problems p) {
        if (m.path() == null || !p.ok("model.path")) return;
        ModelConfig config;
        try {
            config = ModelConfig.read(m.path());
        } catch (UserError e) {
            p.add("model.path", e.getMessage());   // malformed config.json, or a model_type jtune does not implement
            return;
        }
        if (dev.jtune.quant.QuantizedCheckpoint.isQuantized(m.path())) {
            try {
                dev.jtune.quant.QuantizedCheckpoint.quantizationConfig(m.path());
            } catch (UserError e) {
                p.add("model.path", e.getMessage());   // a pre-quantized directory whose quantization_config jtune cannot read
                return;
            }
        }
        check(config, m, d, p);
    }

    /** The checks themselves: pure over the config and the sections. */
    static void check(ModelConfig config, ModelSection m, DataSection d, Problems p) {
        if (p.ok("data.max_seq_length") && d.maxSeqLength() > config.maxPositions()) {
            p.add("data.max_seq_length", d.maxSeqLength() + " is longer than the model's " + positions(config));
        }
        // a dropout key of the other family would be silently ignored: the model has no such dropout
        boolean gpt2 = config.family() == ModelConfig.Family.GPT2;
        List<String> own = gpt2 ? ModelSection.GPT2_DROPOUT_KEYS : ModelSection.LLAMA_DROPOUT_KEYS;
        for (String key : m.dropoutOverrides().keySet()) {
            if (!own.contains(key)) {
                p.add("model." + key, "a " + config.modelType() + " model has no " + key + " (" + config.where()
                        + "); its dropout keys: " + String.join(", ", own.stream().map(k -> "model." + k).toList()));
            }
        }
    }

    /** "64 learned positions (n_positions in /m/config.json)", naming the key the limit comes from. */
    private static String positions(ModelConfig c) {
        if (c.family() == ModelConfig.Family.GPT2) {
            return c.maxPositions() + " learned positions (n_positions in " + c.where() + ")";
        }
        boolean set = c.raw() != null && c.raw().has("max_position_embeddings");
        return c.maxPositions() + " positions (max_position_embeddings in " + c.where()
                + (set ? ")" : " is not set; " + c.maxPositions() + " assumed)");
    }
}
