package dev.jtune.util;

import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Locale;

/**
 * What {@code device: auto | cuda | cuda:N | cpu} means on this machine, decided from two facts: whether the machine
 * has an NVIDIA driver, and whether jtune's CUDA natives loaded. A machine with a driver never trains on the CPU by
 * accident: {@code auto} there needs CUDA to work, and every refusal says why CUDA does not (a CPU build, a CUDA
 * library that did not load and its error, or no visible GPU), so "no GPU" and "GPU natives failed" read differently.
 */
public final class CudaDecision {
    private CudaDecision() {}

    /**
     * The NVIDIA kernel driver as the OS shows it.
     *
     * @param version the first line of /proc/driver/nvidia/version, or null when the driver is absent
     */
    public record Driver(boolean present, String version) {
        /** Reads {@code ROOT/proc/driver/nvidia/version} and {@code ROOT/dev/nvidia0} ({@code root} is "/" here). */
        public static Driver probe(Path root) {
            Path version = root.resolve("proc/driver/nvidia/version");
            Path dev0 = root.resolve("dev/nvidia0");
            String line = null;
            try {
                if (Files.isReadable(version)) {
                    line = Files.readAllLines(version).stream().findFirst().orElse("").trim();
                }
            } catch (java.io.IOException e) {
                line = "unreadable: " + e.getMessage();
            }
            return new Driver(line != null || Files.exists(dev0), line != null ? line : (Files.exists(dev0) ? "/dev/nvidia0" : null));
        }
    }

    /**
     * What the loaded natives can do.
     *
     * @param gpuBuild   LibTorch's CUDA natives ({@code pytorch:linux-x86_64-gpu}) are what was loaded
     * @param loadError  null when LibTorch's CUDA library loaded; else the library and the dynamic linker's error
     * @param devices    GPUs CUDA sees (0 when it does not load)
     */
    public record Natives(boolean gpuBuild, String loadError, int devices) {
        public boolean usable() {
            return gpuBuild && loadError == null && devices > 0;
        }
    }

    /** The device to use for {@code name}; {@code where} names the flag or key for the message. */
    public static String decide(String name, String where, Driver driver, Natives natives) {
        String n = name.trim().toLowerCase(Locale.ROOT);
        if (n.equals("cpu")) return "cpu";
        boolean auto = n.equals("auto");
        if (!auto && !n.equals("cuda") && !n.matches("cuda:\\d+")) {
            throw new UserError(where + ": unknown device '" + name + "'; expected auto, cpu, cuda or cuda:N");
        }
        if (natives.usable()) {
            if (n.startsWith("cuda:")) {
                int index = Integer.parseInt(n.substring(5));
                if (index >= natives.devices()) {
                    throw new UserError(where + ": device '" + name + "' asked for, but CUDA sees " + natives.devices()
                            + " GPU" + (natives.devices() == 1 ? "" : "s") + " (cuda:0" + (natives.devices() > 1 ? "…cuda:" + (natives.devices() - 1) : "")
                            + "; CUDA_VISIBLE_DEVICES=" + System.getenv("CUDA_VISIBLE_DEVICES") + ")");
                }
            }
            return auto ? "cuda" : n;
        }
        if (auto && !driver.present()) return "cpu";   // no NVIDIA GPU here: the CPU is what auto means
        String why = reason(driver, natives);
        if (auto) {
            throw new UserError(where + ": device 'auto' on a machine with an NVIDIA driver (" + driver.version()
                    + "), but CUDA cannot be used: " + why + ". jtune does not fall back to the CPU in silence: fix that, "
                    + "or set the device to 'cpu' to train on the CPU");
        }
        throw new UserError(where + ": device '" + name + "' asked for, but CUDA cannot be used: " + why
                + "; use 'cpu' to run on the CPU");
    }

    /** Why CUDA is not usable, in one clause. */
    public static String reason(Driver driver, Natives natives) {
        if (!natives.gpuBuild()) {
            return (driver.present() ? "" : "this machine has no NVIDIA driver, and ")
                    + "jtune was built with LibTorch's CPU natives (build the CUDA jar with `mvn -B -Pgpu package`)";
        }
        if (natives.loadError() != null) {
            return "LibTorch's CUDA library did not load: " + natives.loadError()
                    + (driver.present() ? "" : " (and this machine has no NVIDIA driver)");
        }
        if (!driver.present()) return "this machine has no NVIDIA driver (/proc/driver/nvidia/version, /dev/nvidia0)";
        return "CUDA loaded but sees no GPU (CUDA_VISIBLE_DEVICES=" + System.getenv("CUDA_VISIBLE_DEVICES") + ")";
    }

    /** This machine and process, probed. */
    public static Natives probeNatives() {
        LibTorchNatives.ensureLoaded();
        boolean gpu = LibTorchNatives.loadedGpuNatives();
        if (!gpu) return new Natives(false, null, 0);
        String error = LibTorchNatives.cudaLoadError();
        int devices = 0;
        if (error == null) {
            try {
                devices = (int) org.bytedeco.pytorch.global.torch.cuda_device_count();
            } catch (Throwable t) {   // the CUDA hooks threw: report it instead of a count
                error = "torch::cuda::device_count failed: " + t.getMessage();
            }
        }
        return new Natives(true, error, devices);
    }

    /** One line for messages and test failures: why CUDA is not usable in this process (or "CUDA is usable"). */
    public static String explainUnavailable() {
        Natives natives = probeNatives();
        return natives.usable() ? "CUDA is usable" : reason(Driver.probe(Path.of("/")), natives);
    }
}
