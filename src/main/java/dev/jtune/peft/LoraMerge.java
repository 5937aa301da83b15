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
import java.nio.file.StandardCopyOption;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.Comparator;
import java.util.LinkedHashMap;
import java.util.LinkedHashSet;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.concurrent.ThreadLocalRandom;
import java.util.stream.Stream;

/**
 * Folds a LoRA adapter into its base model: {@code W' = W + scaling · B A} (transposed for GPT-2's
 * Conv1D), written as a Hugging Face directory with the base's shard layout. Streams one shard at a
 * time: the inputs are memory-mapped and only the current shard's outputs are held, so peak memory is
 * about one shard, never the whole model.
 *
 * <p>Everything that can be checked is checked before the first byte is written (the base, the adapter and
 * whether each adapted module has a stored weight of the right shape, and {@code --out}); the files then go to
 * a hidden directory beside {@code --out} that is renamed into place at the end, so a failure at any point
 * (a full disk included) leaves no partial {@code --out}.
 */
public final class LoraMerge {
    private static final ObjectMapper JSON = new ObjectMapper().enable(SerializationFeature.INDENT_OUTPUT);

    private LoraMerge() {}

    /** @param dtype output dtype, or null for the base's stored dtype */
    public static void merge(Path modelDir, Path adapterDir, Path outDir, ScalarType dtype, PrintStream log) {
        ModelLoader.Report report = ModelLoader.inspect(modelDir);   // refuses a broken base first
        ModelConfig c = report.config();
        PeftAdapter.Loaded adapter = PeftAdapter.load(adapterDir, c, new Device("cpu"), false);
        checkOutputDir(outDir, modelDir, adapterDir);
        Map<String, LoraTargets.Linear> linear = LoraTargets.linearModules(c);
        try (WeightFiles w = WeightFiles.open(modelDir); NoGradGuard ng = new NoGradGuard()) {
            Map<String, String> adaptedWeights = adaptedWeights(w, c, adapter, linear, adapterDir);
            Path tmp = temporarySibling(outDir);
            boolean done = false;
            try {
                write(w, c, adapter, adaptedWeights, linear, modelDir, adapterDir, tmp, dtype, outDir, log);
                if (Files.isDirectory(outDir)) Files.delete(outDir);   // empty: checkOutputDir said so
                Files.move(tmp, outDir, StandardCopyOption.ATOMIC_MOVE);
                done = true;
                AtomicFiles.fsyncDirectory(tmp.getParent());
            } catch (IOException e) {
                throw WriteError.writing(outDir, "the merged model", e);
            } finally {
                if (!done) deleteQuietly(tmp);
            }
        }
    }

    /**
     * Refuses an {@code --out} that is the base or the adapter directory, that exists and is not an empty
     * directory, or that cannot be created (an ancestor that is a file, or not writable). Writes nothing.
     */
    static void checkOutputDir(Path outDir, Path modelDir, Path adapterDir) {
        Path out = outDir.toAbsolutePath().normalize();
        if (out.equals(modelDir.toAbsolutePath().normalize())) {
            throw new UserError("--out: " + outDir + " is the base model directory; write the merged model elsewhere");
        }
        if (out.equals(adapterDir.toAbsolutePath().normalize())) {
            throw new UserError("--out: " + outDir + " is the adapter directory; write the merged model elsewhere");
        }
        if (Files.exists(out)) {
            if (!Files.isDirectory(out)) throw new UserError("--out: " + outDir + " exists and is not a directory");
            try (Stream<Path> s = Files.list(out)) {
                if (s.findAny().isPresent()) {
                    throw new UserError("--out: " + outDir + " is not empty; give a new (or empty) directory for the merged model");
                }
            } catch (IOException e) {
                throw new UserError("--out: " + outDir + ": cannot list it: " + WriteError.reason(e), e);
            }
        }
        Path existing = out.getParent();
        while (existing != null && !Files.exists(existing)) existing = existing.getParent();
        if (existing == null || !Files.isDirectory(existing)) {
            throw new UserError("--out: " + outDir + " cannot be created: " + existing + " is not a directory");
        }
        if (!Files.isWritable(existing)) {
            throw new UserError("--out: " + outDir + " cannot be created: no permission to write in " + existing);
        }
    }

    /**
     * The adapted module of each stored base weight that has one (by the weight's name in the base's files),
     * after checking that every adapted module has a stored weight whose shape is that of {@code B A}.
     */
    public static Map<String, String> adaptedWeights(WeightFiles w, ModelConfig c, PeftAdapter.Loaded adapter,
                                                   Map<String, LoraTargets.Linear> linear, Path adapterDir) {
        Map<String, String> byWeight = new LinkedHashMap<>();
        Set<String> found = new LinkedHashSet<>();
        for (String name : w.names()) {
            String canon = ParameterSpec.canonicalName(c, name);
            String module = canon != null && canon.endsWith(".weight") ? canon.substring(0, canon.length() - 7) : null;
            LoraAdapter a = module == null ? null : adapter.adapters().get(module);
            if (a == null) continue;
            long out = a.b().size(0), in = a.a().size(1);
            long[] want = linear.get(module).conv1d() ? new long[] {in, out} : new long[] {out, in};   // Conv1D stores (in, out)
            long[] have = w.info(name).shape();
            if (!Arrays.equals(want, have)) {
                throw new UserError(w.fileOf(name) + ": tensor '" + name + "' has shape " + Arrays.toString(have) + ", but the adapter's '"
                        + module + "' (" + adapterDir + ") needs " + Arrays.toString(want) + "; is the adapter for another base model?");
            }
            byWeight.put(name, module);
            found.add(module);
        }
        List<String> missing = new ArrayList<>(adapter.adapters().keySet());
        missing.removeAll(found);
        if (!missing.isEmpty()) {
            throw new UserError(adapterDir + ": the base model " + w.dir() + " stores no weight for the adapted module"
                    + (missing.size() == 1 ? " " : "s ") + missing + "; is the adapter for another base model?");
        }
        return byWeight;
    }

    private static void write(WeightFiles w, ModelConfig c, PeftAdapter.Loaded adapter, Map<String, String> adaptedWeights, Map<String, LoraTargets.Linear> linear,
                              Path modelDir, Path adapterDir, Path dir, ScalarType dtype, Path outDir, PrintStream log) throws IOException {
        Map<Path, List<String>> byShard = new LinkedHashMap<>();
        for (String name : w.names()) byShard.computeIfAbsent(w.fileOf(name), k -> new ArrayList<>()).add(name);
        Files.createDirectories(dir);
        Map<String, String> weightMap = new LinkedHashMap<>();
        long total = 0;
        int i = 0;
        for (Map.Entry<Path, List<String>> shard : byShard.entrySet()) {
            String fileName = byShard.size() == 1 ? WeightFiles.SINGLE : shard.getKey().getFileName().toString();
            try (PointerScope scope = new PointerScope()) {
                Map<String, Tensor> out = new LinkedHashMap<>();
                for (String name : shard.getValue()) {
                    Tensor t = w.tensor(name);
                    ScalarType target = dtype != null ? dtype : t.scalar_type();
                    String module = adaptedWeights.get(name);
                    if (module != null) {
                        Tensor delta = adapter.adapters().get(module).weightDelta();      // (out, in)
                        if (linear.get(module).conv1d()) delta = delta.t();               // Conv1D stores (in, out)
                        t = t.to(ScalarType.Float).add(delta).to(target);
                    } else if (t.scalar_type().intern() != target.intern()) {
                        t = t.to(target);
                    }
                    out.put(name, t);
                    weightMap.put(name, fileName);
                    total += t.numel() * Tensors.elementSize(target);
                }
                SafetensorsWriter.write(dir.resolve(fileName), out, Map.of("format", "pt"));
            }
            i++;
            if (log != null) log.printf("merged shard %d/%d: %s%n", i, byShard.size(), fileName);
        }
        if (byShard.size() > 1) {
            ObjectNode index = JSON.createObjectNode();
            index.putObject("metadata").put("total_size", total);
            ObjectNode map = index.putObject("weight_map");
            weightMap.forEach(map::put);
            AtomicFiles.write(dir.resolve(WeightFiles.INDEX), JSON.writeValueAsBytes(index));
        }
        ModelWriter.writeConfig(dir, c, dtype != null ? Tensors.hfName(dtype) : c.raw().path("torch_dtype").asText("float32"));
        ModelWriter.copyGenerationConfig(modelDir, dir);
        ModelWriter.copyTokenizer(modelDir, dir);
        ModelWriter.copyTokenizer(adapterDir, dir);   // a fine-tune's chat template travels with its adapter
        if (log != null) {
            log.printf("merged %d adapted weights into %s (%d shard%s)%n", adaptedWeights.size(), outDir, byShard.size(), byShard.size() == 1 ? "" : "s");
        }
    }

    /** {@code .NAME.merge-<random>.tmp} in --out's parent (created if missing): same file system, so the final rename is atomic. */
    static Path temporarySibling(Path outDir) {
        Path out = outDir.toAbsolutePath().normalize();
        return out.getParent().resolve("." + out.getFileName() + ".merge-" + Long.toHexString(ThreadLocalRandom.current().nextLong()) + ".tmp");
    }

    static void deleteQuietly(Path dir) {
        if (!Files.exists(dir)) return;
        try (Stream<Path> s = Files.walk(dir)) {
            for (Path p : s.sorted(Comparator.reverseOrder()).toList()) Files.deleteIfExists(p);
        } catch (IOException | RuntimeException ignored) {
            // best effort: the failure being reported matters more than a leftover hidden directory
        }
    }
}
