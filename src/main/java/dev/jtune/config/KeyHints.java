package dev.jtune.config;

import java.util.Map;

/**
 * What to suggest for a name that is not a key: the jtune spelling of a Hugging Face name, a close key (a typo),
 * the section a key belongs to, or the valid keys. Used for unknown keys in the file and in {@code --set}.
 */
final class KeyHints {
    private KeyHints() {}

    /** Names Hugging Face users reach for that jtune spells differently. */
    private static final Map<String, String> HINTS = Map.ofEntries(
            Map.entry("bf16", "use 'training.precision: bf16'"),
            Map.entry("fp16", "use 'training.precision: fp16'"),
            Map.entry("torch_dtype", "use 'model.dtype'"),
            Map.entry("model_name_or_path", "use 'model.path' (a local model directory)"),
            Map.entry("tokenizer_name", "use 'model.tokenizer'"),
            Map.entry("evaluation_strategy", "jtune evaluates every 'training.eval_steps' steps (0 = each epoch)"),
            Map.entry("eval_strategy", "jtune evaluates every 'training.eval_steps' steps (0 = each epoch)"),
            Map.entry("save_strategy", "jtune saves every 'training.save_steps' steps (0 = each epoch)"),
            Map.entry("logging_strategy", "jtune logs every 'training.logging_steps' steps"),
            Map.entry("use_cpu", "use 'training.device: cpu'"),
            Map.entry("lora_alpha", "use 'lora.alpha'"),
            Map.entry("lora_dropout", "use 'lora.dropout'"),
            Map.entry("lora_r", "use 'lora.r'"),
            Map.entry("no_cuda", "use 'training.device: cpu'"),
            Map.entry("quantization_config", "use 'model.quantization' (BitsAndBytesConfig's keys: load_in_4bit, bnb_4bit_quant_type, ...)"),
            Map.entry("load_in_4bit", "use 'model.quantization.load_in_4bit'"),
            Map.entry("load_in_8bit", "jtune loads 4-bit bases only: 'model.quantization.load_in_4bit: true'"));

    /** The suffix for "unknown key" when {@code name} is not a key of {@code section}: starts with "; ". */
    static String forKey(String section, String name) {
        String hint = HINTS.get(name);
        if (hint != null) return "; " + hint;
        String close = Yaml.closest(name, Experiment.keys(section));
        if (close != null) return "; did you mean '" + close + "'?";
        for (String other : Experiment.sectionNames()) {
            if (!other.equals(section) && Experiment.keys(other).contains(name)) {
                return "; '" + name + "' belongs in the " + other + " section";
            }
        }
        return "; valid keys: " + String.join(", ", Experiment.keys(section));
    }

    /** The suffix for "unknown key" in a nested mapping ({@code model.quantization}) whose keys are {@code keys}. */
    static String forNestedKey(java.util.List<String> keys, String name) {
        String hint = HINTS.get(name);
        if (hint != null && !name.equals("load_in_4bit")) return "; " + hint;
        String close = Yaml.closest(name, keys);
        if (close != null) return "; did you mean '" + close + "'?";
        return "; valid keys: " + String.join(", ", keys);
    }

    /** The suffix for "unknown section" when {@code name} is not a section: empty, or starts with "; ". */
    static String forSection(String name) {
        String hint = HINTS.get(name);
        if (hint != null) return "; " + hint;
        // a key first: a top-level 'seed:' is training.seed, not a misspelt 'sweep:'
        for (String s : Experiment.sectionNames()) {
            if (Experiment.keys(s).contains(name)) return "; '" + name + "' is a key of the " + s + " section (indent it under " + s + ":)";
        }
        String close = Yaml.closest(name, Experiment.sectionNames());
        if (close != null) return "; did you mean '" + close + "'?";
        return "";
    }
}
