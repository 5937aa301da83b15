package dev.jtune.cli;

import dev.jtune.quant.QuantizationConfig;
import dev.jtune.quant.QuantizedCheckpoint;
import dev.jtune.quant.QuantizedTensor;

import java.nio.file.Path;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Locale;
import java.util.Map;

/** {@code jtune inspect} of a 4-bit (bitsandbytes) directory: its storage and which modules are quantized. */
final class QuantizedInspect {
    private QuantizedInspect() {}

    static void print(Path dir, boolean json) {
        try (QuantizedCheckpoint c = QuantizedCheckpoint.open(dir)) {
            QuantizationConfig qc = c.config();
            long params = c.parameterCount();
            long bytes = c.storageBytes();
            long qParams = 0;
            List<String> modules = new ArrayList<>();
            for (Map.Entry<String, QuantizedTensor> e : c.quantized().entrySet()) {
                qParams += e.getValue().state().numel();
                modules.add(e.getKey().substring(0, e.getKey().length() - ".weight".length()));
            }
            long qBytes = c.quantizedBytes();
            List<String> kept = new ArrayList<>();
            for (String k : c.keptLinear()) kept.add(k.substring(0, k.length() - ".weight".length()));
            Map<String, Object> out = new LinkedHashMap<>();
            out.put("path", dir.toString());
            out.put("model_type", c.modelType());
            Map<String, Object> q = new LinkedHashMap<>();
            q.put("quant_type", qc.type().bnbName());
            q.put("double_quant", qc.doubleQuant());
            q.put("compute_dtype", qc.computeDtype());
            q.put("skip_modules", qc.effectiveSkipModules());
            out.put("quantization", q);
            out.put("parameters", params);
            out.put("weight_bytes", bytes);
            out.put("bytes_per_parameter", (double) bytes / params);
            out.put("quantized_parameters", qParams);
            out.put("quantized_bytes", qBytes);
            out.put("bytes_per_quantized_parameter", (double) qBytes / qParams);
            out.put("quantized_modules", modules);
            out.put("unquantized_linear_modules", kept);
            out.put("valid", true);
            if (json) {
                JsonOut.print(out);
                return;
            }
            System.out.printf(Locale.ROOT, "model         %s%n", dir);
            System.out.printf(Locale.ROOT, "architecture  %s, 4-bit %s%s, compute dtype %s%n", c.modelType(), qc.type().bnbName(),
                    qc.doubleQuant() ? " with double quantization" : "", qc.computeDtype());
            System.out.printf(Locale.ROOT, "parameters    %,d (%s)%n", params, InspectCommand.human(params, ""));
            System.out.printf(Locale.ROOT, "storage       %s on disk, %.3f bytes per parameter overall%n", InspectCommand.human(bytes, "B"),
                    (double) bytes / params);
            System.out.printf(Locale.ROOT, "quantized     %d modules, %,d parameters in %s: %.4f bytes per parameter%n", modules.size(),
                    qParams, InspectCommand.human(qBytes, "B"), (double) qBytes / qParams);
            System.out.printf(Locale.ROOT, "  modules     %s%n", summarize(modules));
            System.out.printf(Locale.ROOT, "kept 16/32-bit %s (plus embeddings, norms, biases)%n", kept.isEmpty() ? "no linear modules" : String.join(", ", kept));
            System.out.println("validation    ok: every quant state matches its tensors" + (c.modelType().isEmpty() ? "" : " and config.json's shapes"));
        }
    }

    /** Module names with the layer number replaced by '*', each pattern once: model.layers.*.mlp.up_proj. */
    static String summarize(List<String> modules) {
        java.util.LinkedHashMap<String, Integer> counts = new java.util.LinkedHashMap<>();
        for (String m : modules) counts.merge(m.replaceAll("\\.\\d+\\.", ".*."), 1, Integer::sum);
        List<String> parts = new ArrayList<>();
        counts.forEach((k, v) -> parts.add(v > 1 ? k + " (" + v + ")" : k));
        return String.join(", ", parts);
    }
}
