package dev.jtune.kernels;

import org.bytedeco.javacpp.Loader;

import java.net.URL;

/**
 * Loads jtune's CPU kernel library (libjtunecpu.so, built by native/build-cpu.sh with the host C++ compiler into the
 * jar at {@code dev/jtune/kernels/linux-x86_64/}) through JavaCPP's Loader, and says whether the kernels run here and,
 * when not, why. Without it the ops take LibTorch's path ({@link CpuLinear}: OpenBLAS's sgemv), so a build without a
 * C++ compiler still works, slower. {@code JTUNE_CPU_KERNELS=0} turns the library off (to compare against LibTorch).
 */
public final class CpuKernelLibrary {
    static final String RESOURCE = "linux-x86_64/libjtunecpu.so";
    static final int ABI_VERSION = 1;

    /** What the probe found: whether the kernels run here, the instruction set they picked, or why they do not. */
    record Status(boolean available, String isa, String reason) {}

    private static volatile Status status;

    private CpuKernelLibrary() {}

    /** True when the CPU kernels can run in this process. */
    public static boolean available() {
        return status().available();
    }

    /** "libjtunecpu.so (avx512f) from PATH", or why the kernels are not used. */
    public static String reason() {
        return status().reason();
    }

    static Status status() {
        Status s = status;
        if (s == null) {
            synchronized (CpuKernelLibrary.class) {
                if (status == null) status = probe(RESOURCE, System.getenv("JTUNE_CPU_KERNELS"));
                s = status;
            }
        }
        return s;
    }

    /** Loads {@code resource} (relative to this package) unless {@code env} is "0"; never throws. */
    static Status probe(String resource, String env) {
        if ("0".equals(env == null ? null : env.trim())) {
            return new Status(false, null, "CPU kernels off (JTUNE_CPU_KERNELS=0)");
        }
        String platform = Loader.getPlatform();
        if (!platform.equals("linux-x86_64")) {
            return new Status(false, null, "CPU kernels are built for linux-x86_64 only, this is " + platform);
        }
        URL url = CpuKernelLibrary.class.getResource(resource);
        if (url == null) {
            return new Status(false, null, "CPU kernel library missing: no " + resource + " next to "
                    + CpuKernelLibrary.class.getName() + " (jtune was built without a C++ compiler, or with -Djtune.cpu.kernels=skip)");
        }
        String path;
        try {
            path = Loader.loadLibrary(CpuKernelLibrary.class, new URL[] {url}, "jtunecpu");
        } catch (Throwable t) {
            return new Status(false, null, "CPU kernel library did not load: " + t);
        }
        if (path == null) return new Status(false, null, "CPU kernel library did not load from " + url);
        int abi;
        String isa;
        try {
            abi = CpuKernelNative.abiVersion();
            isa = CpuKernelNative.isa();
        } catch (UnsatisfiedLinkError e) {
            return new Status(false, null, "CPU kernel library loaded from " + path + " but its JNI entry points are missing: " + e);
        }
        if (abi != ABI_VERSION) {
            return new Status(false, isa, "CPU kernel library ABI " + abi + ", expected " + ABI_VERSION + " (stale " + path + ")");
        }
        return new Status(true, isa, "libjtunecpu.so (" + isa + ") from " + path);
    }
}
