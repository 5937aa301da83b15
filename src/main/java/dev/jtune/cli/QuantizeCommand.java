package dev.jtune.cli;

import dev.jtune.quant.ModelQuantizer;
import dev.jtune.quant.QuantType;
import picocli.CommandLine.Command;
import picocli.CommandLine.Option;

import java.nio.file.Path;
import java.util.List;
import java.util.Locale;

@Command(name = "quantize", mixinStandardHelpOptions = true,
        description = "Write a 4-bit (bitsandbytes NF4/FP4, QLoRA) copy of a model directory, in the layout transformers + bitsandbytes save.")
final class QuantizeCommand implements Runnable {
    @Option(names = "--model", required = true, paramLabel = "DIR", description = "Model directory (config.json + safetensors, 16 or 32 bit).")
    Path model;

    @Option(names = "--out", required = true, paramLabel = "DIR", description = "New (or empty) directory for the quantized model.")
    Path out;

    @Option(names = "--quant-type", paramLabel = "nf4|fp4", defaultValue = "nf4", description = "4-bit data type (default: ${DEFAULT-VALUE}).")
    String quantType;

    @Option(names = "--double-quant", description = "Quantize the absmax constants too (8-bit, blocks of 256): about 0.127 fewer bits per parameter.")
    boolean doubleQuant;

    @Option(names = "--skip-modules", split = ",", paramLabel = "NAME[,NAME…]",
            description = "Modules kept unquantized (llm_int8_skip_modules); default: lm_head. Embeddings and norms are never quantized.")
    List<String> skipModules = List.of();

    @Override
    public void run() {
        QuantType type = QuantType.parse(quantType, "--quant-type");
        ModelQuantizer.Result r = ModelQuantizer.quantize(model, out, type, doubleQuant, skipModules, ModelQuantizer.MAX_SHARD_BYTES);
        System.out.printf(Locale.ROOT, "quantized %d linear weights to %s%s; kept %d unquantized%s%n", r.quantized().size(),
                type.bnbName(), doubleQuant ? " with double quantization" : "", r.kept().size(),
                r.kept().isEmpty() ? "" : " (" + String.join(", ", r.kept()) + ")");
        System.out.printf(Locale.ROOT, "weights: %s -> %s (%.3f bytes per parameter, %,d parameters)%n",
                InspectCommand.human(r.inputBytes(), "B"), InspectCommand.human(r.outputBytes(), "B"), r.bytesPerParameter(),
                r.parameters());
        System.out.println("wrote " + out);
    }
}
