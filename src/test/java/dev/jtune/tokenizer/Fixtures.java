package dev.jtune.tokenizer;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import java.io.IOException;
import java.io.UncheckedIOException;
import java.io.InputStream;
import java.net.URISyntaxException;
import java.net.URL;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.stream.Stream;
import java.util.zip.GZIPInputStream;

/** Test fixtures under src/test/resources/tokenizers (see the README.txt files there). */
public final class Fixtures {
    private static final ObjectMapper JSON = new ObjectMapper();

    private Fixtures() {}

    /** The GPT-2 tokenizer ships with the product (configs/tokenizers/gpt2, used by the demo); tests share that copy. */
    static final Path SHIPPED_GPT2 = Path.of("configs/tokenizers/gpt2");

    public static Path dir(String name) {
        if (name.equals("gpt2") || name.startsWith("gpt2/")) return SHIPPED_GPT2.resolve(name.substring(4).replaceFirst("^/", ""));
        URL url = Fixtures.class.getResource("/tokenizers/" + name);
        if (url == null) {
            throw new IllegalStateException("missing test resource tokenizers/" + name);
        }
        try {
            return unpacked(Path.of(url.toURI()));
        } catch (URISyntaxException e) {
            throw new IllegalStateException(e);
        }
    }

    private static final Map<Path, Path> UNPACKED = new HashMap<>();

    /**
     * A fixture directory whose large files are stored gzipped (tokenizer.json.gz: keeps the repository small) as the
     * directory a user has: a copy, once per JVM, with every {@code X.gz} unpacked to {@code X}. Others as they are.
     */
    private static synchronized Path unpacked(Path dir) {
        if (!Files.isDirectory(dir)) return dir;
        try (Stream<Path> files = Files.list(dir)) {
            List<Path> all = files.toList();
            if (all.stream().noneMatch(f -> f.toString().endsWith(".gz"))) return dir;
            Path out = UNPACKED.get(dir);
            if (out != null) return out;
            out = Files.createTempDirectory("jtune-fixture-" + dir.getFileName() + "-");
            out.toFile().deleteOnExit();
            for (Path f : all) {
                String name = f.getFileName().toString();
                if (name.endsWith(".gz")) {
                    try (InputStream in = new GZIPInputStream(Files.newInputStream(f))) {
                        Files.copy(in, out.resolve(name.substring(0, name.length() - 3)));
                    }
                } else {
                    Files.copy(f, out.resolve(name));
                }
                out.resolve(name.endsWith(".gz") ? name.substring(0, name.length() - 3) : name).toFile().deleteOnExit();
            }
            UNPACKED.put(dir, out);
            return out;
        } catch (IOException e) {
            throw new UncheckedIOException(e);
        }
    }

    static JsonNode json(String name) {
        try {
            return JSON.readTree(dir(name).toFile());
        } catch (IOException e) {
            throw new UncheckedIOException(e);
        }
    }

    /** The 83 multilingual strings (emoji, CJK, accents, RTL, code, whitespace). */
    static List<String> multilingualInputs() {
        List<String> out = new ArrayList<>();
        for (JsonNode n : json("baselines/inputs.json")) {
            out.add(n.get("text").textValue());
        }
        return out;
    }

    static long[] longs(JsonNode array) {
        long[] out = new long[array.size()];
        for (int i = 0; i < out.length; i++) {
            out[i] = array.get(i).longValue();
        }
        return out;
    }

    static String[] strings(JsonNode array) {
        String[] out = new String[array.size()];
        for (int i = 0; i < out.length; i++) {
            out[i] = array.get(i).textValue();
        }
        return out;
    }
}
