package dev.jtune.util;

import com.sun.jna.Library;
import com.sun.jna.Native;
import org.bytedeco.pytorch.global.torch;

/**
 * Process-wide settings for LibTorch's CPU thread pool, made once before the first model runs.
 *
 * <p>Measured on a 2-vCPU machine (see bench/RESULTS.md): with OpenMP's default busy-waiting, two
 * intra-op threads made a tiny model's forward 20× slower than one thread (the spinning worker fights
 * the JVM's own threads for the cores); with passive waiting the penalty disappears. So jtune sets
 * {@code OMP_WAIT_POLICY=PASSIVE} (unless the user chose a policy) before LibTorch's OpenMP runtime
 * loads, and uses all cores but one for intra-op work ({@code JTUNE_NUM_THREADS} overrides).
 */
public final class NativeRuntime {
    private static boolean threadsSet;

    private NativeRuntime() {}

    private interface CLibrary extends Library {
        int setenv(String name, String value, int overwrite);
    }

    /**
     * Sets OpenMP's wait policy in the process environment. Must run before the first LibTorch class
     * loads (Main calls it first); later it has no effect, which is harmless.
     */
    public static void configureEnvironment() {
        if (System.getenv("OMP_WAIT_POLICY") != null) return;
        try {
            Native.load("c", CLibrary.class).setenv("OMP_WAIT_POLICY", "PASSIVE", 0);
        } catch (Throwable t) {   // no libc through JNA (not Linux/macOS): keep the defaults
        }
    }

    /** Sets LibTorch's intra-op thread count once: JTUNE_NUM_THREADS, or all cores but one. */
    public static synchronized void configureThreads() {
        if (threadsSet) return;
        threadsSet = true;
        LibTorchNatives.ensureLoaded();   // the first LibTorch call of most paths: make sure it is the preset's LibTorch
        int n = Math.max(1, Runtime.getRuntime().availableProcessors() - 1);
        String env = System.getenv("JTUNE_NUM_THREADS");
        if (env != null) {
            try {
                n = Math.max(1, Integer.parseInt(env.trim()));
            } catch (NumberFormatException e) {
                throw new UserError("environment variable JTUNE_NUM_THREADS: expected a positive integer, got '" + env + "'");
            }
        }
        torch.set_num_threads(n);
        singleThreadedBlas();
    }

    private interface OpenBlas extends Library {
        void openblas_set_num_threads(int n);
    }

    /**
     * LibTorch's fp32 matrix products on the CPU call OpenBLAS, which runs its own pthread pool (one thread per core,
     * busy-waiting between calls) beside LibTorch's OpenMP pool. Measured on the 2-core box (bench/RESULTS.md,
     * "decode"): with both pools, a 896 x 4864 matrix-vector product ran 4 to 8x slower than with OpenBLAS on one
     * thread, the spinning threads taking the cores from each other and from other processes. So OpenBLAS gets one
     * thread (the user's {@code OPENBLAS_NUM_THREADS} wins) and jtune splits work across cores itself
     * ({@link dev.jtune.kernels.CpuLinear}). Every OpenBLAS mapped into the process is set (the Bytedeco
     * openblas jar's copy is the one LibTorch resolves to here).
     */
    private static void singleThreadedBlas() {
        if (System.getenv("OPENBLAS_NUM_THREADS") != null) return;
        try {
            java.util.Set<String> done = new java.util.HashSet<>();
            for (String line : java.nio.file.Files.readAllLines(java.nio.file.Path.of("/proc/self/maps"))) {
                int slash = line.indexOf('/');
                if (slash < 0 || !line.contains("/libopenblas") || !line.contains(".so")) continue;
                String lib = line.substring(slash);
                if (done.add(lib)) Native.load(lib, OpenBlas.class).openblas_set_num_threads(1);
            }
        } catch (Throwable t) {   // not Linux, or no OpenBLAS in this build (CUDA builds may use MKL): keep its default
        }
    }
}
