package dev.jtune;

import org.junit.jupiter.api.Test;
import org.opentest4j.AssertionFailedError;
import org.opentest4j.TestAbortedException;

import static org.junit.jupiter.api.Assertions.assertDoesNotThrow;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

/** JTUNE_REQUIRE_CUDA=1 turns a GPU test's skip into a failure; without it, a missing GPU skips. */
class GpuTestsTest {
    @Test
    void aSkipIsAFailureWhenCudaIsRequired() {
        assertThrows(TestAbortedException.class, () -> GpuTests.assumeCuda(false, null, "CUDA not available"));
        assertThrows(TestAbortedException.class, () -> GpuTests.assumeCuda(false, "0", "CUDA not available"));
        AssertionFailedError e = assertThrows(AssertionFailedError.class, () -> GpuTests.assumeCuda(false, "1", "no kernel library"));
        assertTrue(e.getMessage().contains("JTUNE_REQUIRE_CUDA=1") && e.getMessage().contains("no kernel library"), e.getMessage());
        assertDoesNotThrow(() -> GpuTests.assumeCuda(true, "1", "unused"));
    }
}
