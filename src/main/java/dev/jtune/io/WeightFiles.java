package dev.jtune.io;

import com.fasterxml.jackson.core.JsonParser;
import com.fasterxml.jackson.core.JsonProcessingException;
import com.fasterxml.jackson.databind.DeserializationFeature;
import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.SerializationFeature;
import com.fasterxml.jackson.databind.node.ObjectNode;
import dev.jtune.util.UserError;
import org.bytedeco.pytorch.Tensor;

import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.DirectoryStream;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Collections;
import java.util.Iterator;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.regex.Pattern;

/**
 * The weights of a Hugging Face model directory: either one {@code model.safetensors}, or
 * {@code model.safetensors.index.json} and the shards it names ({@code {"metadata": {"total_size": …},
 * "weight_map": {"tensor name": "model-00001-of-00002.safetensors", …}}}). Like transformers, a single
 * {@code model.safetensors} wins when both are present.
 *
 * <p>Every shard is validated and mapped on {@link #open}; {@link #tensor} returns zero-copy views with
 * the lifetime described at {@link SafetensorsFile#tensor}.
 */
public final class WeightFiles implements AutoCloseable {

    public static final String SINGLE = "model.safetensors";
    public static final String INDEX = "model.safetensors.index.json";
    private static final Pattern SHARD = Pattern.compile("model-\\d{5}-of-\\d{5}\\.safetensors");
    private static final ObjectMapper JSON = new ObjectMapper()
            .enable(JsonParser.Feature.STRICT_DUPLICATE_DETECTION)
            .enable(DeserializationFeature.FAIL_ON_TRAILING_TOKENS);

    private final Path dir;
    private final List<SafetensorsFile> files;
    private final Map<String, SafetensorsFile> byName;

    private WeightFiles(Path dir, List<SafetensorsFile> files, Map<String, SafetensorsFile> byName) {
        this.dir = dir;
        this.files = files;
        this.byName = byName;
    }

    /**
     * Opens the weights of {@code modelDir} (a directory; a path to a single {@code .safetensors} file is
     * accepted too).
     *
     * @throws UserError if there are no weights, the index is malformed, a shard is missing or invalid, a
     *                   tensor of the index is absent from its shard, a shard holds a tensor the index
     *                   does not list, or a tensor appears in two shards
     */
    public static WeightFiles open(Path modelDir) {
        if (Files.isRegularFile(modelDir)) {
            return single(modelDir.getParent(), modelDir);
        }
        if (!Files.isDirectory(modelDir)) {
            throw new UserError(modelDir + ": no such directory (expected a model directory with " + SINGLE
                    + " or " + INDEX + ")");
        }
        Path single = modelDir.resolve(SINGLE);
        if (Files.isRegularFile(single)) {
            return single(modelDir, single);
        }
        Path index = modelDir.resolve(INDEX);
        if (Files.isRegularFile(index)) {
            return sharded(modelDir, index);
        }
        throw new UserError(modelDir + ": no weights found (expected " + SINGLE + " or " + INDEX
                + " with its shards; only safetensors is supported, not pytorch_model.bin)");
    }

    private static WeightFiles single(Path dir, Path file) {
        SafetensorsFile f = SafetensorsFile.open(file);
        Map<String, SafetensorsFile> byName = new LinkedHashMap<>();
        for (String n : f.tensors().keySet()) {
            byName.put(n, f);
        }
        return new WeightFiles(dir, List.of(f), byName);
    }

    private static WeightFiles sharded(Path dir, Path index) {
        Map<String, String> weightMap = readIndex(index);
        // Shards in the order the index first names them.
        Map<String, SafetensorsFile> shards = new LinkedHashMap<>();
        List<SafetensorsFile> opened = new ArrayList<>();
        try {
            for (String shard : new java.util.LinkedHashSet<>(weightMap.values())) {
                Path p = dir.resolve(shard).normalize();
                if (shard.isEmpty() || !dir.toAbsolutePath().normalize().equals(p.toAbsolutePath().getParent())) {
                    throw new UserError(index + ": shard \"" + shard
                            + "\" must be a file name in the model directory, without folders");
                }
                if (!Files.isRegularFile(p)) {
                    throw new UserError(index + ": shard " + shard + " is missing (expected " + p + ")");
                }
                SafetensorsFile f = SafetensorsFile.open(p);
                opened.add(f);
                shards.put(shard, f);
            }
            Map<String, SafetensorsFile> byName = new LinkedHashMap<>();
            Map<String, String> seenIn = new LinkedHashMap<>();
            for (Map.Entry<String, SafetensorsFile> s : shards.entrySet()) {
                for (String n : s.getValue().tensors().keySet()) {
                    String prev = seenIn.putIfAbsent(n, s.getKey());
                    if (prev != null) {
                        throw new UserError(index + ": tensor '" + n + "' is in two shards, " + prev + " and "
                                + s.getKey() + " (expected each tensor in exactly one)");
                    }
                    String listed = weightMap.get(n);
                    if (listed == null) {
                        throw new UserError(index + ": tensor '" + n + "' of shard " + s.getKey()
                                + " is not listed in the weight_map");
                    }
                }
            }
            for (Map.Entry<String, String> e : weightMap.entrySet()) {
                String actual = seenIn.get(e.getKey());
                if (!e.getValue().equals(actual)) {
                    throw new UserError(index + ": tensor '" + e.getKey() + "' is listed in shard " + e.getValue()
                            + " but " + (actual == null ? "is absent from it" : "is found in " + actual));
                }
                byName.put(e.getKey(), shards.get(e.getValue()));
            }
            return new WeightFiles(dir, List.copyOf(opened), byName);
        } catch (RuntimeException e) {
            opened.forEach(SafetensorsFile::close);
            throw e;
        }
    }

    /** The weight_map of an index file, in file order. */
    static Map<String, String> readIndex(Path index) {
        JsonNode root;
        try {
            String text = Files.readString(index, StandardCharsets.UTF_8);
            root = JSON.readTree(text);
        } catch (JsonProcessingException e) {
            String loc = e.getLocation() == null ? ""
                    : " at line " + e.getLocation().getLineNr() + ", column " + e.getLocation().getColumnNr();
            throw new UserError(index + ": not valid JSON" + loc + ": " + e.getOriginalMessage());
        } catch (IOException e) {
            throw new UserError(index + ": cannot read: " + e, e);
        }
        if (root == null || !root.isObject()) {
            throw new UserError(index + ": expected a JSON object {\"metadata\": {...}, \"weight_map\": {...}}");
        }
        JsonNode wm = root.get("weight_map");
        if (wm == null || !wm.isObject()) {
            throw new UserError(index + ": expected \"weight_map\" to be an object of tensor name -> shard file name");
        }
        Map<String, String> out = new LinkedHashMap<>();
        for (Iterator<Map.Entry<String, JsonNode>> it = wm.fields(); it.hasNext(); ) {
            Map.Entry<String, JsonNode> e = it.next();
            if (!e.getValue().isTextual()) {
                throw new UserError(index + ": weight_map entry for tensor '" + e.getKey()
                        + "' must be a shard file name (a string)");
            }
            out.put(e.getKey(), e.getValue().textValue());
        }
        if (out.isEmpty()) {
            throw new UserError(index + ": weight_map is empty (expected at least one tensor)");
        }
        return out;
    }

    /** The directory this was opened from. */
    public Path dir() {
        return dir;
    }

    /** All tensor names (index order for sharded models, header order otherwise); unmodifiable. */
    public Set<String> names() {
        return Collections.unmodifiableSet(byName.keySet());
    }

    /** Whether there is a tensor called {@code name}. */
    public boolean contains(String name) {
        return byName.containsKey(name);
    }

    private SafetensorsFile fileFor(String name) {
        SafetensorsFile f = byName.get(name);
        if (f == null) {
            throw new UserError(dir + ": no tensor named '" + name + "' in the model weights ("
                    + byName.size() + " tensors)");
        }
        return f;
    }

    public TensorInfo info(String name) {
        return fileFor(name).info(name);
    }

    /** A zero-copy CPU view; lifetime as at {@link SafetensorsFile#tensor}: use it until {@link #close}. */
    public Tensor tensor(String name) {
        return fileFor(name).tensor(name);
    }

    /** The file that holds tensor {@code name}. */
    public Path fileOf(String name) {
        return fileFor(name).path();
    }

    /** The opened files (one, or the shards in index order). */
    public List<SafetensorsFile> files() {
        return files;
    }

    /** Sum of all tensors' data bytes (what the index calls total_size). */
    public long totalBytes() {
        long sum = 0;
        for (SafetensorsFile f : files) {
            for (TensorInfo t : f.tensors().values()) {
                sum += t.byteSize();
            }
        }
        return sum;
    }

    @Override
    public void close() {
        files.forEach(SafetensorsFile::close);
    }

    /**
     * Writes {@code tensors} into {@code dir} as Hugging Face does: greedily in map order, a new shard
     * starting when the next tensor would push the current one past {@code maxShardBytes} (a tensor larger
     * than that gets a shard of its own). One shard is written as {@code model.safetensors}; several as
     * {@code model-00001-of-0000N.safetensors} plus {@code model.safetensors.index.json}
     * ({@code {"metadata": {"total_size": …}, "weight_map": {…}}}), the index last. Each file is written
     * atomically and carries {@code metadata}. Files of the other layout left in {@code dir} by an earlier
     * save (a single file, an index, shards named like ours) are deleted afterwards, so that
     * {@link #open} sees only what was written now.
     *
     * @return the files written, each with the SHA-256 its writer computed
     */
    public static WrittenFiles writeSharded(Path dir, Map<String, Tensor> tensors, long maxShardBytes,
                                    Map<String, String> metadata) {
        if (maxShardBytes <= 0) {
            throw new IllegalArgumentException("maxShardBytes must be positive, got " + maxShardBytes);
        }
        List<SafetensorsWriter.Planned> plan = SafetensorsWriter.plan(dir.resolve(SINGLE), tensors);
        List<Map<String, Tensor>> shards = new ArrayList<>();
        Map<String, Tensor> cur = new LinkedHashMap<>();
        long curBytes = 0;
        long total = 0;
        for (SafetensorsWriter.Planned p : plan) {
            if (!cur.isEmpty() && curBytes + p.byteSize() > maxShardBytes) {
                shards.add(cur);
                cur = new LinkedHashMap<>();
                curBytes = 0;
            }
            cur.put(p.name(), p.tensor());
            curBytes += p.byteSize();
            total += p.byteSize();
        }
        shards.add(cur);
        try {
            Files.createDirectories(dir);
        } catch (IOException e) {
            throw new UserError(dir + ": cannot create directory: " + e, e);
        }
        WrittenFiles written = new WrittenFiles();
        if (shards.size() == 1) {
            written.add(dir.resolve(SINGLE), SafetensorsWriter.write(dir.resolve(SINGLE), shards.get(0), metadata));
        } else {
            int n = shards.size();
            ObjectNode index = JSON.createObjectNode();
            index.putObject("metadata").put("total_size", total);
            ObjectNode wm = index.putObject("weight_map");
            for (int i = 0; i < n; i++) {
                String name = String.format("model-%05d-of-%05d.safetensors", i + 1, n);
                written.add(dir.resolve(name), SafetensorsWriter.write(dir.resolve(name), shards.get(i), metadata));
                for (String t : shards.get(i).keySet()) {
                    wm.put(t, name);
                }
            }
            written.add(dir.resolve(INDEX), writeIndex(dir.resolve(INDEX), index));
        }
        removeStale(dir, written);
        return written;
    }

    private static String writeIndex(Path file, ObjectNode index) {
        try {
            byte[] bytes = (JSON.writer().with(SerializationFeature.INDENT_OUTPUT).writeValueAsString(index) + "\n")
                    .getBytes(StandardCharsets.UTF_8);
            return AtomicFiles.write(file, bytes);
        } catch (IOException e) {
            throw WriteError.writing(file, "the weight index", e);
        }
    }

    private static void removeStale(Path dir, WrittenFiles written) {
        try (DirectoryStream<Path> ds = Files.newDirectoryStream(dir)) {
            for (Path p : ds) {
                String n = p.getFileName().toString();
                boolean ours = n.equals(SINGLE) || n.equals(INDEX) || SHARD.matcher(n).matches();
                if (ours && !written.contains(n)) {
                    Files.deleteIfExists(p);
                }
            }
        } catch (IOException e) {
            throw new UserError(dir + ": cannot remove weights of an earlier save: " + e, e);
        }
    }

    @Override
    public String toString() {
        return "WeightFiles[" + dir + ", " + files.size() + " files, " + byName.size() + " tensors]";
    }
}
