package dev.jtune.bench;

import org.bytedeco.pytorch.Device;
import org.bytedeco.pytorch.global.torch;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.stream.Stream;

/** What device a benchmark ran on, its datasheet peak, and the peak memory the run used. */
public final class DeviceInfo {
    private DeviceInfo() {}

    /**
     * Dense bf16 tensor-core peaks from NVIDIA's datasheets, TFLOP/s (without sparsity), matched as substrings of the
     * device name in this order (more specific names first).
     */
    static final Map<String, Double> BF16_DENSE_TFLOPS = new LinkedHashMap<>();
    static {
        BF16_DENSE_TFLOPS.put("H100 PCIe", 756.0);
        BF16_DENSE_TFLOPS.put("H100 NVL", 835.0);
        BF16_DENSE_TFLOPS.put("GH200", 989.0);
        BF16_DENSE_TFLOPS.put("H200", 989.0);
        BF16_DENSE_TFLOPS.put("H100", 989.0);      // SXM ("NVIDIA H100 80GB HBM3")
        BF16_DENSE_TFLOPS.put("B200", 2250.0);
        BF16_DENSE_TFLOPS.put("A100", 312.0);
        BF16_DENSE_TFLOPS.put("L40S", 362.0);
        BF16_DENSE_TFLOPS.put("L40", 181.0);
        BF16_DENSE_TFLOPS.put("L4", 121.0);
        BF16_DENSE_TFLOPS.put("A10", 125.0);      // after A100
    }

    /** The datasheet dense bf16 peak for a device name, or null (CPUs, unknown GPUs). */
    public static Double datasheetBf16Tflops(String name) {
        if (name == null) return null;
        for (Map.Entry<String, Double> e : BF16_DENSE_TFLOPS.entrySet()) if (name.contains(e.getKey())) return e.getValue();
        return null;
    }

    /** The device's marketing name: the GPU model (from the driver) or the CPU model (from /proc/cpuinfo). */
    public static String name(Device device) {
        if (device.is_cuda()) {
            String n = gpuNameFromDriver(device.has_index() ? device.index() : 0);
            if (n == null) n = gpuNameFromCudart(device.has_index() ? device.index() : 0);
            return n == null ? "unknown CUDA device" : n;
        }
        try (Stream<String> lines = Files.lines(Path.of("/proc/cpuinfo"))) {
            String model = lines.filter(l -> l.startsWith("model name")).findFirst().map(l -> l.substring(l.indexOf(':') + 1).trim()).orElse("CPU");
            return model + ", " + Runtime.getRuntime().availableProcessors() + " cores";
        } catch (IOException | RuntimeException e) {
            return "CPU, " + Runtime.getRuntime().availableProcessors() + " cores";
        }
    }

    /** /proc/driver/nvidia/gpus/BUS/information has "Model: NVIDIA H100 80GB HBM3"; the N-th directory in bus order. */
    private static String gpuNameFromDriver(int index) {
        Path dir = Path.of("/proc/driver/nvidia/gpus");
        if (!Files.isDirectory(dir)) return null;
        try (Stream<Path> s = Files.list(dir)) {
            List<Path> gpus = s.sorted().toList();
            if (index >= gpus.size()) return null;
            for (String l : Files.readAllLines(gpus.get(index).resolve("information"))) {
                if (l.startsWith("Model:")) return l.substring("Model:".length()).trim();
            }
        } catch (IOException | RuntimeException e) {
            return null;
        }
        return null;
    }

    private static String gpuNameFromCudart(int index) {
        Object name = cudaProperties(index).get("name");
        return name instanceof String n ? n : null;
    }

    /**
     * cudaGetDeviceProperties through the CUDA preset, when it is on the class path (reflection: it is optional):
     * name, memory_bytes and compute_capability of GPU {@code index}, or one "error" entry saying why not.
     */
    public static Map<String, Object> cudaProperties(int index) {
        Map<String, Object> g = new LinkedHashMap<>();
        try {
            Class<?> props = Class.forName("org.bytedeco.cuda.cudart.cudaDeviceProp");
            Object p = props.getConstructor().newInstance();
            Class<?> cudart = Class.forName("org.bytedeco.cuda.global.cudart");
            cudart.getMethod("cudaGetDeviceProperties", props, int.class).invoke(null, p, index);
            Object name = props.getMethod("name").invoke(p);
            g.put("name", name.getClass().getMethod("getString").invoke(name));
            g.put("memory_bytes", props.getMethod("totalGlobalMem").invoke(p));
            g.put("compute_capability", props.getMethod("major").invoke(p) + "." + props.getMethod("minor").invoke(p));
        } catch (Throwable t) {
            return Map.of("error", "cudaGetDeviceProperties not reachable: " + t);
        }
        return g;
    }

    /** Synchronises with the device (CUDA: waits for all queued work; CPU: ops are synchronous). */
    public static void sync(Device device) {
        // the device's own index: cuda_synchronize() without one waits for the thread's current device (device 0 unless set)
        if (device.is_cuda()) torch.cuda_synchronize(device.has_index() ? device.index() : -1);
    }

    /** Peak memory: CUDA caching-allocator statistics, or the process's peak RSS on the CPU. */
    public record Memory(String kind, Long peakBytes, Long peakReservedBytes, String note) {}

    public static Memory peakMemory(Device device) {
        if (device.is_cuda()) {
            byte idx = (byte) (device.has_index() ? device.index() : 0);
            try {
                // at::accelerator::getDeviceStats -> c10::CachingDeviceAllocator::DeviceStats; StatArray index 0 = aggregate
                var stats = torch.getDeviceStats(idx);
                return new Memory("cuda_caching_allocator", stats.allocated_bytes().peak(), stats.reserved_bytes().peak(),
                        "peak allocated (torch.cuda.max_memory_allocated) and reserved bytes since the process started");
            } catch (Throwable t) {
                return new Memory("cuda_caching_allocator", null, null, "allocator statistics not reachable: " + t);
            }
        }
        long hwm = procStatusKb("VmHWM");
        return new Memory("process_peak_rss", hwm < 0 ? null : hwm * 1024, null,
                "VmHWM of the whole process (JVM heap and code included), not only tensors");
    }

    /**
     * The start of a peak window, and what was in use at that moment: {@code startBytes} is allocated bytes on CUDA,
     * the resident set (VmRSS) on the CPU; {@code resetNote} is null when the peak was reset, else why it could not be.
     */
    public record Window(Long startBytes, String resetNote) {}

    /**
     * Starts a new peak window, so that {@link #peakMemory} afterwards reports the peak since this call.
     * CUDA: {@code at::accelerator::resetPeakStats} (bound as {@code torch.resetPeakStats}; what
     * torch.cuda.reset_peak_memory_stats calls), the caching allocator's peak allocated and reserved bytes.
     * CPU: writing "5" to {@code /proc/self/clear_refs} resets the kernel's high-water mark (VmHWM) to the current
     * resident set (Linux 4.0+); the kernel then tracks every later peak exactly, with no sampling thread to miss one.
     */
    public static Window resetPeak(Device device) {
        if (device.is_cuda()) {
            byte idx = (byte) (device.has_index() ? device.index() : 0);
            try {
                torch.resetPeakStats(idx);
                return new Window(torch.getDeviceStats(idx).allocated_bytes().current(), null);
            } catch (Throwable t) {
                return new Window(null, "cannot reset the caching allocator's peak statistics: " + t);
            }
        }
        try {
            Files.writeString(Path.of("/proc/self/clear_refs"), "5");
        } catch (IOException | RuntimeException e) {
            long rss = procStatusKb("VmRSS");
            return new Window(rss < 0 ? null : rss * 1024, "cannot reset VmHWM through /proc/self/clear_refs: " + e.getMessage());
        }
        long rss = procStatusKb("VmRSS");
        return new Window(rss < 0 ? null : rss * 1024, null);
    }

    /** A field of /proc/self/status in kB, or -1. */
    static long procStatusKb(String field) {
        try {
            for (String l : Files.readAllLines(Path.of("/proc/self/status"))) {
                if (l.startsWith(field + ":")) return Long.parseLong(l.substring(field.length() + 1).trim().split("\\s+")[0]);
            }
        } catch (IOException | RuntimeException e) {
            return -1;
        }
        return -1;
    }

    static String describe(double tflops) {
        return String.format(Locale.ROOT, "%.3f TFLOP/s", tflops);
    }
}
