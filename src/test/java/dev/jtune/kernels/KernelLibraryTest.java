package dev.jtune.kernels;

import org.junit.jupiter.api.Test;

import java.nio.file.Files;
import java.nio.file.Path;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNotNull;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assumptions.assumeFalse;
import static org.junit.jupiter.api.Assumptions.assumeTrue;

/** The native library: built when nvcc exists, loads without a GPU, reports cleanly when absent or without CUDA. */
class KernelLibraryTest {
    static boolean nvccPresent() {
        for (String dir : System.getenv().getOrDefault("PATH", "").split(":")) {
            if (Files.isExecutable(Path.of(dir, "nvcc"))) return true;
        }
        return Files.isExecutable(Path.of("/usr/local/cuda/bin/nvcc"));
    }

    @Test
    void missingLibraryIsReportedNotThrown() {
        KernelLibrary.Status s = KernelLibrary.probe("linux-x86_64/libnosuchkernels.so");
        assertFalse(s.loaded());
        assertFalse(s.available());
        assertTrue(s.reason().startsWith("kernel library missing"), s.reason());
    }

    /** On a machine with nvcc (CI), the build must have compiled every kernel into the classes directory / jar. */
    @Test
    void kernelsAreCompiledWhenNvccExists() {
        assumeTrue(nvccPresent(), "no nvcc on this machine: the build skips the kernels");
        assumeFalse("skip".equals(System.getProperty("jtune.kernels")), "-Djtune.kernels=skip");
        assertNotNull(KernelLibrary.class.getResource(KernelLibrary.RESOURCE),
                "nvcc is on this machine but " + KernelLibrary.RESOURCE + " was not built (see native/build.sh)");
        assertTrue(KernelLibrary.loaded(), KernelLibrary.reason());
    }

    @Test
    void statusIsConsistent() {
        String reason = KernelLibrary.reason();
        assertNotNull(reason);
        assertFalse(reason.isBlank());
        if (!dev.jtune.util.Devices.cudaAvailable()) {
            assertFalse(KernelLibrary.available(), "no CUDA here, yet available: " + reason);
        }
    }

    /** The launchers check their arguments before any CUDA call, so the error path is testable without a GPU. */
    @Test
    void launchersReportBadArgumentsWithText() {
        assumeTrue(KernelLibrary.loaded(), "kernel library not loaded: " + KernelLibrary.reason());
        assertEquals(KernelLibrary.ABI_VERSION, KernelNative.abiVersion());
        int st = KernelNative.rmsnormForward(0, 0, 0, 0, 4, 8, 1e-5f, KernelNative.F32, 0);
        assertEquals(KernelNative.ERR_INVALID, st);
        assertEquals("rmsnorm_forward: null pointer", KernelNative.lastError());
        assertEquals(KernelNative.ERR_INVALID, KernelNative.swigluForward(8, 8, 8, 16, 7, 0));
        assertEquals("unknown dtype 7", KernelNative.lastError());
        assertEquals(KernelNative.ERR_INVALID, KernelNative.rope(8, 1, 1, 1, 8, 1, 1, 1, 8, 8, 1, 1, 1, 1, 1, 5, 1, false, 0, 0));
        assertTrue(KernelNative.lastError().startsWith("rope: bad shape"), KernelNative.lastError());
        assertEquals(KernelNative.ERR_INVALID, KernelNative.crossEntropy(8, 8, 8, 2, 10, 5, -100, 1f, 0, 0));
        assertTrue(KernelNative.lastError().contains("ld 5"), KernelNative.lastError());
        // empty work launches nothing and succeeds, even without a GPU
        assertEquals(KernelNative.OK, KernelNative.swigluForward(8, 8, 8, 0, KernelNative.BF16, 0));
        try {
            CudaKernels.check("op", KernelNative.swigluForward(0, 0, 0, 1, 0, 0));
            throw new AssertionError("expected a KernelException");
        } catch (KernelException e) {
            assertEquals("op: swiglu_forward: null pointer", e.getMessage());
        }
        int n = KernelNative.deviceCount();
        if (!dev.jtune.util.Devices.cudaAvailable()) {
            assertTrue(n <= 0, "device count " + n);
            if (n < 0) assertFalse(KernelNative.lastError().isBlank());
        }
    }
}
