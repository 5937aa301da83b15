package dev.jtune.util;

import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.nio.file.Files;
import java.nio.file.Path;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * The device decision on machines this CPU box can only simulate: a driver's files under a temporary root, and the
 * natives' state as the probe reports it (a CPU build, a CUDA library that failed to load with its linker error, a
 * build that sees no GPU). A machine with an NVIDIA driver never gets the CPU for 'auto' unless CUDA works.
 */
class CudaDecisionTest {
    static final CudaDecision.Natives CPU_BUILD = new CudaDecision.Natives(false, null, 0);
    static final CudaDecision.Natives FAILED = new CudaDecision.Natives(true,
            "/cache/libtorch_cuda.so: libcudnn.so.9: cannot open shared object file: No such file or directory", 0);
    static final CudaDecision.Natives WORKS = new CudaDecision.Natives(true, null, 2);

    static CudaDecision.Driver driver(Path root) throws Exception {
        Files.createDirectories(root.resolve("proc/driver/nvidia"));
        Files.writeString(root.resolve("proc/driver/nvidia/version"),
                "NVRM version: NVIDIA UNIX x86_64 Kernel Module  580.82.07  Wed Aug 13 2025\nGCC version: 12\n");
        return CudaDecision.Driver.probe(root);
    }

    @Test
    void theDriverIsReadFromProcAndDev(@TempDir Path root) throws Exception {
        assertFalse(CudaDecision.Driver.probe(root).present());
        CudaDecision.Driver d = driver(root);
        assertTrue(d.present());
        assertTrue(d.version().contains("580.82.07"), d.version());
        Path onlyDev = root.resolve("other");
        Files.createDirectories(onlyDev.resolve("dev"));
        Files.createFile(onlyDev.resolve("dev/nvidia0"));
        assertTrue(CudaDecision.Driver.probe(onlyDev).present());
    }

    @Test
    void autoWithoutADriverIsTheCpu(@TempDir Path root) {
        CudaDecision.Driver none = CudaDecision.Driver.probe(root);
        assertEquals("cpu", CudaDecision.decide("auto", "training.device", none, CPU_BUILD));
        assertEquals("cpu", CudaDecision.decide("cpu", "training.device", none, CPU_BUILD));
    }

    @Test
    void autoWithADriverAndACpuBuildIsRefusedNamingTheBuild(@TempDir Path root) throws Exception {
        UserError e = assertThrows(UserError.class, () -> CudaDecision.decide("auto", "training.device", driver(root), CPU_BUILD));
        assertTrue(e.getMessage().startsWith("training.device: device 'auto'"), e.getMessage());
        assertTrue(e.getMessage().contains("580.82.07") && e.getMessage().contains("-Pgpu")
                && e.getMessage().contains("does not fall back to the CPU"), e.getMessage());
    }

    @Test
    void autoWithADriverAndFailedNativesNamesTheLibraryAndItsError(@TempDir Path root) throws Exception {
        UserError e = assertThrows(UserError.class, () -> CudaDecision.decide("auto", "--device", driver(root), FAILED));
        assertTrue(e.getMessage().contains("libtorch_cuda.so: libcudnn.so.9: cannot open shared object file"), e.getMessage());
        assertFalse(e.getMessage().contains("-Pgpu"), "a GPU build is not told to build for the GPU: " + e.getMessage());
    }

    @Test
    void cudaTellsNoGpuFromFailedNatives(@TempDir Path root) throws Exception {
        CudaDecision.Driver none = CudaDecision.Driver.probe(root);
        String noGpu = assertThrows(UserError.class, () -> CudaDecision.decide("cuda", "--device", none, CPU_BUILD)).getMessage();
        assertTrue(noGpu.contains("no NVIDIA driver") && noGpu.contains("CPU natives"), noGpu);
        String failed = assertThrows(UserError.class, () -> CudaDecision.decide("cuda", "--device", driver(root), FAILED)).getMessage();
        assertTrue(failed.contains("did not load: ") && !failed.contains("no NVIDIA driver"), failed);
        String noDevice = assertThrows(UserError.class, () -> CudaDecision.decide("cuda:0", "--device", driver(root),
                new CudaDecision.Natives(true, null, 0))).getMessage();
        assertTrue(noDevice.contains("sees no GPU"), noDevice);
    }

    @Test
    void workingCudaIsUsedAndTheIndexChecked(@TempDir Path root) throws Exception {
        assertEquals("cuda", CudaDecision.decide("auto", "training.device", driver(root), WORKS));
        assertEquals("cuda:1", CudaDecision.decide("CUDA:1", "training.device", driver(root), WORKS));
        String e = assertThrows(UserError.class, () -> CudaDecision.decide("cuda:2", "--device", driver(root), WORKS)).getMessage();
        assertTrue(e.contains("CUDA sees 2 GPUs"), e);
        assertThrows(UserError.class, () -> CudaDecision.decide("tpu", "--device", driver(root), WORKS));
    }

    @Test
    void thisMachineIsProbedForReal() {
        CudaDecision.Natives here = CudaDecision.probeNatives();
        if (!here.gpuBuild()) {
            assertNull(here.loadError());
            assertEquals(0, here.devices());
            assertFalse(Devices.cudaAvailable());
        }
    }
}
