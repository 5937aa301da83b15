package dev.jtune.io;

import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.attribute.PosixFilePermission;
import java.util.Map;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

class AtomicFilesTest {
    @TempDir
    Path tmp;

    @Test
    void failedWriteKeepsTheOldFileAndLeavesNoTemporary() throws IOException {
        Path f = tmp.resolve("a.json");
        Files.writeString(f, "old");
        assertThrows(IOException.class, () -> AtomicFiles.write(f, ch -> {
            ch.write(ByteBuffer.wrap("half of the new".getBytes(StandardCharsets.UTF_8)));
            throw new IOException("disk full");
        }));
        assertEquals("old", Files.readString(f));
        try (var files = Files.list(tmp)) {
            assertEquals(1, files.count(), "no temporary file left behind");
        }
    }

    static String sha256Of(Path f) throws Exception {
        return "sha256:" + java.util.HexFormat.of().formatHex(java.security.MessageDigest.getInstance("SHA-256").digest(Files.readAllBytes(f)));
    }

    /** The hash each write returns is that of the file's bytes (heap and direct buffers, partial views, copies). */
    @Test
    void writesReturnTheSha256OfWhatTheyWrote() throws Exception {
        Path a = tmp.resolve("a.bin");
        byte[] big = new byte[300_000];
        new java.util.Random(1).nextBytes(big);
        String h = AtomicFiles.write(a, ch -> {
            ByteBuffer direct = ByteBuffer.allocateDirect(big.length);
            direct.put(big).flip();
            AtomicFiles.writeFully(ch, ByteBuffer.wrap(big, 10, 1000));   // a slice of a heap array
            AtomicFiles.writeFully(ch, direct);                // a direct buffer, as tensors are written
        });
        assertEquals(sha256Of(a), h);
        assertEquals(1000 + big.length, Files.size(a));
        Path b = tmp.resolve("b.json");
        String hb = AtomicFiles.write(b, "{}\n".getBytes(StandardCharsets.UTF_8));
        assertEquals(sha256Of(b), hb);
        Path c = tmp.resolve("c.bin");
        assertEquals(sha256Of(a), AtomicFiles.copy(a, c));
        assertEquals(sha256Of(a), sha256Of(c));
        Path w = tmp.resolve("w.safetensors");
        String hw = SafetensorsWriter.write(w, Map.of("w", dev.jtune.util.Tensors.floats(new float[] {1, 2})), Map.of());
        assertEquals(sha256Of(w), hw);
    }

    /** Model files must be readable by others, as transformers' are (Files.createTempFile would make them 0600). */
    @Test
    void writtenFilesAreWorldReadableLikeOrdinaryFiles() throws IOException {
        Path ordinary = Files.writeString(tmp.resolve("ordinary.txt"), "x");
        Path f = tmp.resolve("model.safetensors");
        SafetensorsWriter.write(f, Map.of("w", dev.jtune.util.Tensors.floats(new float[] {1, 2})), Map.of());
        var perms = Files.getPosixFilePermissions(f);
        assertEquals(Files.getPosixFilePermissions(ordinary).contains(PosixFilePermission.OTHERS_READ), perms.contains(PosixFilePermission.OTHERS_READ), perms.toString());
        assertTrue(perms.contains(PosixFilePermission.GROUP_READ) || !Files.getPosixFilePermissions(ordinary).contains(PosixFilePermission.GROUP_READ), perms.toString());
    }
}
