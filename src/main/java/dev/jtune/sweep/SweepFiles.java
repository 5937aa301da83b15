package dev.jtune.sweep;

import dev.jtune.io.AtomicFiles;
import dev.jtune.util.UserError;

import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.charset.StandardCharsets;
import java.nio.file.Path;

/** Writes the sweep's text outputs atomically: a killed sweep never leaves half a leaderboard. */
final class SweepFiles {
    private SweepFiles() {}

    static void write(Path file, String text) {
        ByteBuffer bytes = ByteBuffer.wrap(text.getBytes(StandardCharsets.UTF_8));
        try {
            AtomicFiles.write(file, ch -> {
                while (bytes.hasRemaining()) ch.write(bytes);
            });
        } catch (IOException e) {
            throw new UserError(file + ": cannot write: " + e.getMessage(), e);
        }
    }
}
