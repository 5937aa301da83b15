package dev.jtune.data;

import com.fasterxml.jackson.databind.DeserializationFeature;
import com.fasterxml.jackson.databind.ObjectMapper;
import dev.jtune.config.DataSection;
import dev.jtune.tokenizer.HfTokenizer;
import dev.jtune.util.Labels;

import java.io.BufferedOutputStream;
import java.io.DataOutputStream;
import java.io.IOException;
import java.io.OutputStream;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.channels.FileChannel;
import java.nio.charset.StandardCharsets;
import java.nio.file.AtomicMoveNotSupportedException;
import java.nio.file.FileAlreadyExistsException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardCopyOption;
import java.nio.file.StandardOpenOption;
import java.security.MessageDigest;
import java.security.NoSuchAlgorithmException;
import java.util.ArrayList;
import java.util.Comparator;
import java.util.HexFormat;
import java.util.List;
import java.util.Map;
import java.util.stream.Stream;

/**
 * The tokenized-data cache: what {@link DatasetPreparer} produced, written once under {@code data.cache_dir}
 * (default {@code $XDG_CACHE_HOME/jtune/data}, else {@code ~/.cache/jtune/data}) in a directory named by a
 * SHA-256 key over everything the result depends on: the data files' SHA-256 (each source, each Arrow shard,
 * validation and test files), the tokenizer's files, jtune's default chat template, every data key and the seed
 * (the split), and {@link #FORMAT} (bumped when preparation changes). Any change gives another key, so an entry is
 * never stale; a second run, {@code --resume}, {@code eval}, {@code lr-find} and every sweep trial map it instead
 * of preparing again.
 *
 * <p>Layout of an entry: {@code tokens.bin} (little-endian; per split train, validation, test: int count,
 * long[count + 1] offsets, int[] ids, byte[] trained flags; labels are the id where trained, -100 elsewhere) is
 * memory-mapped when read; {@code meta.json} holds the summary report and the held-out prompts. An entry is
 * written to a temporary directory and renamed into place, so concurrent runs (ranks, sweep trials) never see half
 * of one.
 */
public final class DataCache {
    /** Bump when preparation changes what it produces from the same inputs. */
    static final int FORMAT = 1;
    /** Set (to anything but "false") to prepare without the cache: {@code --no-cache}. */
    public static final String DISABLE_PROPERTY = "jtune.no_data_cache";
    private static final int MAGIC = 0x4a544443; // "JTDC"
    private static final ObjectMapper JSON = new ObjectMapper()
            .configure(DeserializationFeature.FAIL_ON_UNKNOWN_PROPERTIES, false);

    private DataCache() {}

    public static boolean disabled() {
        String v = System.getProperty(DISABLE_PROPERTY);
        return v != null && !v.equals("false");
    }

    /** {@code data.cache_dir}, or jtune's directory under the user's cache directory. */
    public static Path root(DataSection d) {
        if (d.cacheDir() != null) return d.cacheDir();
        String xdg = System.getenv("XDG_CACHE_HOME");
        Path base = xdg != null && !xdg.isBlank() ? Path.of(xdg) : Path.of(System.getProperty("user.home"), ".cache");
        return base.resolve("jtune").resolve("data");
    }

    /** The entry directory for these inputs. */
    static Path entry(DataSection d, long seed, HfTokenizer tok) {
        StringBuilder k = new StringBuilder("jtune tokenized data, format ").append(FORMAT).append('\n');
        for (Map.Entry<String, String> e : DataFiles.hashes(d).entrySet()) {
            k.append("data ").append(e.getKey()).append(' ').append(e.getValue()).append('\n');
        }
        Path tokDir = tok.tokenizerFile().getParent();
        for (String f : List.of("tokenizer.json", "tokenizer_config.json", "chat_template.jinja", "chat_template.json",
                "special_tokens_map.json", "generation_config.json")) {
            Path p = tokDir.resolve(f);
            if (Files.isRegularFile(p)) k.append("tokenizer ").append(f).append(' ').append(DataFiles.sha256(p)).append('\n');
        }
        k.append("default template ").append(ChatTemplate.DEFAULT_TEMPLATE.hashCode()).append('\n');
        k.append("data keys ").append(d.toBuilder().cacheDir(null).build()).append('\n');
        k.append("seed ").append(seed).append('\n');
        return root(d).resolve(sha256(k.toString()).substring(0, 32));
    }

    /** The cached result, or null when there is none (or it cannot be read: it is then prepared again). */
    static PreparedData load(Path entry, ChatTemplate template) {
        Path tokens = entry.resolve("tokens.bin"), meta = entry.resolve("meta.json");
        if (!Files.isRegularFile(tokens) || !Files.isRegularFile(meta)) return null;
        try (FileChannel ch = FileChannel.open(tokens, StandardOpenOption.READ)) {
            ByteBuffer b = ch.map(FileChannel.MapMode.READ_ONLY, 0, ch.size()).order(ByteOrder.LITTLE_ENDIAN);
            if (b.getInt() != MAGIC || b.getInt() != FORMAT) return null;
            List<List<Example>> splits = new ArrayList<>();
            for (int s = 0; s < 3; s++) splits.add(readSplit(b));
            Meta m = JSON.readValue(meta.toFile(), Meta.class);
            return new PreparedData(splits.get(0), splits.get(1), splits.get(2), m.report(), template,
                    m.validationPrompts(), m.testPrompts());
        } catch (IOException | RuntimeException e) {
            return null;
        }
    }

    private static List<Example> readSplit(ByteBuffer b) {
        int n = b.getInt();
        long[] offsets = new long[n + 1];
        for (int i = 0; i <= n; i++) offsets[i] = b.getLong();
        int idsAt = b.position();
        long total = offsets[n];
        int flagsAt = Math.toIntExact(idsAt + 4 * total);
        List<Example> out = new ArrayList<>(n);
        for (int i = 0; i < n; i++) {
            int len = (int) (offsets[i + 1] - offsets[i]);
            long[] ids = new long[len], labels = new long[len];
            for (int t = 0; t < len; t++) {
                long at = offsets[i] + t;
                ids[t] = b.getInt(Math.toIntExact(idsAt + 4 * at));
                labels[t] = b.get(Math.toIntExact(flagsAt + at)) != 0 ? ids[t] : Labels.IGNORE_INDEX;
            }
            out.add(new Example(ids, labels));
        }
        b.position(Math.toIntExact(flagsAt + total));
        return List.copyOf(out);
    }

    /** What meta.json holds. */
    record Meta(DataReport report, List<AnswerPrompt> validationPrompts, List<AnswerPrompt> testPrompts) {}

    /** Writes the entry; a failure to write only costs the next run a preparation, so it is reported, not thrown. */
    static String store(Path entry, PreparedData data) {
        Path tmp = null;
        try {
            Files.createDirectories(entry.getParent());
            tmp = Files.createTempDirectory(entry.getParent(), ".tmp-" + entry.getFileName());
            try (OutputStream os = Files.newOutputStream(tmp.resolve("tokens.bin"));
                 DataOutputStream out = new DataOutputStream(new BufferedOutputStream(os, 1 << 20))) {
                out.writeInt(Integer.reverseBytes(MAGIC));
                out.writeInt(Integer.reverseBytes(FORMAT));
                for (List<Example> split : List.of(data.train(), data.validation(), data.test())) writeSplit(out, split);
            }
            JSON.writeValue(tmp.resolve("meta.json").toFile(),
                    new Meta(data.report(), data.validationPrompts(), data.testPrompts()));
            try {
                Files.move(tmp, entry, StandardCopyOption.ATOMIC_MOVE);
            } catch (FileAlreadyExistsException | AtomicMoveNotSupportedException e) {
                // another run (a rank, a sweep trial) wrote the same entry first: keep theirs
            } catch (IOException e) {
                if (!Files.isDirectory(entry)) throw e;
            }
            return null;
        } catch (IOException e) {
            return "cannot write the tokenized-data cache " + entry + ": " + e.getMessage();
        } finally {
            if (tmp != null && Files.exists(tmp)) deleteTree(tmp);
        }
    }

    private static void writeSplit(DataOutputStream out, List<Example> split) throws IOException {
        out.writeInt(Integer.reverseBytes(split.size()));
        long off = 0;
        out.writeLong(Long.reverseBytes(0));
        for (Example e : split) {
            off += e.length();
            out.writeLong(Long.reverseBytes(off));
        }
        for (Example e : split) {
            for (long id : e.inputIds()) out.writeInt(Integer.reverseBytes(Math.toIntExact(id)));
        }
        for (Example e : split) {
            for (long l : e.labels()) out.writeByte(l == Labels.IGNORE_INDEX ? 0 : 1);
        }
    }

    private static void deleteTree(Path p) {
        try (Stream<Path> s = Files.walk(p)) {
            s.sorted(Comparator.reverseOrder()).forEach(f -> {
                try {
                    Files.deleteIfExists(f);
                } catch (IOException ignored) {
                    // best effort: a leftover .tmp- directory is ignored by every later run
                }
            });
        } catch (IOException ignored) {
            // as above
        }
    }

    static String sha256(String s) {
        try {
            return HexFormat.of().formatHex(MessageDigest.getInstance("SHA-256").digest(s.getBytes(StandardCharsets.UTF_8)));
        } catch (NoSuchAlgorithmException e) {
            throw new IllegalStateException(e);
        }
    }
}
