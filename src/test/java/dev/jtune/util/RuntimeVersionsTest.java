package dev.jtune.util;

import org.bytedeco.pytorch.global.torch;
import org.junit.jupiter.api.Test;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertTrue;

/** Versions come from the loaded native library and the preset's jar, not from strings in the code. */
class RuntimeVersionsTest {
    @Test
    void parsesWhatLibTorchAndThePresetSay() {
        assertEquals("2.11.1", RuntimeVersions.torchVersion("  - Build settings: BLAS_INFO=open, TORCH_VERSION=2.11.1, USE_CUDA=1, "));
        assertNull(RuntimeVersions.torchVersion("PyTorch built with:\n  - GCC 11.4\n"));
        assertEquals("1.5.14", RuntimeVersions.presetRelease("2.11.1-1.5.14"));
        assertNull(RuntimeVersions.presetRelease(null));
        assertEquals("13.0", RuntimeVersions.cudaVersion(13000));
        assertEquals("12.8", RuntimeVersions.cudaVersion(12080));
        assertNull(RuntimeVersions.cudaVersion(0));
    }

    /** The live values agree with the preset jar this build links (its version is "LIBTORCH-PRESET"). */
    @Test
    void readsTheLoadedLibrary() {
        String jar = torch.class.getPackage().getImplementationVersion();
        String v = RuntimeVersions.libtorch();
        assertTrue(jar != null && v.equals(jar.substring(0, jar.lastIndexOf('-')) + " (Bytedeco " + jar.substring(jar.lastIndexOf('-') + 1) + ")"),
                v + " vs the jar's " + jar);
        if (!torch.hasCUDA()) assertNull(RuntimeVersions.cuda(), "no CUDA version without CUDA");
        else assertTrue(RuntimeVersions.cuda().matches("\\d+\\.\\d+"), RuntimeVersions.cuda());
    }
}
