package dev.jtune.config;

import dev.jtune.model.ModelConfig;
import dev.jtune.util.UserError;

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
        check(config, exp.data(), p);
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
        check(config, d, p);
    }

    /** The checks themselves: pure over the config and the sections. */
    static void check(ModelConfig config, DataSection d, Problems p) {
        if (p.ok("data.max_seq_length") && d.maxSeqLength() > config.maxPositions()) {
            p.add("data.max_seq_length", d.maxSeqLength() + " is longer than the model's " + positions(config));
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
