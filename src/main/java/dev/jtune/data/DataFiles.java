package dev.jtune.data;

import dev.jtune.config.DataSection;
import dev.jtune.util.UserError;

import java.io.IOException;
import java.io.InputStream;
import java.nio.file.Files;
import java.nio.file.Path;
import java.security.MessageDigest;
import java.security.NoSuchAlgorithmException;
import java.util.ArrayList;
import java.util.HexFormat;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

/**
 * The files a data section reads (a datasets.save_to_disk directory counts as its Arrow shards) and their SHA-256:
 * what a resumed run checks against its checkpoint and what keys the tokenized cache.
 */
public final class DataFiles {
    private DataFiles() {}

    /** Every file read: each training source (shards of a directory), then the validation and test files. */
    public static List<Path> all(DataSection d) {
        List<Path> out = new ArrayList<>();
        for (DataSection s : d.sources()) {
            if (Files.isDirectory(s.trainFile())) out.addAll(ArrowRows.shards(s.trainFile()));
            else out.add(s.trainFile());
        }
        if (d.validationFile() != null) out.add(d.validationFile());
        if (d.testFile() != null) out.add(d.testFile());
        return out;
    }

    /** {@link #sha256} of each of {@link #all}, by path. */
    public static Map<String, String> hashes(DataSection d) {
        Map<String, String> h = new LinkedHashMap<>();
        for (Path f : all(d)) h.put(f.toString(), sha256(f));
        return h;
    }

    /** {@code sha256:<hex>} of a file's bytes (the form manifest.json stores). */
    public static String sha256(Path file) {
        try (InputStream in = Files.newInputStream(file)) {
            MessageDigest md = MessageDigest.getInstance("SHA-256");
            byte[] buf = new byte[1 << 16];
            for (int n; (n = in.read(buf)) > 0; ) md.update(buf, 0, n);
            return "sha256:" + HexFormat.of().formatHex(md.digest());
        } catch (IOException e) {
            throw new UserError(file + ": cannot read: " + e.getMessage(), e);
        } catch (NoSuchAlgorithmException e) {
            throw new IllegalStateException(e);
        }
    }
}
