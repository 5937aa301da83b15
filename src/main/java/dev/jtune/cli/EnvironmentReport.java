package dev.jtune.cli;

import dev.jtune.kernels.CpuKernelLibrary;
import dev.jtune.kernels.KernelLibrary;
import dev.jtune.kernels.Ops;
import dev.jtune.util.CudaDecision;
import dev.jtune.util.LibTorchNatives;
import dev.jtune.util.RuntimeVersions;
import org.bytedeco.javacpp.Loader;
import org.bytedeco.pytorch.global.torch;

import java.io.IOException;
import java.io.InputStream;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.LinkedHashSet;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.stream.Stream;

/**
 * What a bug report needs to know about this installation, as {@code transformers env} and
 * {@code python -m torch.utils.collect_env} give it: jtune's version and commit, Java, the OS and CPU, the LibTorch
 * that loaded (version, CPU or CUDA build, and from where), every native library mapped into the process with its
 * path, CUDA's runtime and driver, cuDNN and NCCL, the GPUs with their memory, jtune's kernel libraries (CUDA, CPU) and the ops
 * they serve, and JavaCPP's cache with its free space. Every value is read at run time; what cannot be read says why.
 */
final class EnvironmentReport {
    private EnvironmentReport() {}

    /** The report as an ordered map (the JSON of {@code jtune env --json}; the text form prints the same keys). */
    static Map<String, Object> collect() {
        Path torchDir = LibTorchNatives.ensureLoaded();
        dev.jtune.util.NativeRuntime.configureThreads();   // report the thread count a run would use
        Map<String, Object> r = new LinkedHashMap<>();

        Map<String, Object> jtune = new LinkedHashMap<>();
        String v = EnvironmentReport.class.getPackage().getImplementationVersion();
        jtune.put("version", v == null ? "dev (not run from the jar)" : v);
        jtune.put("commit", buildCommit());
        r.put("jtune", jtune);

        Map<String, Object> java = new LinkedHashMap<>();
        java.put("version", System.getProperty("java.runtime.version"));
        java.put("vendor", System.getProperty("java.vendor"));
        java.put("home", System.getProperty("java.home"));
        java.put("max_heap_bytes", Runtime.getRuntime().maxMemory());
        // 0: JavaCPP reads no resident size per allocation (LibTorchNatives.noPhysicalMemoryPolling says why)
        java.put("javacpp_max_physical_bytes", org.bytedeco.javacpp.Pointer.maxPhysicalBytes());
        r.put("java", java);

        Map<String, Object> os = new LinkedHashMap<>();
        os.put("name", osRelease());
        os.put("kernel", System.getProperty("os.name") + " " + System.getProperty("os.version"));
        os.put("arch", System.getProperty("os.arch"));
        os.put("cpu", cpuModel());
        os.put("cores", Runtime.getRuntime().availableProcessors());
        os.put("memory_bytes", memTotal());
        r.put("os", os);

        Map<String, Object> lt = new LinkedHashMap<>();
        lt.put("version", RuntimeVersions.libtorch());
        boolean gpuBuild = LibTorchNatives.loadedGpuNatives();
        lt.put("build", gpuBuild ? "CUDA (pytorch:linux-x86_64-gpu)" : "CPU (pytorch:linux-x86_64)");
        lt.put("directory", torchDir.toString());
        lt.put("intra_op_threads", torch.get_num_threads());
        r.put("libtorch", lt);

        r.put("cuda", cuda(gpuBuild));
        r.put("kernels", kernels());
        r.put("cpu_kernels", cpuKernels());

        Map<String, Object> cache = new LinkedHashMap<>();
        try {
            Path dir = Loader.getCacheDir().toPath();
            cache.put("directory", dir.toString());
            cache.put("free_bytes", Files.getFileStore(dir).getUsableSpace());
        } catch (IOException e) {
            cache.put("error", e.getMessage());
        }
        r.put("javacpp_cache", cache);
        r.put("native_libraries", nativeLibraries());
        return r;
    }

    private static Map<String, Object> cuda(boolean gpuBuild) {
        Map<String, Object> c = new LinkedHashMap<>();
        CudaDecision.Driver driver = CudaDecision.Driver.probe(Path.of("/"));
        c.put("driver", driver.present() ? driver.version() : null);
        CudaDecision.Natives natives = CudaDecision.probeNatives();
        c.put("usable", natives.usable());
        if (!natives.usable()) c.put("why_not", CudaDecision.reason(driver, natives));
        if (!gpuBuild || natives.loadError() != null) return c;
        try {
            var hooks = torch.getCUDAHooks();
            c.put("runtime", RuntimeVersions.cuda());
            c.put("cudnn", hooks.hasCuDNN() ? version(hooks.versionCuDNN()) : null);
            c.put("nccl", ncclVersion());
            List<Map<String, Object>> gpus = new ArrayList<>();
            for (int i = 0; i < natives.devices(); i++) gpus.add(gpu(i));
            c.put("gpus", gpus);
        } catch (Throwable t) {
            c.put("error", t.toString());
        }
        return c;
    }

    /** cuDNN's integer version (major·10000 + minor·100 + patch since 9; major·1000 + minor·100 + patch before). */
    static String version(long v) {
        if (v <= 0) return null;
        return v >= 90000 ? (v / 10000) + "." + (v / 100) % 100 + "." + v % 100 : (v / 1000) + "." + (v / 100) % 10 + "." + v % 100;
    }

    /** NCCL through the CUDA preset (optional on the class path: reflection), "2.27.3"; null when not reachable. */
    private static String ncclVersion() {
        try {
            Class<?> nccl = Class.forName("org.bytedeco.cuda.global.nccl");
            int[] out = new int[1];
            nccl.getMethod("ncclGetVersion", int[].class).invoke(null, (Object) out);
            int code = out[0];
            return code >= 10000 ? (code / 10000) + "." + (code / 100) % 100 + "." + code % 100 : (code / 1000) + "." + (code / 100) % 10 + "." + code % 100;
        } catch (Throwable t) {
            return null;
        }
    }

    /** Name, memory and compute capability of GPU {@code index}. */
    private static Map<String, Object> gpu(int index) {
        Map<String, Object> g = new LinkedHashMap<>();
        g.put("index", index);
        g.putAll(dev.jtune.bench.DeviceInfo.cudaProperties(index));
        return g;
    }

    private static Map<String, Object> kernels() {
        Map<String, Object> k = new LinkedHashMap<>();
        k.put("loaded", KernelLibrary.loaded());
        k.put("available", KernelLibrary.available());
        k.put("status", KernelLibrary.reason());
        k.put("ops_on_cuda", Ops.AUTO.paths(true));
        return k;
    }

    private static Map<String, Object> cpuKernels() {
        Map<String, Object> k = new LinkedHashMap<>();
        k.put("available", CpuKernelLibrary.available());
        k.put("status", CpuKernelLibrary.reason());
        k.put("ops_on_cpu", Ops.AUTO.paths(false));
        return k;
    }

    /** Every shared library mapped into this process, by path, in address order (from /proc/self/maps). */
    static List<String> nativeLibraries() {
        Path maps = Path.of("/proc/self/maps");
        if (!Files.isReadable(maps)) return List.of("(no /proc/self/maps on this OS)");
        Set<String> libs = new LinkedHashSet<>();
        try {
            for (String line : Files.readAllLines(maps)) {
                int slash = line.indexOf('/');
                if (slash < 0) continue;
                String path = line.substring(slash).trim();
                if (path.contains(".so") && !path.endsWith(" (deleted)")) libs.add(path);
            }
        } catch (IOException e) {
            return List.of("(unreadable: " + e.getMessage() + ")");
        }
        return new ArrayList<>(libs);
    }

    /** The commit the jar was built from (written by the build into dev/jtune/build-commit.txt), or "unknown". */
    static String buildCommit() {
        try (InputStream in = EnvironmentReport.class.getResourceAsStream("/dev/jtune/build-commit.txt")) {
            if (in == null) return "unknown";
            String s = new String(in.readAllBytes(), StandardCharsets.UTF_8).trim();
            return s.isEmpty() ? "unknown" : s;
        } catch (IOException e) {
            return "unknown";
        }
    }

    private static String osRelease() {
        try (Stream<String> lines = Files.lines(Path.of("/etc/os-release"))) {
            return lines.filter(l -> l.startsWith("PRETTY_NAME=")).findFirst()
                    .map(l -> l.substring("PRETTY_NAME=".length()).replace("\"", "")).orElse(System.getProperty("os.name"));
        } catch (IOException | RuntimeException e) {
            return System.getProperty("os.name");
        }
    }

    private static String cpuModel() {
        try (Stream<String> lines = Files.lines(Path.of("/proc/cpuinfo"))) {
            return lines.filter(l -> l.startsWith("model name")).findFirst().map(l -> l.substring(l.indexOf(':') + 1).trim()).orElse("unknown");
        } catch (IOException | RuntimeException e) {
            return "unknown";
        }
    }

    private static Long memTotal() {
        try (Stream<String> lines = Files.lines(Path.of("/proc/meminfo"))) {
            return lines.filter(l -> l.startsWith("MemTotal:")).findFirst()
                    .map(l -> Long.parseLong(l.replaceAll("[^0-9]", "")) * 1024).orElse(null);
        } catch (IOException | RuntimeException e) {
            return null;
        }
    }
}
