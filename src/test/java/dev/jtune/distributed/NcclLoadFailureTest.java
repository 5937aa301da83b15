package dev.jtune.distributed;

import dev.jtune.util.UserError;
import org.bytedeco.javacpp.chrono.Milliseconds;
import org.bytedeco.pytorch.Device;
import org.junit.jupiter.api.Test;

import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assumptions.assumeFalse;

/**
 * On the CPU build the NCCL binding's class is in the jar but its natives are not: asking for NCCL is a user error
 * that names the class and carries the loader's own error (it used to drop the cause, which on a GPU machine is the
 * one line that says which library is missing).
 */
class NcclLoadFailureTest {
    @Test
    void ncclWhoseNativesDoNotLoadNamesTheCause() {
        assumeFalse(dev.jtune.util.Devices.cudaAvailable(), "the GPU build loads NCCL");
        UserError e = assertThrows(UserError.class,
                () -> DistGroup.Nccl.create(null, 0, 1, new Milliseconds(1000), new Device("cpu")));
        String m = e.getMessage();
        assertTrue(m.contains("NCCL's natives did not load") && m.contains("ProcessGroupNCCL"), m);
        assertTrue(m.contains("UnsatisfiedLinkError") || m.contains("NoClassDefFoundError") || m.contains("ExceptionInInitializerError"), m);
        assertTrue(m.contains("nccl"), "the loader's message names the library: " + m);
    }
}
