package dev.jtune.peft;

import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.SerializationFeature;
import com.fasterxml.jackson.databind.node.ObjectNode;
import dev.jtune.io.AtomicFiles;
import dev.jtune.io.SafetensorsWriter;
import dev.jtune.io.WeightFiles;
import dev.jtune.io.WriteError;
import dev.jtune.model.ModelConfig;
import dev.jtune.model.ModelLoader;
import dev.jtune.model.ModelWriter;
import dev.jtune.model.ParameterSpec;
import dev.jtune.quant.FourBitCodec;
import dev.jtune.quant.ModelQuantizer;
import dev.jtune.quant.QuantizationConfig;
import dev.jtune.quant.QuantizedCheckpoint;
import dev.jtune.quant.QuantizedModelLoader;
import dev.jtune.quant.QuantizedTensor;
import dev.jtune.util.Tensors;
import org.bytedeco.javacpp.PointerScope;
import org.bytedeco.pytorch.Device;
import org.bytedeco.pytorch.NoGradGuard;
import org.bytedeco.pytorch.Tensor;
import org.bytedeco.pytorch.global.torch.ScalarType;

import java.io.IOException;
import java.io.PrintStream;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardCopyOption;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

/**
 * Merges an adapter trained on a 4-bit base (QLoRA) onto the weights it was trained against: the 4-bit base's
 * dequantized weights, {@code W' = dequantize(Q) + scaling · B A}, written as an ordinary 16/32-bit Hugging Face
 * directory (no {@code quantization_config}). The 4-bit base is either a pre-quantized directory (dequantized with its
 * stored maps) or a 16/32-bit directory the adapter was trained on with quantize-on-load (its
 * {@link PeftAdapter#BASE_QUANTIZATION}): each weight is quantized with those settings, exactly as the training run
 * did, and dequantized. The other tensors are copied as stored.
 *
 * <p>Streams by output shard (transformers' 5 GB): only the current shard's tensors are held. As {@link LoraMerge},
 * everything is checked first and the files go to a hidden directory renamed into place at the end.
 */
public final class QuantizedMerge {
    private static final ObjectMapper JSON = new ObjectMapper().enable(SerializationFeature.INDENT_OUTPUT);

    private QuantizedMerge() {}

    /** Whether {@code modelDir} with {@code adapterDir} is a 4-bit base: a pre-quantized dir, or an adapter that records one. */
    public static boolean fourBitBase(Path modelDir, Path adapterDir) {
        return QuantizedCheckpoint.isQuantized(modelDir) || PeftAdapter.baseQuantization(adapterDir) != null;
    }

    /** One stored tensor of the base: its name in the files, its canonical name, and how to produce it dense. */
    private record Source(String file, String name, long numel, ScalarType dtype) {}

    /** @param dtype output dtype, or null for each tensor's own (a quantized weight's: its quant state's dtype) */
    public static void merge(Path modelDir, Path adapterDir, Path outDir, ScalarType dtype, PrintStream log) {
        boolean stored = QuantizedCheckpoint.isQuantized(modelDir);
        QuantizationConfig q = stored ? null : PeftAdapter.baseQuantization(adapterDir);
        ModelConfig c = ModelConfig.read(modelDir);
        if (!stored) ModelLoader.inspect(modelDir);   // refuses a broken base first
        PeftAdapter.Loaded adapter = PeftAdapter.load(adapterDir, c, new Device("cpu"), false);
        LoraMerge.checkOutputDir(outDir, modelDir, adapterDir);
        boolean conv1d = c.family() == ModelConfig.Family.GPT2;
        Map<String, LoraTargets.Linear> linear = LoraTargets.linearModules(c);
        Map<String, ParameterSpec.Entry> spec = ParameterSpec.of(c);
        try (QuantizedCheckpoint ck = stored ? QuantizedCheckpoint.open(modelDir) : null;
             WeightFiles w = stored ? null : WeightFiles.open(modelDir); NoGradGuard ng = new NoGradGuard()) {
            List<Source> sources = new ArrayList<>();
            Iterable<String> names = stored ? concat(ck.plain(), ck.quantized().keySet()) : w.names();
            for (String file : names) {
                String name = ParameterSpec.canonicalName(c, file);
                if (name == null || !spec.containsKey(name)) continue;
                QuantizedTensor qt = stored ? ck.quantized().get(file) : null;
                ScalarType st = qt != null ? qt.state().scalarType()
                        : (stored ? ck.tensor(file) : w.tensor(file)).scalar_type().intern();
                long numel = 1;
                for (long d : qt != null ? qt.state().shape() : spec.get(name).shape()) numel *= d;
                sources.add(new Source(file, name, numel, dtype != null ? dtype : st));
            }
            List<String> order = new ArrayList<>(spec.keySet());
            sources.sort(java.util.Comparator.comparingInt(s -> order.indexOf(s.name())));   // the architecture's order
            Path tmp = LoraMerge.temporarySibling(outDir);
            boolean done = false;
            try {
                Files.createDirectories(tmp);
                int merged = write(sources, tmp, (src) -> {
                    Tensor t;
                    QuantizedTensor qt = stored ? ck.quantized().get(src.file()) : null;
                    if (qt != null) {
                        t = FourBitCodec.dequantize(qt);                                         // (out, in)
                        if (conv1d) t = t.t();                                                   // back to Conv1D's (in, out)
                    } else if (!stored && QuantizedModelLoader.quantizes(c, src.name(), q.effectiveSkipModules())) {
                        Tensor wt = w.tensor(src.file());
                        QuantizedTensor fresh = FourBitCodec.quantize(conv1d ? wt.t().contiguous() : wt, q.type(), q.doubleQuant(),
                                w.fileOf(src.file()) + ": tensor '" + src.file() + "'");          // as the training run did
                        t = FourBitCodec.dequantize(fresh);
                        if (conv1d) t = t.t();
                    } else {
                        t = stored ? ck.tensor(src.file()) : w.tensor(src.file());
                    }
                    String module = src.name().endsWith(".weight") ? src.name().substring(0, src.name().length() - 7) : null;
                    LoraAdapter a = module == null ? null : adapter.adapters().get(module);
                    if (a != null) {
                        Tensor delta = a.weightDelta();                                          // (out, in)
                        if (linear.get(module).conv1d()) delta = delta.t();
                        t = t.to(ScalarType.Float).add(delta);
                    }
                    return t.to(src.dtype()).contiguous();
                }, adapter.adapters().size(), log);
                ObjectNode cfg = c.raw().deepCopy();
                cfg.remove(QuantizationConfig.KEY);
                cfg.put("torch_dtype", Tensors.hfName(dtype != null ? dtype : sources.get(sources.size() - 1).dtype()));
                AtomicFiles.write(tmp.resolve("config.json"), JSON.writeValueAsBytes(cfg));
                ModelWriter.copyGenerationConfig(modelDir, tmp);
                ModelWriter.copyTokenizer(modelDir, tmp);
                ModelWriter.copyTokenizer(adapterDir, tmp);
                if (Files.isDirectory(outDir)) Files.delete(outDir);
                Files.move(tmp, outDir, StandardCopyOption.ATOMIC_MOVE);
                done = true;
                AtomicFiles.fsyncDirectory(tmp.getParent());
                if (log != null) {
                    log.printf("merged %d adapted weights onto the dequantized 4-bit base (%s) into %s%n", merged,
                            stored ? "stored in " + modelDir : "quantized from " + modelDir + " as the adapter's " + PeftAdapter.BASE_QUANTIZATION + " says",
                            outDir);
                }
            } catch (IOException e) {
                throw WriteError.writing(outDir, "the merged model", e);
            } finally {
                if (!done) LoraMerge.deleteQuietly(tmp);
            }
        }
    }

    private interface Producer {
        Tensor dense(Source s);
    }

    /** Groups the outputs into shards of at most 5 GB, writes each shard from tensors produced just for it; returns the adapted count. */
    private static int write(List<Source> sources, Path dir, Producer producer, int adapted, PrintStream log) throws IOException {
        List<List<Source>> shards = new ArrayList<>();
        List<Source> cur = new ArrayList<>();
        long curBytes = 0, total = 0;
        for (Source s : sources) {
            long bytes = s.numel() * Tensors.elementSize(s.dtype());
            if (!cur.isEmpty() && curBytes + bytes > ModelQuantizer.MAX_SHARD_BYTES) {
                shards.add(cur);
                cur = new ArrayList<>();
                curBytes = 0;
            }
            cur.add(s);
            curBytes += bytes;
            total += bytes;
        }
        shards.add(cur);
        Map<String, String> weightMap = new LinkedHashMap<>();
        for (int i = 0; i < shards.size(); i++) {
            String fileName = shards.size() == 1 ? WeightFiles.SINGLE : String.format("model-%05d-of-%05d.safetensors", i + 1, shards.size());
            try (PointerScope scope = new PointerScope()) {
                Map<String, Tensor> out = new LinkedHashMap<>();
                for (Source s : shards.get(i)) {
                    out.put(s.file(), producer.dense(s));
                    weightMap.put(s.file(), fileName);
                }
                SafetensorsWriter.write(dir.resolve(fileName), out, Map.of("format", "pt"));
            }
            if (log != null) log.printf("merged shard %d/%d: %s%n", i + 1, shards.size(), fileName);
        }
        if (shards.size() > 1) {
            ObjectNode index = JSON.createObjectNode();
            index.putObject("metadata").put("total_size", total);
            ObjectNode map = index.putObject("weight_map");
            weightMap.forEach(map::put);
            AtomicFiles.write(dir.resolve(WeightFiles.INDEX), JSON.writeValueAsBytes(index));
        }
        return adapted;
    }

    private static List<String> concat(List<String> a, java.util.Collection<String> b) {
        List<String> out = new ArrayList<>(a);
        out.addAll(b);
        return out;
    }
}
