package dev.jtune.cli;

import dev.jtune.model.ModelConfig;
import dev.jtune.model.ModelLoader;
import dev.jtune.quant.QuantizedCheckpoint;
import org.bytedeco.pytorch.global.torch.ScalarType;
import picocli.CommandLine.Command;
import picocli.CommandLine.Option;
import picocli.CommandLine.Parameters;

import java.nio.file.Path;
import java.util.LinkedHashMap;
import java.util.Locale;
import java.util.Map;

@Command(name = "inspect", mixinStandardHelpOptions = true,
        description = "Describe a Hugging Face model directory and validate every tensor against config.json.")
final class InspectCommand implements Runnable {
    @Parameters(index = "0", paramLabel = "DIR", description = "Model directory (config.json + safetensors).")
    Path dir;

    @Option(names = "--json", description = "Print JSON instead of a table.")
    boolean json;

    @Override
    public void run() {
        if (QuantizedCheckpoint.isQuantized(dir)) {   // 4-bit bitsandbytes directory: its own report
            QuantizedInspect.print(dir, json);
            return;
        }
        ModelLoader.Report r = ModelLoader.inspect(dir);
        ModelConfig c = r.config();
        long n = r.parameterCount();
        Map<String, Object> out = new LinkedHashMap<>();
        out.put("path", dir.toString());
        out.put("model_type", c.modelType());
        out.put("architecture", c.hfArchitecture());
        out.put("parameters", n);
        out.put("stored_dtype", r.storedDtype());
        out.put("weight_bytes", r.weightBytes());
        Map<String, Long> memory = new LinkedHashMap<>();
        memory.put("float32", ModelLoader.bytesIn(n, ScalarType.Float));
        memory.put("bfloat16", ModelLoader.bytesIn(n, ScalarType.BFloat16));
        out.put("weights_memory_bytes", memory);
        out.put("layers", c.numLayers());
        out.put("hidden_size", c.hiddenSize());
        out.put("intermediate_size", c.intermediateSize());
        out.put("attention_heads", c.numHeads());
        out.put("key_value_heads", c.numKvHeads());
        out.put("head_dim", c.headDim());
        out.put("vocab_size", c.vocabSize());
        out.put("max_position_embeddings", c.maxPositions());
        out.put("tie_word_embeddings", c.tied());
        if (c.family() == ModelConfig.Family.LLAMA) {
            out.put("rope_theta", c.ropeTheta());
            out.put("rope_scaling", c.ropeScaling() == null ? null : c.ropeScaling().type());
        }
        out.put("ignored_tensors", r.ignored());
        out.put("valid", true);
        if (json) {
            JsonOut.print(out);
            return;
        }
        System.out.printf(Locale.ROOT, "model         %s%n", dir);
        System.out.printf(Locale.ROOT, "architecture  %s (%s)%n", c.modelType(), c.hfArchitecture());
        System.out.printf(Locale.ROOT, "shape         %d layers, hidden %d, intermediate %d, heads %d (kv %d, head_dim %d), vocab %d, context %d%n",
                c.numLayers(), c.hiddenSize(), c.intermediateSize(), c.numHeads(), c.numKvHeads(), c.headDim(),
                c.vocabSize(), c.maxPositions());
        System.out.printf(Locale.ROOT, "parameters    %,d (%s)%n", n, human(n, ""));
        System.out.printf(Locale.ROOT, "stored dtype  %s, %s on disk%n", r.storedDtype(), human(r.weightBytes(), "B"));
        System.out.printf(Locale.ROOT, "weights need  %s in float32, %s in bfloat16%n",
                human(memory.get("float32"), "B"), human(memory.get("bfloat16"), "B"));
        if (!r.ignored().isEmpty()) System.out.printf(Locale.ROOT, "ignored       %s (buffers transformers ignores too)%n", r.ignored());
        System.out.println("validation    ok: every tensor matches config.json");
    }

    static String human(long v, String unit) {
        String[] prefixes = unit.equals("B") ? new String[] {"", "Ki", "Mi", "Gi", "Ti"} : new String[] {"", "K", "M", "B", "T"};
        double base = unit.equals("B") ? 1024 : 1000;
        double x = v;
        int i = 0;
        while (x >= base && i < prefixes.length - 1) {
            x /= base;
            i++;
        }
        return String.format(Locale.ROOT, i == 0 ? "%.0f %s%s" : "%.2f %s%s", x, prefixes[i], unit).trim();
    }
}
