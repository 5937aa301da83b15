package dev.jtune.util;

import org.bytedeco.pytorch.Device;
import org.bytedeco.pytorch.global.torch;

/** Parses device names and says whether CUDA is usable in this process. */
public final class Devices {
    private Devices() {}

    public static boolean cudaAvailable() {
        try {
            return torch.cuda_is_available();
        } catch (Throwable t) {   // CPU-only natives: the CUDA symbols are absent
            return false;
        }
    }

    /**
     * "auto" (CUDA when it works; the CPU only on a machine without an NVIDIA driver), "cpu", "cuda" or "cuda:N";
     * {@code where} names the flag or key. See {@link CudaDecision}: a machine with a driver whose CUDA natives do not
     * load is refused with the reason, never run on the CPU in silence.
     */
    public static Device parse(String name, String where) {
        String n = name.trim().toLowerCase(java.util.Locale.ROOT);
        if (n.equals("cpu")) return new Device("cpu");
        CudaDecision.Driver driver = CudaDecision.Driver.probe(java.nio.file.Path.of("/"));
        return new Device(CudaDecision.decide(name, where, driver, CudaDecision.probeNatives()));
    }

    /**
     * Makes {@code device} the calling thread's current CUDA device (a no-op on the CPU or for "cuda" without an index).
     * A rank must do this before its first CUDA call: otherwise contexts, NCCL's communicator and the caching allocator's
     * first blocks land on device 0, whatever device its tensors name.
     */
    public static void makeCurrent(Device device) {
        if (device.is_cuda() && device.has_index()) torch.setDeviceIndex(device.index());
    }
}
