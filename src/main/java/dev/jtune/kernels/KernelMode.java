package dev.jtune.kernels;

import java.util.Locale;

/**
 * {@code training.kernels} and {@code --kernels}: {@code auto} runs jtune's CUDA kernels where they apply (CUDA
 * tensors, float32/bfloat16, the kernel library loaded) and LibTorch elsewhere; {@code off} runs LibTorch everywhere.
 */
public enum KernelMode {
    AUTO, OFF;

    /** "auto" or "off" (any case); IllegalArgumentException otherwise. */
    public static KernelMode parse(String s) {
        return switch (s.trim().toLowerCase(Locale.ROOT)) {
            case "auto" -> AUTO;
            case "off" -> OFF;
            default -> throw new IllegalArgumentException("kernels: expected auto or off, got '" + s + "'");
        };
    }

    /** The name as written in experiment files and flags. */
    public String key() {
        return name().toLowerCase(Locale.ROOT);
    }
}
