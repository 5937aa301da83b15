package dev.jtune.quant;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ArrayNode;
import com.fasterxml.jackson.databind.node.ObjectNode;
import dev.jtune.util.UserError;

import java.util.ArrayList;
import java.util.List;

/**
 * The {@code quantization_config} of a config.json, with transformers' {@code BitsAndBytesConfig} names.
 * Only 4-bit bitsandbytes checkpoints are read; 8-bit ones ({@code load_in_8bit}) are refused.
 *
 * @param type         {@code bnb_4bit_quant_type}
 * @param doubleQuant  {@code bnb_4bit_use_double_quant}
 * @param computeDtype {@code bnb_4bit_compute_dtype} (float32, float16, bfloat16)
 * @param skipModules  {@code llm_int8_skip_modules}: modules kept in 16/32 bits; empty = transformers' default
 *                     (the output head)
 */
public record QuantizationConfig(QuantType type, boolean doubleQuant, String computeDtype, List<String> skipModules) {

    public static final String KEY = "quantization_config";
    /** What transformers leaves unquantized when llm_int8_skip_modules is null: the output head. */
    public static final List<String> DEFAULT_SKIP = List.of("lm_head");

    public QuantizationConfig {
        skipModules = List.copyOf(skipModules);
    }

    /** The skip list in effect: the configured one, or {@link #DEFAULT_SKIP}. */
    public List<String> effectiveSkipModules() {
        return skipModules.isEmpty() ? DEFAULT_SKIP : skipModules;
    }

    /**
     * Reads {@code config.json}'s {@code quantization_config}.
     *
     * @param where names config.json in messages
     * @throws UserError if it is not a 4-bit bitsandbytes config, or a key has the wrong type or value
     */
    public static QuantizationConfig parse(JsonNode qc, String where) {
        String at = where + ": " + KEY;
        if (qc == null || !qc.isObject()) throw new UserError(at + " must be a JSON object");
        String method = qc.path("quant_method").asText("bitsandbytes");
        if (!method.equals("bitsandbytes")) {
            throw new UserError(at + ".quant_method '" + method + "' is not supported; jtune reads bitsandbytes 4-bit checkpoints");
        }
        boolean in4 = qc.path("load_in_4bit").asBoolean(false) || qc.path("_load_in_4bit").asBoolean(false);
        if (!in4) {
            throw new UserError(at + ": only 4-bit checkpoints (load_in_4bit: true) are supported"
                    + (qc.path("load_in_8bit").asBoolean(false) ? "; this one is 8-bit (load_in_8bit)" : ""));
        }
        QuantType type = QuantType.parse(qc.path("bnb_4bit_quant_type").asText("fp4"), at + ".bnb_4bit_quant_type");
        JsonNode dq = qc.get("bnb_4bit_use_double_quant");
        if (dq != null && !dq.isBoolean() && !dq.isNull()) {
            throw new UserError(at + ".bnb_4bit_use_double_quant must be true or false, found " + dq);
        }
        String compute = qc.path("bnb_4bit_compute_dtype").asText("float32");
        if (!List.of("float32", "float16", "bfloat16").contains(compute)) {
            throw new UserError(at + ".bnb_4bit_compute_dtype '" + compute + "' is not float32, float16 or bfloat16");
        }
        String storage = qc.path("bnb_4bit_quant_storage").asText("uint8");
        if (!storage.equals("uint8")) {
            throw new UserError(at + ".bnb_4bit_quant_storage '" + storage + "' is not supported (only uint8)");
        }
        List<String> skip = new ArrayList<>();
        JsonNode s = qc.get("llm_int8_skip_modules");
        if (s != null && !s.isNull()) {
            if (!s.isArray()) throw new UserError(at + ".llm_int8_skip_modules must be a list of module names or null");
            for (JsonNode m : s) {
                if (!m.isTextual()) throw new UserError(at + ".llm_int8_skip_modules must hold strings, found " + m);
                skip.add(m.textValue());
            }
        }
        return new QuantizationConfig(type, dq != null && dq.asBoolean(false), compute, skip);
    }

    /** The object transformers writes for a {@code BitsAndBytesConfig} (to_dict, keys sorted as it saves them). */
    public ObjectNode toJson(ObjectMapper json) {
        ObjectNode o = json.createObjectNode();
        o.put("_load_in_4bit", true);
        o.put("_load_in_8bit", false);
        o.put("bnb_4bit_compute_dtype", computeDtype);
        o.put("bnb_4bit_quant_storage", "uint8");
        o.put("bnb_4bit_quant_type", type.bnbName());
        o.put("bnb_4bit_use_double_quant", doubleQuant);
        o.put("llm_int8_enable_fp32_cpu_offload", false);
        o.put("llm_int8_has_fp16_weight", false);
        if (skipModules.isEmpty()) {
            o.putNull("llm_int8_skip_modules");
        } else {
            ArrayNode a = o.putArray("llm_int8_skip_modules");
            skipModules.forEach(a::add);
        }
        o.put("llm_int8_threshold", 6.0);
        o.put("load_in_4bit", true);
        o.put("load_in_8bit", false);
        o.put("quant_method", "bitsandbytes");
        return o;
    }

    /**
     * Whether the module {@code module} (a weight's name without {@code .weight}) is kept unquantized: it
     * is, or lies under, or ends with one of the skip entries, compared by whole dotted components
     * (transformers compares by name too: {@code key + "." in name or key == name}).
     */
    public static boolean skipped(String module, List<String> skip) {
        for (String k : skip) {
            if (module.equals(k) || module.startsWith(k + ".") || module.endsWith("." + k) || module.contains("." + k + ".")) {
                return true;
            }
        }
        return false;
    }
}
