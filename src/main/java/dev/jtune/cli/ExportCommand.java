package dev.jtune.cli;

import dev.jtune.export.ExportType;
import dev.jtune.export.GgufExporter;
import dev.jtune.export.OllamaModelfile;
import dev.jtune.quant.QuantizedCheckpoint;
import dev.jtune.util.UserError;
import picocli.CommandLine.Command;
import picocli.CommandLine.Option;

import java.nio.file.Path;
import java.util.Locale;
import java.util.stream.Collectors;

@Command(name = "export", mixinStandardHelpOptions = true,
        description = {"Write a model (with a LoRA adapter merged in, if given) as one GGUF file for llama.cpp, Ollama and LM Studio,",
                "or (--format gguf-lora) the adapter alone as a llama.cpp LoRA GGUF for llama-cli --lora."})
final class ExportCommand implements Runnable {
    @Option(names = "--model", required = true, paramLabel = "DIR", description = "The Hugging Face model directory (the base, for an adapter).")
    Path model;

    @Option(names = "--adapter", paramLabel = "DIR", description = "A PEFT LoRA adapter: merged into the export (--format gguf) or exported alone (gguf-lora).")
    Path adapter;

    @Option(names = "--format", defaultValue = "gguf", description = "gguf (a whole model) or gguf-lora (the adapter alone). Default: ${DEFAULT-VALUE}.")
    String format;

    @Option(names = "--type", defaultValue = "f16", description = "f32, f16, bf16, q8_0, q4_0, q4_k_m or q6_k. Default: ${DEFAULT-VALUE}.")
    String type;

    @Option(names = "--out", required = true, paramLabel = "FILE.gguf", description = "The GGUF file to write (written to a temporary file and renamed).")
    Path out;

    @Option(names = "--ollama-modelfile", description = "Also write an Ollama Modelfile beside the GGUF (FROM, TEMPLATE, stop tokens, parameters).")
    boolean ollamaModelfile;

    @Override
    public void run() {
        GgufExporter.Format f = switch (format.toLowerCase(Locale.ROOT)) {
            case "gguf" -> GgufExporter.Format.GGUF;
            case "gguf-lora" -> GgufExporter.Format.GGUF_LORA;
            default -> throw new UserError("--format: unknown format '" + format + "'; expected gguf or gguf-lora");
        };
        ExportType t = ExportType.parse(type);
        if (QuantizedCheckpoint.isQuantized(model)) {
            throw new UserError("--model: " + model + " is a 4-bit jtune checkpoint; export the original 16/32-bit model"
                    + " (llama.cpp quantizes with its own formats: use --type q4_k_m)");
        }
        if (ollamaModelfile && f == GgufExporter.Format.GGUF_LORA) {
            throw new UserError("--ollama-modelfile: write it for the model's GGUF (--format gguf); Ollama takes a LoRA GGUF through ADAPTER in that Modelfile");
        }
        GgufExporter.Result r = GgufExporter.export(model, adapter, f, t, out, System.out);
        for (String note : r.notes()) System.out.println("note: " + note);
        String types = r.typeCounts().entrySet().stream().map(e -> e.getValue() + " " + e.getKey())
                .collect(Collectors.joining(", "));
        System.out.printf(Locale.ROOT, "wrote %s: %d tensors (%s), %.1f MiB%n", r.file(), r.tensors(), types, r.bytes() / 1048576.0);
        if (ollamaModelfile) {
            Path mf = OllamaModelfile.write(model, adapter, out);
            System.out.println("wrote " + mf + " (ollama create NAME -f " + mf + ")");
        }
    }
}
