package dev.jtune.config;

import dev.jtune.quant.QuantizedCheckpoint;
import dev.jtune.util.UserError;

import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import java.util.Map;

/**
 * The {@code model:} section: which Hugging Face model directory to fine-tune.
 *
 * <p>Paths are absolute: relative paths in the file resolve against the working directory (as in Hugging Face
 * scripts and axolotl), not against the experiment file's directory.
 *
 * @param path      the model directory (config.json, safetensors weights); required
 * @param dtype     the dtype to load the weights in: {@code float32}, {@code bfloat16}, {@code float16}, or null to
 *                  keep the dtype they are stored in
 * @param tokenizer the tokenizer directory (with tokenizer.json) or tokenizer.json file; defaults to {@code path}
 * @param quantization {@code model.quantization:}, a 4-bit base for QLoRA ({@link QuantizationSection})
 */
public record ModelSection(
        @Key(Key.REQUIRED) Path path,
        @Key(value = "null", nullable = true) String dtype,
        @Key(value = "null", nullable = true) Path tokenizer,
        @Key("{}") QuantizationSection quantization) implements Section {

    /** Without quantization. */
    public ModelSection(Path path, String dtype, Path tokenizer) {
        this(path, dtype, tokenizer, QuantizationSection.NONE);
    }

    /** The accepted {@code dtype} values (besides null). */
    public static final List<String> DTYPES = List.of("float32", "bfloat16", "float16");

    private static final Map<String, String> DTYPE_ALIASES = Map.of(
            "fp32", "float32", "bf16", "bfloat16", "fp16", "float16", "half", "float16", "float", "float32");

    /**
     * The tokenizer defaults to the model directory; a pre-quantized model directory (config.json with a
     * {@code quantization_config}) implies {@code quantization.load_in_4bit} with the checkpoint's settings.
     */
    @Override
    public ModelSection withDerivedDefaults() {
        QuantizationSection q = quantization;
        if (path != null && q != null && QuantizedCheckpoint.isQuantized(path)) {
            try {
                q = QuantizationSection.of(QuantizedCheckpoint.quantizationConfig(path));
            } catch (UserError e) {
                // a malformed quantization_config: ModelChecks reports it under model.path
            }
        }
        return new ModelSection(path, dtype, tokenizer == null ? path : tokenizer, q);
    }

    /** Whether the base loads in 4 bits (set, or implied by a pre-quantized model directory). */
    public boolean fourBit() {
        return quantization != null && quantization.loadIn_4bit();
    }

    @Override
    public void validate(Problems p) {
        if (dtype != null && !DTYPES.contains(dtype)) {
            String alias = DTYPE_ALIASES.get(dtype.toLowerCase(java.util.Locale.ROOT));
            p.add("dtype", "unknown value '" + dtype + "'; expected one of: " + String.join(", ", DTYPES)
                    + ", or null (the dtype the weights are stored in)"
                    + (alias != null ? "; did you mean '" + alias + "'?" : Yaml.didYouMean(dtype, DTYPES)));
        }
        if (path != null && p.ok("path")) {
            if (!Files.exists(path)) {
                p.add("path", "model directory " + p.describePath("path", path) + " does not exist");
            } else if (!Files.isDirectory(path)) {
                p.add("path", p.describePath("path", path) + " is a file; expected a Hugging Face model directory (with config.json)");
            } else if (!Files.isRegularFile(path.resolve("config.json"))) {
                p.add("path", "no config.json in " + p.describePath("path", path) + "; expected a Hugging Face model directory");
            }
        }
        if (tokenizer != null && p.ok("tokenizer")) {
            boolean derived = tokenizer.equals(path);
            if (derived && !p.ok("path")) return;   // already reported
            Path json = Files.isDirectory(tokenizer) ? tokenizer.resolve("tokenizer.json") : tokenizer;
            if (!Files.isRegularFile(json) || !json.getFileName().toString().equals("tokenizer.json")) {
                p.add("tokenizer", (Files.exists(tokenizer) ? "no tokenizer.json in " : "tokenizer directory does not exist: ")
                        + p.describePath(derived ? "path" : "tokenizer", tokenizer)
                        + (derived ? " (model.tokenizer defaults to model.path; set it to a directory with tokenizer.json)" : ""));
            }
        }
    }
}
