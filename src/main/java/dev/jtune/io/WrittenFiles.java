package dev.jtune.io;

import java.nio.file.Path;
import java.util.Collections;
import java.util.Map;
import java.util.SortedMap;
import java.util.TreeMap;

/**
 * The files a save wrote into one directory, by file name, each with the SHA-256 of its bytes as the writer
 * wrote them ({@code "sha256:<hex>"}). A checkpoint's manifest.json is built from this, never by reading the
 * files back. A name written twice (a tokenizer_config.json copied, then given the chat template) keeps the
 * hash of its last write.
 */
public final class WrittenFiles {
    private final SortedMap<String, String> sha256ByName = new TreeMap<>();

    /** Records {@code file} (by its file name) with the hash its writer returned. */
    public WrittenFiles add(Path file, String sha256) {
        if (sha256 == null || !sha256.startsWith("sha256:")) throw new IllegalArgumentException(file + ": not a sha256 digest: " + sha256);
        sha256ByName.put(file.getFileName().toString(), sha256);
        return this;
    }

    public WrittenFiles addAll(WrittenFiles other) {
        sha256ByName.putAll(other.sha256ByName);
        return this;
    }

    /** File name to {@code "sha256:<hex>"}, sorted by name. */
    public SortedMap<String, String> sha256ByName() {
        return Collections.unmodifiableSortedMap(sha256ByName);
    }

    public boolean contains(String fileName) {
        return sha256ByName.containsKey(fileName);
    }

    @Override
    public String toString() {
        return "WrittenFiles" + Map.copyOf(sha256ByName).keySet();
    }
}
