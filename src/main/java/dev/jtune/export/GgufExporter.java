package dev.jtune.export;

import dev.jtune.io.WeightFiles;
import dev.jtune.io.WriteError;
import dev.jtune.model.ModelConfig;
import dev.jtune.model.ModelLoader;
import dev.jtune.peft.LoraAdapter;
import dev.jtune.peft.LoraMerge;
import dev.jtune.peft.LoraTargets;
import dev.jtune.peft.PeftAdapter;
import dev.jtune.util.Tensors;
import dev.jtune.util.UserError;
import org.bytedeco.javacpp.PointerScope;
import org.bytedeco.pytorch.Device;
import org.bytedeco.pytorch.NoGradGuard;
import org.bytedeco.pytorch.Tensor;
import org.bytedeco.pytorch.global.torch.ScalarType;

import java.io.IOException;
import java.io.PrintStream;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Locale;
import java.util.Map;

/**
 * {@code jtune export}: a Hugging Face model directory (optionally with a LoRA adapter) to one GGUF file for
 * llama.cpp and the runtimes built on it. Every check (architecture, tokenizer, tensor names, block sizes) runs
 * before the first byte is written; then tensors stream one at a time from the mapped safetensors: read, merged
 * with the adapter's delta, permuted/transposed, encoded, written. Peak memory is about one tensor.
 */
@SuppressWarnings("try")
public final class GgufExporter {
    /** {@code --format}: a whole model, or a LoRA adapter for {@code llama-cli --lora}. */
    public enum Format { GGUF, GGUF_LORA }

    public record Result(Path file, long bytes, int tensors, Map<GgmlType, Integer> typeCounts, List<String> notes) {}

    private GgufExporter() {}

    public static Result export(Path modelDir, Path adapterDir, Format format, ExportType type, Path out, PrintStream log) {
        ModelConfig c = ModelLoader.inspect(modelDir).config();   // refuses a broken base first
        List<String> notes = new ArrayList<>(GgufArchitecture.check(c));
        checkOut(out);
        PeftAdapter.Loaded adapter = adapterDir == null ? null : PeftAdapter.load(adapterDir, c, new Device("cpu"), false);
        if (format == Format.GGUF_LORA && adapter == null) throw new UserError("--format gguf-lora needs --adapter DIR");
        if (format == Format.GGUF_LORA && type.base.quantized()) {
            throw new UserError("--format gguf-lora: --type " + type.cliName() + " is not supported for adapters; use f32, f16 or bf16");
        }
        GgufMetadata md = new GgufMetadata();
        List<GgufTensor> tensors;
        try (WeightFiles w = WeightFiles.open(modelDir); NoGradGuard ng = new NoGradGuard()) {
            if (format == Format.GGUF) {
                md.putString("general.architecture", GgufArchitecture.name(c));
                md.putString("general.type", "model");
                md.putString("general.name", name(modelDir));
                md.putU32("general.file_type", type.fileType);
                if (type.base.quantized()) md.putU32("general.quantization_version", 2);
                GgufArchitecture.addHyperparameters(md, c);
                Path tokenizerDir = adapterDir != null && Files.isRegularFile(adapterDir.resolve("tokenizer.json")) ? adapterDir : modelDir;
                TokenizerMetadata.Summary tok = TokenizerMetadata.add(md, tokenizerDir, c.vocabSize());
                notes.addAll(tok.notes());
                if (log != null) log.printf("tokenizer: %s (pre %s), %d tokens%s%n", tok.model(), tok.pre(), tok.tokens(),
                        tok.merges() > 0 ? ", " + tok.merges() + " merges" : "");
                tensors = modelTensors(w, c, adapter, adapterDir, type);
            } else {
                md.putString("general.architecture", GgufArchitecture.name(c));
                md.putString("general.type", "adapter");
                md.putString("general.name", name(adapterDir));
                md.putU32("general.file_type", type.fileType);
                md.putString("adapter.type", "lora");
                md.putF32("adapter.lora.alpha", adapter.spec().scaling() * adapter.spec().r());   // llama.cpp scales by alpha / r
                tensors = loraTensors(c, adapter, type);
            }
            Map<GgmlType, Integer> counts = new LinkedHashMap<>();
            for (GgufTensor t : tensors) counts.merge(t.type(), 1, Integer::sum);
            long start = System.nanoTime();
            try {
                GgufWriter.write(out, md, tensors, i -> {
                    if (log != null && (i + 1) % 16 == 0 || log != null && i + 1 == tensors.size()) {
                        log.printf(Locale.ROOT, "  %d/%d tensors (%.1f s)%n", i + 1, tensors.size(), (System.nanoTime() - start) / 1e9);
                    }
                });
            } catch (IOException e) {
                throw WriteError.writing(out, "the GGUF file", e);
            }
            long bytes;
            try {
                bytes = Files.size(out);
            } catch (IOException e) {
                throw WriteError.writing(out, "the GGUF file", e);
            }
            return new Result(out, bytes, tensors.size(), counts, notes);
        }
    }

    private static List<GgufTensor> modelTensors(WeightFiles w, ModelConfig c, PeftAdapter.Loaded adapter, Path adapterDir, ExportType type) {
        Map<String, String> adapted = adapter == null ? Map.of()
                : LoraMerge.adaptedWeights(w, c, adapter, LoraTargets.linearModules(c), adapterDir);
        boolean tied = true;
        for (String name : w.names()) {
            TensorNameMap.Mapped m = TensorNameMap.map(c, name);
            if (m != null && m.ggufName().equals("output.weight")) tied = false;
        }
        QuantMix mix = new QuantMix(type, c.numLayers(), tied);
        List<GgufTensor> out = new ArrayList<>();
        for (String name : w.names()) {
            TensorNameMap.Mapped m = TensorNameMap.map(c, name);
            if (m == null) continue;
            long[] shape = w.info(name).shape().clone();
            if (m.transform() == TensorNameMap.Transform.TRANSPOSE) shape = new long[] {shape[1], shape[0]};
            GgmlType t = TensorTypeChoice.choose(type, m.ggufName(), shape, mix);
            String module = adapted.get(name);
            LoraAdapter lora = module == null ? null : adapter.adapters().get(module);
            out.add(new GgufTensor(m.ggufName(), shape, t, ch -> {
                try (PointerScope scope = new PointerScope()) {
                    Tensor x = w.tensor(name);
                    if (lora != null) {
                        Tensor delta = lora.weightDelta();                                          // (out, in)
                        if (m.transform() == TensorNameMap.Transform.TRANSPOSE) delta = delta.t();  // Conv1D stores (in, out)
                        x = x.to(ScalarType.Float).add(delta);
                    }
                    TensorEncoder.write(transform(x, m.transform(), c), t, ch);
                }
            }));
        }
        float[] ropeFreqs = GgufArchitecture.ropeFreqFactors(c);
        if (ropeFreqs != null) {
            out.add(new GgufTensor("rope_freqs.weight", new long[] {ropeFreqs.length}, GgmlType.F32, ch -> {
                try (PointerScope scope = new PointerScope()) {
                    TensorEncoder.write(Tensors.floats(ropeFreqs), GgmlType.F32, ch);
                }
            }));
        }
        return out;
    }

    /** llama.cpp's LoRA adapter tensors: {@code <weight>.lora_a} (r, in) and {@code <weight>.lora_b} (out, r). */
    private static List<GgufTensor> loraTensors(ModelConfig c, PeftAdapter.Loaded adapter, ExportType type) {
        List<GgufTensor> out = new ArrayList<>();
        for (Map.Entry<String, LoraAdapter> e : adapter.adapters().entrySet()) {
            TensorNameMap.Mapped m = TensorNameMap.map(c, e.getKey() + ".weight");
            LoraAdapter a = e.getValue();
            long[] aShape = Tensors.shape(a.a()), bShape = Tensors.shape(a.b());
            // GPT-2's Conv1D: PEFT still keeps A (r, in), B (out, r); the delta B A is llama.cpp's (out, in) layout.
            // Llama q/k: delta rows are permuted, so B's rows are; A is untouched.
            TensorNameMap.Transform bTransform = m.transform() == TensorNameMap.Transform.TRANSPOSE ? TensorNameMap.Transform.NONE : m.transform();
            GgmlType t = type.base;
            out.add(new GgufTensor(m.ggufName() + ".lora_a", aShape, t, ch -> {
                try (PointerScope scope = new PointerScope()) {
                    TensorEncoder.write(a.a().to(ScalarType.Float), t, ch);
                }
            }));
            out.add(new GgufTensor(m.ggufName() + ".lora_b", bShape, t, ch -> {
                try (PointerScope scope = new PointerScope()) {
                    TensorEncoder.write(transform(a.b().to(ScalarType.Float), bTransform, c), t, ch);
                }
            }));
        }
        return out;
    }

    private static Tensor transform(Tensor x, TensorNameMap.Transform t, ModelConfig c) {
        return switch (t) {
            case NONE -> x;
            case TRANSPOSE -> x.t().contiguous();
            case PERMUTE_Q -> QkPermutation.permute(x, c.numHeads());
            case PERMUTE_K -> QkPermutation.permute(x, c.numKvHeads());
        };
    }

    private static void checkOut(Path out) {
        if (Files.isDirectory(out)) throw new UserError("--out: " + out + " is a directory; give the GGUF file's path, e.g. model.gguf");
        Path parent = out.toAbsolutePath().getParent();
        if (parent == null || !Files.isDirectory(parent)) {
            throw new UserError("--out: " + out + ": its directory " + parent + " does not exist");
        }
        if (!Files.isWritable(parent)) throw new UserError("--out: " + out + ": no permission to write in " + parent);
    }

    private static String name(Path dir) {
        Path n = dir.toAbsolutePath().normalize().getFileName();
        return n == null ? "model" : n.toString();
    }
}
