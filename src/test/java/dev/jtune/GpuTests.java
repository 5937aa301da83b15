package dev.jtune;

import dev.jtune.util.Devices;

import static org.junit.jupiter.api.Assertions.fail;
import static org.junit.jupiter.api.Assumptions.assumeTrue;

/**
 * The one way a {@code @Tag("gpu")} test decides to run: it skips without CUDA, unless {@code JTUNE_REQUIRE_CUDA=1}
 * says this run is on a GPU machine, where a skip would read as green and is therefore a failure.
 */
public final class GpuTests {
    private GpuTests() {}

    /** Skips (or, with JTUNE_REQUIRE_CUDA=1, fails) the calling test when CUDA is not available. */
    public static void assumeCuda() {
        assumeCuda(Devices.cudaAvailable(), System.getenv("JTUNE_REQUIRE_CUDA"), "CUDA not available");
    }

    /** The same for any other precondition of a GPU test (the kernel library, two GPUs, …). */
    public static void assumeGpu(boolean condition, String reason) {
        assumeCuda(condition, System.getenv("JTUNE_REQUIRE_CUDA"), reason);
    }

    static void assumeCuda(boolean available, String requireEnv, String reason) {
        if (available) return;
        if (requireEnv != null && !requireEnv.isBlank() && !requireEnv.trim().equals("0")) {
            fail("JTUNE_REQUIRE_CUDA=" + requireEnv + " but this GPU test cannot run: " + reason
                    + (Devices.cudaAvailable() ? "" : "; " + dev.jtune.util.CudaDecision.explainUnavailable()));
        }
        assumeTrue(false, reason);
    }
}
