package dev.jtune.data;

import com.fasterxml.jackson.databind.DeserializationFeature;
import com.fasterxml.jackson.databind.ObjectMapper;
import dev.jtune.config.DataSection;
import dev.jtune.tokenizer.HfTokenizer;

import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.AtomicMoveNotSupportedException;
import java.nio.file.FileAlreadyExistsException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardCopyOption;
import java.security.MessageDigest;
import java.security.NoSuchAlgorithmException;
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
 * <p>An entry is a {@link TokenStore} (token ids with their trained flags, example offsets, the splits' example
 * indices, the held-out answer prompts), memory-mapped when read: examples are read from the mapping on demand,
 * never copied into Java arrays as a whole. {@code meta.json} holds the summary report. An entry is prepared into a
 * temporary directory beside it and renamed into place, so concurrent runs (ranks, sweep trials) never see half of
 * one.
 */
public final class DataCache {
    /** Bump when preparation changes what it produces from the same inputs. */
    static final int FORMAT = 2;
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

    /** The cached result, mapped; null when there is none (or it cannot be read: it is then prepared again). */
    static PreparedData load(Path entry, ChatTemplate template) {
        Path meta = entry.resolve("meta.json");
        if (!Files.isRegularFile(meta)) return null;
        try {
            TokenStore store = TokenStore.open(entry, FORMAT);
            Meta m = JSON.readValue(meta.toFile(), Meta.class);
            return mapped(store, m.report(), template);
        } catch (IOException | RuntimeException e) {
            return null;
        }
    }

    /** The splits and answer prompts of {@code store}, read from the mapping on demand. */
    static PreparedData mapped(TokenStore store, DataReport report, ChatTemplate template) {
        return new PreparedData(store.split(0), store.split(1), store.split(2), report, template,
                store.prompts(1), store.prompts(2));
    }

    /** What meta.json holds. */
    record Meta(DataReport report) {}

    static void writeMeta(Path dir, DataReport report) throws IOException {
        JSON.writeValue(dir.resolve("meta.json").toFile(), new Meta(report));
    }

    /**
     * Moves a prepared directory into place as {@code entry}; when another run (a rank, a sweep trial) wrote the
     * same entry first, theirs is kept and {@code tmp} deleted. Returns the entry.
     */
    static Path publish(Path tmp, Path entry) throws IOException {
        try {
            Files.move(tmp, entry, StandardCopyOption.ATOMIC_MOVE);
        } catch (FileAlreadyExistsException | AtomicMoveNotSupportedException e) {
            deleteTree(tmp);
        } catch (IOException e) {
            if (!Files.isDirectory(entry)) throw e;
            deleteTree(tmp);
        }
        return entry;
    }

    static void deleteTree(Path p) {
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
