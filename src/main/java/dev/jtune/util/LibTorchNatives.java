package dev.jtune.util;

import com.sun.jna.Library;
import com.sun.jna.Native;
import com.sun.jna.Pointer;
import org.bytedeco.javacpp.Loader;

import java.io.File;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Locale;
import java.util.Map;

/**
 * Loads the Bytedeco preset's LibTorch so that no other LibTorch on the machine can take its place.
 *
 * <p>Why: the preset's {@code libtorch.so} needs {@code libtorch_cpu.so} by soname, and JavaCPP extracts and loads
 * {@code libtorch.so} before it has extracted {@code libtorch_cpu.so}. On a first run (an empty JavaCPP cache) the
 * dynamic linker therefore finds no {@code libtorch_cpu.so} beside {@code libtorch.so} ($ORIGIN) and takes the next
 * one on the linker path: on a machine with Debian's python3-torch that is LibTorch 1.13 in /lib/x86_64-linux-gnu,
 * whose static initialisers then register with the preset's 2.10 {@code libc10.so} and crash the JVM (SIGSEGV in
 * pthread_mutex_lock). Even with a warm cache, {@code LD_LIBRARY_PATH} is searched before $ORIGIN.
 *
 * <p>The fix at the root: extract the preset's whole native directory first, then open {@code libgomp}, {@code libc10}
 * and {@code libtorch_cpu} from it by absolute path, in dependency order, before JavaCPP loads {@code libtorch.so}.
 * The dynamic linker matches a needed library by soname against what is already loaded, so every later
 * {@code libtorch_cpu.so}/{@code libc10.so} dependency resolves to the preset's copy whatever the linker path says.
 * A LibTorch of another build already mapped in the process (an application that loaded one before jtune) cannot be
 * undone: that is refused with a {@link UserError} naming both paths, never a crash.
 */
public final class LibTorchNatives {
    /** The libraries of the core chain, in the order their dependencies need: each only needs those before it. */
    private static final List<String> CORE_CHAIN = List.of("libgomp.so.1", "libc10.so", "libtorch_cpu.so");
    private static final int RTLD_NOW = 2, RTLD_GLOBAL = 0x100;

    private static Path loadedFrom;

    private LibTorchNatives() {}

    private interface Dl extends Library {
        Pointer dlopen(String file, int mode);
        String dlerror();
    }

    /**
     * Makes sure the preset's LibTorch is the one loaded; idempotent. Call before the first LibTorch class is
     * touched (the CLI's Main and the API's entry points do); later it only checks what is mapped.
     *
     * @return the directory the preset's natives were loaded from
     */
    public static synchronized Path ensureLoaded() {
        if (loadedFrom != null) return loadedFrom;
        noPhysicalMemoryPolling();
        Path dir = extractPresetNatives();
        refuseForeign(mappedTorchLibraries(), dir);
        if (isLinux()) {
            // OpenBLAS first, through JavaCPP, as the preset's own load order does: libtorch_cpu.so needs libopenblas.so.0.
            Loader.load(org.bytedeco.openblas.global.openblas.class);
            Dl dl = Native.load("c", Dl.class);
            for (String name : CORE_CHAIN) {
                Path lib = dir.resolve(name);
                if (!Files.exists(lib)) continue;
                if (dl.dlopen(lib.toString(), RTLD_NOW | RTLD_GLOBAL) == null) {
                    throw new UserError("LibTorch's native library " + lib + " does not load: " + dl.dlerror());
                }
            }
        }
        Loader.load(org.bytedeco.pytorch.global.torch.class);
        refuseForeign(mappedTorchLibraries(), dir);
        loadedFrom = dir;
        return dir;
    }

    /** JavaCPP's system property for its resident-memory ceiling ({@link org.bytedeco.javacpp.Pointer#maxPhysicalBytes()}). */
    public static final String MAX_PHYSICAL_BYTES = "org.bytedeco.javacpp.maxPhysicalBytes";

    /**
     * Turns off JavaCPP's resident-memory check, unless the user set it ({@code -Dorg.bytedeco.javacpp.maxPhysicalBytes}):
     * must run before JavaCPP's {@code Pointer} class initialises.
     *
     * <p>Why: with the check on (JavaCPP's default, 4 × the Java heap), every native object JavaCPP wraps (each tensor
     * an op returns, each optional and options argument) first reads the process's resident size from the kernel. On
     * the 2-core build box that read cost ~35 µs of a ~44 µs small CPU linear, and a decode step makes ~2,000 such
     * objects (bench/RESULTS.md, "Issue 31, third pass"). Past the ceiling JavaCPP calls {@code System.gc()} and sleeps
     * 100 ms, up to 10 times per allocation, then throws OutOfMemoryError: a 7B model mapped in memory with a small
     * heap would crawl and then fail. jtune frees its tensors itself (PointerScope, explicit releases) and plans
     * memory ahead ({@code jtune plan}, the trainer's memory check), so it does not need that safety net.
     */
    static void noPhysicalMemoryPolling() {
        if (System.getProperty(MAX_PHYSICAL_BYTES) == null && System.getProperty(MAX_PHYSICAL_BYTES.toLowerCase(Locale.ROOT)) == null) {
            System.setProperty(MAX_PHYSICAL_BYTES, "0");
        }
    }

    /** The directory the preset's natives were loaded from, or null before {@link #ensureLoaded()}. */
    public static synchronized Path directory() {
        return loadedFrom;
    }

    /** True when the natives loaded are LibTorch's CUDA build ({@code pytorch:linux-x86_64-gpu}). */
    public static boolean loadedGpuNatives() {
        Path dir = ensureLoaded();
        return dir.getFileName().toString().endsWith("-gpu");
    }

    /**
     * Null when LibTorch's CUDA library ({@code libtorch_cuda.so}) is loaded; else what keeps it from loading, as the
     * dynamic linker says it (JavaCPP treats the CUDA libraries as optional and swallows that error).
     */
    public static String cudaLoadError() {
        Path dir = ensureLoaded();
        Path lib = dir.resolve("libtorch_cuda.so");
        if (!Files.exists(lib)) return lib.getFileName() + " is not among LibTorch's natives in " + dir;
        if (mappedTorchLibraries().containsKey("libtorch_cuda.so")) return null;
        if (!isLinux()) return lib + " is not loaded";
        Dl dl = Native.load("c", Dl.class);
        if (dl.dlopen(lib.toString(), RTLD_NOW | RTLD_GLOBAL) == null) return lib + ": " + dl.dlerror();
        return null;   // it loads now: its CUDA hooks registered as it did
    }

    /** Extracts every file of the preset's native directory into JavaCPP's cache and returns that directory. */
    static Path extractPresetNatives() {
        String res = resourceDir(true);
        if (res == null) res = resourceDir(false);
        if (res == null) {
            throw new UserError("LibTorch's natives for " + Loader.getPlatform() + " are not on the class path "
                    + "(org.bytedeco:pytorch:" + Loader.getPlatform() + "); rebuild with `mvn -B package`");
        }
        try {
            File[] files = Loader.cacheResources(org.bytedeco.pytorch.global.torch.class, res);
            for (File f : files) {
                Path p = f.toPath();
                return Files.isDirectory(p) ? p : p.getParent();
            }
        } catch (IOException e) {
            throw new UserError("cannot extract LibTorch's natives into the JavaCPP cache (" + cacheDirForMessage()
                    + "): " + e.getMessage() + "; free disk space or set -Dorg.bytedeco.javacpp.cachedir=DIR");
        }
        throw new UserError("LibTorch's native directory " + res + " is empty on the class path");
    }

    /** "/org/bytedeco/pytorch/linux-x86_64[-gpu]/" when that directory is on the class path, else null. */
    private static String resourceDir(boolean gpu) {
        String dir = "/org/bytedeco/pytorch/" + Loader.getPlatform() + (gpu ? "-gpu" : "") + "/";
        return LibTorchNatives.class.getResource(dir + "libtorch_cpu.so") != null ? dir : null;
    }

    private static String cacheDirForMessage() {
        try {
            return Loader.getCacheDir().toString();
        } catch (IOException e) {
            return "the JavaCPP cache";
        }
    }

    /**
     * LibTorch libraries mapped into this process now, by file name, from /proc/self/maps (empty where there is no
     * /proc: the check is Linux-only, as the bug is).
     */
    static Map<String, Path> mappedTorchLibraries() {
        Path maps = Path.of("/proc/self/maps");
        if (!Files.isReadable(maps)) return Map.of();
        try {
            return torchLibraries(Files.readAllLines(maps));
        } catch (IOException e) {
            return Map.of();
        }
    }

    /** Parses maps lines: every mapped file whose name is a LibTorch library (libtorch*, libc10*), first path kept. */
    static Map<String, Path> torchLibraries(List<String> mapsLines) {
        Map<String, List<Path>> all = new LinkedHashMap<>();
        for (String line : mapsLines) {
            int slash = line.indexOf('/');
            if (slash < 0) continue;
            Path p = Path.of(line.substring(slash).trim());
            String name = p.getFileName().toString();
            if (!isTorchLibrary(name)) continue;
            List<Path> paths = all.computeIfAbsent(name, k -> new ArrayList<>());
            if (!paths.contains(p)) paths.add(p);
        }
        Map<String, Path> out = new LinkedHashMap<>();
        all.forEach((name, paths) -> {
            for (int i = 0; i < paths.size(); i++) out.put(i == 0 ? name : name + "#" + i, paths.get(i));
        });
        return out;
    }

    static boolean isTorchLibrary(String fileName) {
        String n = fileName.toLowerCase(Locale.ROOT);
        return (n.startsWith("libtorch") || n.startsWith("libc10")) && n.contains(".so")
                && !n.startsWith("libtorch_python");   // Python's binding layer, harmless beside ours, never loaded here
    }

    /** Throws a UserError when a LibTorch library outside {@code ours} is mapped in this process. */
    static void refuseForeign(Map<String, Path> mapped, Path ours) {
        for (Map.Entry<String, Path> e : mapped.entrySet()) {
            Path p = e.getValue();
            if (p.normalize().startsWith(ours.normalize())) continue;
            String name = p.getFileName().toString();
            String base = name.contains(".so") ? name.substring(0, name.indexOf(".so") + 3) : name;
            throw new UserError("another LibTorch is already loaded in this process: " + p + "; jtune needs its own "
                    + "LibTorch (" + ours.resolve(base) + "), and two builds in one process crash. "
                    + "Load jtune before any other LibTorch user, run it in its own JVM, or remove " + p.getParent()
                    + " from LD_PRELOAD/LD_LIBRARY_PATH");
        }
    }

    private static boolean isLinux() {
        return System.getProperty("os.name", "").toLowerCase(Locale.ROOT).contains("linux");
    }
}
