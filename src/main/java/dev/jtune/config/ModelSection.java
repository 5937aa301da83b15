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
 * @param attentionDropout Llama, Mistral, Qwen2, Qwen3: dropout on the attention probabilities while training, overriding
 *                  config.json's {@code attention_dropout} (transformers' default 0.0); null = config.json's value
 * @param attnPdrop GPT-2: dropout on the attention probabilities ({@code attn_pdrop}, transformers' default 0.1); null = config.json's
 * @param residPdrop GPT-2: dropout on each block's attention and MLP outputs before the residual add ({@code resid_pdrop},
 *                  default 0.1); null = config.json's
 * @param embdPdrop GPT-2: dropout on the summed token and position embeddings ({@code embd_pdrop}, default 0.1); null = config.json's
 * @param quantization {@code model.quantization:}, a 4-bit base for QLoRA ({@link QuantizationSection})
 */
public record ModelSection(
        @Key(Key.REQUIRED) Path path,
        @Key(value = "null", nullable = true) String dtype,
        @Key(value = "null", nullable = true) Path tokenizer,
        @Key(value = "null", nullable = true) Double attentionDropout,
        @Key(value = "null", nullable = true) Double attnPdrop,
        @Key(value = "null", nullable = true) Double residPdrop,
        @Key(value = "null", nullable = true) Double embdPdrop,
        @Key("{}") QuantizationSection quantization) implements Section {

    /** The dropout keys: the config.json names transformers' {@code from_pretrained(path, attention_dropout=…)} overrides. */
    public static final List<String> LLAMA_DROPOUT_KEYS = List.of("attention_dropout");
    public static final List<String> GPT2_DROPOUT_KEYS = List.of("attn_pdrop", "resid_pdrop", "embd_pdrop");

    /** Without dropout overrides or quantization. */
    public ModelSection(Path path, String dtype, Path tokenizer) {
        this(path, dtype, tokenizer, null, null, null, null, QuantizationSection.NONE);
    }

    /** With dropout overrides, without quantization. */
    public ModelSection(Path path, String dtype, Path tokenizer,
                        Double attentionDropout, Double attnPdrop, Double residPdrop, Double embdPdrop) {
        this(path, dtype, tokenizer, attentionDropout, attnPdrop, residPdrop, embdPdrop, QuantizationSection.NONE);
    }

    /** With quantization, without dropout overrides. */
    public ModelSection(Path path, String dtype, Path tokenizer, QuantizationSection quantization) {
        this(path, dtype, tokenizer, null, null, null, null, quantization);
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
        return new ModelSection(path, dtype, tokenizer == null ? path : tokenizer,
                attentionDropout, attnPdrop, residPdrop, embdPdrop, q);
    }

    /** Whether the base loads in 4 bits (set, or implied by a pre-quantized model directory). */
    public boolean fourBit() {
        return quantization != null && quantization.loadIn_4bit();
    }

    /** The dropout overrides by config.json name (only those set), in key order. */
    public Map<String, Double> dropoutOverrides() {
        Map<String, Double> m = new java.util.LinkedHashMap<>();
        if (attentionDropout != null) m.put("attention_dropout", attentionDropout);
        if (attnPdrop != null) m.put("attn_pdrop", attnPdrop);
        if (residPdrop != null) m.put("resid_pdrop", residPdrop);
        if (embdPdrop != null) m.put("embd_pdrop", embdPdrop);
        return m;
    }

    @Override
    public void validate(Problems p) {
        for (Map.Entry<String, Double> e : dropoutOverrides().entrySet()) {
            double v = e.getValue();
            p.check(v >= 0 && v < 1, e.getKey(), "must be in [0, 1) (a dropout probability; null = config.json's value), got " + v);
        }
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
