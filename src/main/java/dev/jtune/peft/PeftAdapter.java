package dev.jtune.peft;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.SerializationFeature;
import com.fasterxml.jackson.databind.node.ArrayNode;
import com.fasterxml.jackson.databind.node.ObjectNode;
import dev.jtune.io.SafetensorsFile;
import dev.jtune.io.AtomicFiles;
import dev.jtune.io.SafetensorsWriter;
import dev.jtune.io.WrittenFiles;
import dev.jtune.io.TensorInfo;
import dev.jtune.model.ModelConfig;
import dev.jtune.util.UserError;
import org.bytedeco.pytorch.Device;
import org.bytedeco.pytorch.Tensor;
import org.bytedeco.pytorch.global.torch.ScalarType;

import java.io.IOException;
import dev.jtune.quant.QuantizationConfig;

import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.regex.Matcher;
import java.util.regex.Pattern;

/**
 * PEFT's adapter directory: {@code adapter_config.json} + {@code adapter_model.safetensors} with keys
 * {@code base_model.model.<module>.lora_A.weight} (r, in) and {@code ...lora_B.weight} (out, r).
 * What jtune writes, PEFT's {@code PeftModel.from_pretrained} loads, and the other way round.
 */
public final class PeftAdapter {
    public static final String CONFIG = "adapter_config.json";
    public static final String WEIGHTS = "adapter_model.safetensors";
    private static final ObjectMapper JSON = new ObjectMapper().enable(SerializationFeature.INDENT_OUTPUT);
    private static final Pattern KEY = Pattern.compile("base_model\\.model\\.(.+)\\.lora_([AB])(?:\\.default)?\\.weight");

    private PeftAdapter() {}

    /**
     * Written beside the adapter when it was trained on a 4-bit base (QLoRA): the base's {@code BitsAndBytesConfig}
     * as transformers writes it ({@code BitsAndBytesConfig.from_dict} reads it), so that merge, eval, generate and
     * perplexity rebuild the same base. PEFT ignores the file.
     */
    public static final String BASE_QUANTIZATION = "base_quantization_config.json";

    public record Loaded(LoraSpec spec, Map<String, LoraAdapter> adapters, String baseModel) {}

    /** {@link #save(Path, LoraSpec, Map, ModelConfig, String)} for an adapter trained on a 4-bit base (null: a 16/32-bit one). */
    public static WrittenFiles save(Path dir, LoraSpec spec, Map<String, LoraAdapter> adapters, ModelConfig c, String baseModel,
                                    QuantizationConfig baseQuantization) {
        WrittenFiles written = save(dir, spec, adapters, c, baseModel);
        if (baseQuantization == null) return written;
        try {
            Path f = dir.resolve(BASE_QUANTIZATION);
            written.add(f, AtomicFiles.write(f, JSON.writeValueAsBytes(baseQuantization.toJson(JSON))));
            return written;
        } catch (IOException e) {
            throw new UserError(dir + ": cannot write the adapter: " + e.getMessage(), e);
        }
    }

    /** The 4-bit base an adapter directory says it was trained on ({@link #BASE_QUANTIZATION}), or null. */
    public static QuantizationConfig baseQuantization(Path adapterDir) {
        Path f = adapterDir == null ? null : adapterDir.resolve(BASE_QUANTIZATION);
        if (f == null || !Files.isRegularFile(f)) return null;
        try {
            return QuantizationConfig.parse(JSON.readTree(f.toFile()), f.toString());
        } catch (IOException e) {
            throw new UserError(f + ": not valid JSON: " + e.getMessage().lines().findFirst().orElse(""));
        }
    }

    /** Writes adapter_config.json and adapter_model.safetensors into {@code dir}; returns them with their SHA-256. */
    public static WrittenFiles save(Path dir, LoraSpec spec, Map<String, LoraAdapter> adapters, ModelConfig c, String baseModel) {
        try {
            Files.createDirectories(dir);
            ObjectNode cfg = JSON.createObjectNode();
            cfg.putObject("alpha_pattern");
            cfg.putNull("auto_mapping");
            cfg.put("base_model_name_or_path", baseModel);
            cfg.put("bias", "none");
            cfg.put("fan_in_fan_out", c.family() == ModelConfig.Family.GPT2);
            cfg.put("inference_mode", true);
            cfg.put("init_lora_weights", spec.initWeights());
            cfg.putNull("layers_pattern");
            cfg.putNull("layers_to_transform");
            cfg.put("lora_alpha", spec.alpha());
            cfg.put("lora_dropout", spec.dropout());
            cfg.putNull("modules_to_save");
            cfg.put("peft_type", "LORA");
            cfg.put("r", spec.r());
            cfg.putObject("rank_pattern");
            cfg.putNull("revision");
            ArrayNode targets = cfg.putArray("target_modules");
            List<String> names = new ArrayList<>();
            for (String module : adapters.keySet()) {
                String shortName = module.substring(module.lastIndexOf('.') + 1);
                if (!names.contains(shortName)) names.add(shortName);
            }
            names.forEach(targets::add);
            cfg.put("task_type", "CAUSAL_LM");
            cfg.put("use_dora", false);
            cfg.put("use_rslora", spec.useRslora());
            WrittenFiles written = new WrittenFiles();
            written.add(dir.resolve(CONFIG), AtomicFiles.write(dir.resolve(CONFIG), JSON.writeValueAsBytes(cfg)));
            Map<String, Tensor> out = new LinkedHashMap<>();
            Lora.tensors(adapters).forEach((k, v) -> out.put(k, v.detach()));
            written.add(dir.resolve(WEIGHTS), SafetensorsWriter.write(dir.resolve(WEIGHTS), out, Map.of("format", "pt")));
            return written;
        } catch (IOException e) {
            throw new UserError(dir + ": cannot write the adapter: " + e.getMessage(), e);
        }
    }

    /**
     * Reads an adapter for the model {@code c}; refuses one whose modules or shapes do not fit it (an
     * adapter for another base model) naming the module and both shapes.
     *
     * @param trainable whether the loaded A and B require gradients (to continue training)
     */
    public static Loaded load(Path dir, ModelConfig c, Device device, boolean trainable) {
        Path cfgFile = dir.resolve(CONFIG);
        if (!Files.isRegularFile(cfgFile)) throw new UserError(dir + ": no " + CONFIG + "; expected a PEFT adapter directory");
        JsonNode cfg;
        try {
            cfg = JSON.readTree(cfgFile.toFile());
        } catch (IOException e) {
            throw new UserError(cfgFile + ": not valid JSON: " + e.getMessage().lines().findFirst().orElse(""));
        }
        if (cfg == null || !cfg.isObject()) throw new UserError(cfgFile + ": expected a JSON object");
        String type = cfg.path("peft_type").asText("");
        if (!type.equals("LORA")) throw new UserError(cfgFile + ": peft_type '" + type + "' is not supported; jtune reads LORA adapters");
        if (cfg.path("use_dora").asBoolean(false)) throw new UserError(cfgFile + ": use_dora: true (DoRA) is not supported");
        if (!cfg.path("bias").asText("none").equals("none")) throw new UserError(cfgFile + ": bias '" + cfg.path("bias").asText() + "' is not supported; expected \"none\"");
        for (String k : new String[] {"rank_pattern", "alpha_pattern"}) {
            if (cfg.has(k) && cfg.get(k).isObject() && cfg.get(k).size() > 0) {
                throw new UserError(cfgFile + ": per-module " + k + " is not supported; expected {}");
            }
        }
        if (cfg.hasNonNull("modules_to_save") && cfg.get("modules_to_save").size() > 0) {
            throw new UserError(cfgFile + ": modules_to_save " + cfg.get("modules_to_save") + " is not supported");
        }
        int r = cfg.path("r").asInt(0);
        double alpha = cfg.path("lora_alpha").asDouble(0);
        if (r < 1 || !(alpha > 0)) throw new UserError(cfgFile + ": expected r >= 1 and lora_alpha > 0, got r " + r + ", lora_alpha " + alpha);
        List<String> targets = new ArrayList<>();
        cfg.path("target_modules").forEach(n -> targets.add(n.asText()));
        if (cfg.path("target_modules").isTextual()) targets.add(cfg.get("target_modules").asText());
        LoraSpec spec = new LoraSpec(r, alpha, cfg.path("lora_dropout").asDouble(0), targets,
                cfg.path("use_rslora").asBoolean(false), cfg.path("init_lora_weights").asBoolean(true));

        Map<String, LoraTargets.Linear> linear = LoraTargets.linearModules(c);
        Map<String, Tensor[]> pairs = new LinkedHashMap<>();
        Path weights = dir.resolve(WEIGHTS);
        if (!Files.isRegularFile(weights)) throw new UserError(dir + ": no " + WEIGHTS + " (jtune reads safetensors adapters)");
        try (SafetensorsFile f = SafetensorsFile.open(weights)) {
            for (TensorInfo info : f.tensors().values()) {
                Matcher m = KEY.matcher(info.name());
                if (!m.matches()) {
                    throw new UserError(weights + ": tensor '" + info.name() + "' is not a LoRA weight; expected base_model.model.<module>.lora_A.weight / lora_B.weight");
                }
                String module = m.group(1);
                LoraTargets.Linear l = linear.get(module);
                if (l == null) {
                    throw new UserError(weights + ": tensor '" + info.name() + "': this " + c.modelType() + " model (" + c.where()
                            + ") has no linear module '" + module + "'; is the adapter for another base model?");
                }
                boolean isA = m.group(2).equals("A");
                long[] want = isA ? new long[] {r, l.in()} : new long[] {l.out(), r};
                if (!Arrays.equals(want, info.shape())) {
                    throw new UserError(weights + ": tensor '" + info.name() + "' has shape " + Arrays.toString(info.shape())
                            + ", expected " + Arrays.toString(want) + " for r=" + r + " on this model; is the adapter for another base model?");
                }
                Tensor t = f.tensor(info.name()).to(device, ScalarType.Float).detach().clone();
                if (trainable) t.requires_grad_(true);
                t.retainReference();
                pairs.computeIfAbsent(module, k -> new Tensor[2])[isA ? 0 : 1] = t;
            }
        }
        Map<String, LoraAdapter> adapters = new LinkedHashMap<>();
        for (LoraTargets.Linear l : linear.values()) {   // model order
            Tensor[] p = pairs.get(l.module());
            if (p == null) continue;
            if (p[0] == null || p[1] == null) {
                throw new UserError(weights + ": module '" + l.module() + "' has lora_" + (p[0] == null ? "B" : "A") + " but no lora_" + (p[0] == null ? "A" : "B"));
            }
            adapters.put(l.module(), new LoraAdapter(p[0], p[1], spec.scaling(), spec.dropout()));
        }
        if (adapters.isEmpty()) throw new UserError(weights + ": no LoRA weights");
        return new Loaded(spec, adapters, cfg.path("base_model_name_or_path").asText(""));
    }
}
