package dev.jtune.io;

import java.io.IOException;
import java.io.InputStream;
import java.nio.ByteBuffer;
import java.nio.channels.FileChannel;
import java.nio.channels.WritableByteChannel;
import java.nio.file.AtomicMoveNotSupportedException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardCopyOption;
import java.nio.file.StandardOpenOption;
import java.util.concurrent.ThreadLocalRandom;

/**
 * Writes a file so that readers see either the old content or the complete new one: into a hidden
 * temporary file in the same directory, flushed to disk, renamed over the target, and the directory
 * flushed. A crash or a full disk at any moment leaves the previous file intact.
 *
 * <p>Every write returns the SHA-256 of the bytes written ({@code "sha256:<hex>"}), computed as they pass
 * to the file: nothing is read back.
 */
public final class AtomicFiles {
    private AtomicFiles() {}

    /** What fills the temporary file: everything it writes to {@code channel} is hashed on the way. */
    @FunctionalInterface
    public interface Body {
        void write(WritableByteChannel channel) throws IOException;
    }

    /** Writes {@code file} with what {@code body} writes; returns the SHA-256 of those bytes. */
    public static String write(Path file, Body body) throws IOException {
        Path dir = file.toAbsolutePath().getParent();
        Files.createDirectories(dir);
        // CREATE_NEW with the process umask, unlike Files.createTempFile, which makes the file owner-only
        // (a model directory must stay readable by the group, like one transformers writes).
        Path tmp = dir.resolve("." + file.getFileName() + "." + Long.toHexString(ThreadLocalRandom.current().nextLong()) + ".tmp");
        boolean done = false;
        try {
            String sha256;
            try (FileChannel ch = FileChannel.open(tmp, StandardOpenOption.CREATE_NEW, StandardOpenOption.WRITE)) {
                Sha256Channel hashing = new Sha256Channel(ch);
                body.write(hashing);
                sha256 = hashing.digest();
                ch.force(true);
            }
            try {
                Files.move(tmp, file, StandardCopyOption.ATOMIC_MOVE, StandardCopyOption.REPLACE_EXISTING);
            } catch (AtomicMoveNotSupportedException e) {
                Files.move(tmp, file, StandardCopyOption.REPLACE_EXISTING);
            }
            done = true;
            fsyncDirectory(dir);
            return sha256;
        } finally {
            if (!done) Files.deleteIfExists(tmp);
        }
    }

    /** Writes {@code bytes} to {@code file}; returns their SHA-256. */
    public static String write(Path file, byte[] bytes) throws IOException {
        return write(file, ch -> writeFully(ch, ByteBuffer.wrap(bytes)));
    }

    /**
     * Copies {@code from} to {@code to} (replacing it) through the hashing channel; returns the SHA-256 of the copy.
     * Reads the source once, never the copy.
     */
    public static String copy(Path from, Path to) throws IOException {
        try (InputStream in = Files.newInputStream(from)) {
            return write(to, ch -> {
                byte[] buf = new byte[1 << 16];
                for (int n; (n = in.read(buf)) > 0; ) writeFully(ch, ByteBuffer.wrap(buf, 0, n));
            });
        }
    }

    /** Writes all of {@code b} (a channel may take fewer bytes than offered). */
    public static void writeFully(WritableByteChannel ch, ByteBuffer b) throws IOException {
        while (b.hasRemaining()) ch.write(b);
    }

    /** Makes a rename durable: fsync of the directory (best effort where the platform cannot). */
    public static void fsyncDirectory(Path dir) {
        try (FileChannel ch = FileChannel.open(dir, StandardOpenOption.READ)) {
            ch.force(true);
        } catch (IOException | UnsupportedOperationException ignored) {
            // some file systems refuse to open directories; the file itself was forced already
        }
    }
}
