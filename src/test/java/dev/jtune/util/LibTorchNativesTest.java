package dev.jtune.util;

import org.junit.jupiter.api.Test;

import java.nio.file.Path;
import java.util.List;
import java.util.Map;

import static org.junit.jupiter.api.Assertions.assertDoesNotThrow;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

/** Which LibTorch this process has mapped, and the refusal of a foreign one beside ours. */
class LibTorchNativesTest {
    static final Path OURS = Path.of("/root/.javacpp/cache/pytorch-2.10.0-1.5.13-linux-x86_64.jar/org/bytedeco/pytorch/linux-x86_64");

    @Test
    void thisProcessMapsOnlyThePresetsLibTorch() {
        Path dir = LibTorchNatives.ensureLoaded();
        Map<String, Path> mapped = LibTorchNatives.mappedTorchLibraries();
        assertTrue(mapped.containsKey("libtorch_cpu.so") && mapped.containsKey("libc10.so"), mapped.toString());
        for (Path p : mapped.values()) assertTrue(p.startsWith(dir), p + " is not under " + dir);
        assertDoesNotThrow(() -> LibTorchNatives.refuseForeign(mapped, dir));
        assertEquals(dir, LibTorchNatives.ensureLoaded(), "idempotent");
    }

    @Test
    void mapsLinesAreParsedToLibraryPaths() {
        Map<String, Path> m = LibTorchNatives.torchLibraries(List.of(
                "7f49c4c00000-7f49c5000000 r--p 00000000 fe:00 123  /lib/x86_64-linux-gnu/libtorch_cpu.so.1.13",
                "7f4999600000-7f499a3b2000 r--p 00000000 fe:00 456  " + OURS + "/libtorch_cpu.so",
                "7f4999600000-7f499a3b2000 r-xp 00001000 fe:00 456  " + OURS + "/libtorch_cpu.so",
                "7f4999600000-7f499a3b2000 r--p 00000000 fe:00 457  " + OURS + "/libc10.so",
                "7f4999600000-7f499a3b2000 r--p 00000000 fe:00 458  /usr/lib/libtorch_python.so",
                "7f4999600000-7f499a3b2000 r--p 00000000 fe:00 459  /usr/lib/libssl.so.3",
                "7ffd0000-7ffd1000 rw-p 00000000 00:00 0  [stack]"));
        assertEquals(Path.of("/lib/x86_64-linux-gnu/libtorch_cpu.so.1.13"), m.get("libtorch_cpu.so.1.13"));
        assertEquals(OURS.resolve("libtorch_cpu.so"), m.get("libtorch_cpu.so"));
        assertEquals(OURS.resolve("libc10.so"), m.get("libc10.so"));
        assertEquals(3, m.size(), m.toString());
    }

    @Test
    void aForeignLibTorchIsRefusedNamingBothPaths() {
        Map<String, Path> m = LibTorchNatives.torchLibraries(List.of(
                "7f49c4c00000-7f49c5000000 r--p 00000000 fe:00 123  /opt/conda/lib/python3.11/site-packages/torch/lib/libtorch_cpu.so"));
        UserError e = assertThrows(UserError.class, () -> LibTorchNatives.refuseForeign(m, OURS));
        assertTrue(e.getMessage().contains("/opt/conda/lib/python3.11/site-packages/torch/lib/libtorch_cpu.so"), e.getMessage());
        assertTrue(e.getMessage().contains(OURS.resolve("libtorch_cpu.so").toString()), e.getMessage());
        assertFalse(LibTorchNatives.isTorchLibrary("libtorch_python.so"));
    }
}
