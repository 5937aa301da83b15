package dev.jtune.plan;

import dev.jtune.util.UserError;
import org.bytedeco.pytorch.global.torch;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Locale;
import java.util.regex.Matcher;
import java.util.regex.Pattern;

/**
 * How much memory a run may use: given ({@code --memory 24GiB}), set by the environment ({@value #ENV}, same syntax,
 * for tests and for machines whose detection is wrong), or detected: CUDA's total device memory, or the CPU's
 * MemAvailable from /proc/meminfo (what the machine can give now, other processes and page cache considered).
 */
public final class DeviceMemory {
    /** Overrides detection for {@code jtune plan} and the check {@code jtune train} makes; e.g. {@code 24GiB}. */
    public static final String ENV = "JTUNE_DEVICE_MEMORY";

    /** The bytes and where they came from (for the report). */
    public record Budget(long bytes, String source) {}

    private static final Pattern SIZE = Pattern.compile("(\\d+(?:\\.\\d+)?)\\s*(b|kb|kib|mb|mib|gb|gib|tb|tib|k|m|g|t)?",
            Pattern.CASE_INSENSITIVE);

    private DeviceMemory() {}

    /** {@code given} (a --memory value) if not null, else the environment, else detection for the device. */
    public static Budget resolve(String given, boolean cuda, int cudaIndex) {
        if (given != null) return new Budget(parse(given, "--memory"), "--memory " + given);
        String env = System.getenv(ENV);
        if (env != null && !env.isBlank()) return new Budget(parse(env, ENV), ENV + "=" + env);
        return cuda ? cuda(cudaIndex) : cpu();
    }

    /**
     * "24GiB", "24 GB", "512MiB", "1.5T", "25769803776": binary units (KiB, MiB, GiB, TiB and the bare K, M, G, T) are
     * powers of 1024, decimal ones (kB, MB, GB, TB) powers of 1000, a bare number is bytes.
     */
    public static long parse(String s, String where) {
        Matcher m = SIZE.matcher(s.trim());
        if (!m.matches()) {
            throw new UserError(where + ": cannot read '" + s + "' as a memory size; expected e.g. 24GiB, 80GB, 512MiB or a number of bytes");
        }
        double v = Double.parseDouble(m.group(1));
        String unit = m.group(2) == null ? "b" : m.group(2).toLowerCase(Locale.ROOT);
        double mult = switch (unit) {
            case "b" -> 1;
            case "kb" -> 1e3;
            case "mb" -> 1e6;
            case "gb" -> 1e9;
            case "tb" -> 1e12;
            case "k", "kib" -> 1L << 10;
            case "m", "mib" -> 1L << 20;
            case "g", "gib" -> 1L << 30;
            case "t", "tib" -> 1L << 40;
            default -> throw new IllegalStateException(unit);
        };
        long bytes = (long) (v * mult);
        if (bytes <= 0) throw new UserError(where + ": the memory size must be positive, got '" + s + "'");
        return bytes;
    }

    /** CPU: MemAvailable (else MemTotal) from /proc/meminfo. */
    static Budget cpu() {
        long avail = meminfoKb("MemAvailable");
        if (avail > 0) return new Budget(avail * 1024, "the CPU's available memory (MemAvailable in /proc/meminfo)");
        long total = meminfoKb("MemTotal");
        if (total > 0) return new Budget(total * 1024, "the CPU's total memory (MemTotal in /proc/meminfo)");
        throw new UserError("cannot read the machine's memory from /proc/meminfo; give it with --memory (e.g. --memory 24GiB) or " + ENV);
    }

    /** CUDA: total device memory (cudaMemGetInfo through at::accelerator::getMemoryInfo). */
    static Budget cuda(int index) {
        try {
            long total = torch.getMemoryInfo((byte) index).second();
            return new Budget(total, "CUDA device " + index + "'s total memory");
        } catch (Throwable t) {
            throw new UserError("cannot read CUDA device " + index + "'s memory (" + t.getMessage() + "); give it with --memory or " + ENV);
        }
    }

    static long meminfoKb(String field) {
        try {
            for (String l : Files.readAllLines(Path.of("/proc/meminfo"))) {
                if (l.startsWith(field + ":")) return Long.parseLong(l.substring(field.length() + 1).trim().split("\\s+")[0]);
            }
        } catch (IOException | RuntimeException e) {
            return -1;
        }
        return -1;
    }
}
