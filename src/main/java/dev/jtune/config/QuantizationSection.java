package dev.jtune.config;

import dev.jtune.quant.QuantType;
import dev.jtune.quant.QuantizationConfig;

import java.util.List;
import java.util.Locale;

/**
 * {@code model.quantization:}: load the frozen base in 4 bits (QLoRA), with transformers' {@code BitsAndBytesConfig}
 * names. The component names carry underscores so that their snake_case YAML names are exactly bitsandbytes' own
 * ({@code loadIn_4bit} is {@code load_in_4bit}).
 *
 * <p>A model directory that is already quantized (config.json has a {@code quantization_config}) implies
 * {@code load_in_4bit: true}, and its settings replace these, as transformers uses the checkpoint's config
 * ({@link ModelSection#withDerivedDefaults}).
 *
 * @param loadIn_4bit             quantize the base's linear layers to 4 bits on load (or read them pre-quantized)
 * @param bnb_4bitQuantType       {@code nf4} (QLoRA's NormalFloat) or {@code fp4}
 * @param bnb_4bitUseDoubleQuant  quantize the per-block absmax values too (about 0.4 bit/parameter saved)
 * @param bnb_4bitComputeDtype    the dtype each quantized layer dequantizes to and multiplies in
 * @param llmInt8SkipModules      modules kept in 16/32 bits; null = the output head (the embeddings are never
 *                                quantized: they are not linear layers)
 */
public record QuantizationSection(
        @Key("false") boolean loadIn_4bit,
        @Key("nf4") String bnb_4bitQuantType,
        @Key("false") boolean bnb_4bitUseDoubleQuant,
        @Key("float32") String bnb_4bitComputeDtype,
        @Key(value = "null", nullable = true) List<String> llmInt8SkipModules) implements Section {

    /** Not quantized (every key at its default). */
    public static final QuantizationSection NONE = new QuantizationSection(false, "nf4", false, "float32", null);
    public static final List<String> QUANT_TYPES = List.of("nf4", "fp4");
    private static final java.util.Map<String, String> ALIASES = java.util.Map.of("bf16", "bfloat16", "fp16", "float16",
            "half", "float16", "fp32", "float32", "float", "float32", "torch.bfloat16", "bfloat16", "torch.float16", "float16",
            "torch.float32", "float32");

    public QuantizationSection {
        llmInt8SkipModules = llmInt8SkipModules == null ? null : List.copyOf(llmInt8SkipModules);
    }

    /** The settings of a pre-quantized checkpoint's {@code quantization_config}. */
    static QuantizationSection of(QuantizationConfig qc) {
        return new QuantizationSection(true, qc.type().bnbName(), qc.doubleQuant(), qc.computeDtype(),
                qc.skipModules().isEmpty() ? null : qc.skipModules());
    }

    /** As the quant layer takes it (the skip list empty for the default). */
    public QuantizationConfig toConfig() {
        return new QuantizationConfig(QuantType.parse(bnb_4bitQuantType, "model.quantization.bnb_4bit_quant_type"),
                bnb_4bitUseDoubleQuant, bnb_4bitComputeDtype, llmInt8SkipModules == null ? List.of() : llmInt8SkipModules);
    }

    @Override
    public void validate(Problems p) {
        if (!QUANT_TYPES.contains(bnb_4bitQuantType)) {
            String lower = bnb_4bitQuantType.toLowerCase(Locale.ROOT);
            p.add("bnb_4bit_quant_type", "unknown value '" + bnb_4bitQuantType + "'; expected nf4 or fp4"
                    + (QUANT_TYPES.contains(lower) ? "; did you mean '" + lower + "'?" : ""));
        }
        if (!ModelSection.DTYPES.contains(bnb_4bitComputeDtype)) {
            p.add("bnb_4bit_compute_dtype", "unknown value '" + bnb_4bitComputeDtype + "'; expected one of: "
                    + String.join(", ", ModelSection.DTYPES) + (ALIASES.containsKey(bnb_4bitComputeDtype.toLowerCase(Locale.ROOT))
                    ? "; did you mean '" + ALIASES.get(bnb_4bitComputeDtype.toLowerCase(Locale.ROOT)) + "'?"
                    : Yaml.didYouMean(bnb_4bitComputeDtype, ModelSection.DTYPES)));
        }
        if (llmInt8SkipModules != null && llmInt8SkipModules.stream().anyMatch(String::isBlank)) {
            p.add("llm_int8_skip_modules", "holds an empty name; list module names such as [lm_head, down_proj]");
        }
    }
}
