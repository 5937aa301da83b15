package dev.jtune.io;

import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.channels.WritableByteChannel;
import java.security.MessageDigest;
import java.security.NoSuchAlgorithmException;
import java.util.HexFormat;

/**
 * A channel that hashes (SHA-256) exactly the bytes it hands on to another, so a file's hash is known when its
 * last byte is written, without reading the file back (a 7B checkpoint is ~80 GB).
 */
final class Sha256Channel implements WritableByteChannel {
    private final WritableByteChannel out;
    private final MessageDigest md = newDigest();

    Sha256Channel(WritableByteChannel out) {
        this.out = out;
    }

    static MessageDigest newDigest() {
        try {
            return MessageDigest.getInstance("SHA-256");
        } catch (NoSuchAlgorithmException e) {
            throw new IllegalStateException("every Java runtime has SHA-256", e);
        }
    }

    /** {@code "sha256:<64 hex digits>"}, the form manifest.json stores. */
    static String format(byte[] digest) {
        return "sha256:" + HexFormat.of().formatHex(digest);
    }

    @Override
    public int write(ByteBuffer src) throws IOException {
        ByteBuffer written = src.duplicate();   // the bytes [position, position + n) that the write consumes
        int n = out.write(src);
        written.limit(written.position() + n);
        md.update(written);
        return n;
    }

    /** The hash of everything written so far; call once, at the end. */
    String digest() {
        return format(md.digest());
    }

    @Override
    public boolean isOpen() {
        return out.isOpen();
    }

    @Override
    public void close() throws IOException {
        out.close();
    }
}
