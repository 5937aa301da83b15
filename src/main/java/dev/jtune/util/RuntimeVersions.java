package dev.jtune.util;

import org.bytedeco.pytorch.global.torch;

import java.util.regex.Matcher;
import java.util.regex.Pattern;

/**
 * The versions a run really uses, read at run time (for manifests, reports and {@code jtune --version}) instead of
 * strings written into the code: LibTorch's from the native library's own build configuration
 * ({@code at::show_config()}, which states {@code TORCH_VERSION=…}), the Bytedeco preset's from its jar, and the CUDA
 * runtime's from LibTorch's CUDA hooks when the native library was built with CUDA and a GPU is there.
 */
public final class RuntimeVersions {
    private static final Pattern TORCH_VERSION = Pattern.compile("TORCH_VERSION=([^,\\s]+)");

    private RuntimeVersions() {}

    /** "2.10.0 (Bytedeco 1.5.13)": LibTorch as the loaded native library reports it, and the preset's release. */
    public static String libtorch() {
        String torchVersion = torchVersion(torch.show_config().getString());
        String preset = presetRelease(torch.class.getPackage().getImplementationVersion());
        return (torchVersion == null ? "unknown" : torchVersion) + (preset == null ? "" : " (Bytedeco " + preset + ")");
    }

    /** The CUDA runtime LibTorch runs with ("13.0"), or null without CUDA (a CPU build, or no GPU). */
    public static String cuda() {
        if (!torch.hasCUDA()) return null;
        return cudaVersion(torch.getCUDAHooks().versionCUDART());
    }

    /** TORCH_VERSION from the text of {@code at::show_config()}, or null when it does not say. */
    static String torchVersion(String showConfig) {
        Matcher m = TORCH_VERSION.matcher(showConfig == null ? "" : showConfig);
        return m.find() ? m.group(1) : null;
    }

    /** "1.5.13" from the preset jar's Implementation-Version "2.10.0-1.5.13"; null when the jar has no manifest. */
    static String presetRelease(String implementationVersion) {
        if (implementationVersion == null) return null;
        int dash = implementationVersion.lastIndexOf('-');
        return dash < 0 ? implementationVersion : implementationVersion.substring(dash + 1);
    }

    /** CUDART's integer version (major · 1000 + minor · 10, e.g. 13000) as "13.0". */
    static String cudaVersion(long cudart) {
        if (cudart <= 0) return null;
        return (cudart / 1000) + "." + (cudart % 1000) / 10;
    }
}
