package dev.jtune.kernels;

import java.util.LinkedHashMap;
import java.util.Map;
import java.util.TreeMap;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.atomic.LongAdder;

/**
 * The path each op really took, counted per call where a kernel backend was chosen for its tensors: the kernel, or
 * LibTorch and why (a dtype, shape or device the kernel does not take). {@link Ops#describe} says what the policy
 * intends before a run; this says what happened, so a log line can never claim a kernel that a dtype mismatch (bf16
 * activations beside float32 cos/sin under autocast, say) silently sent to LibTorch. Process-wide, cheap (one map
 * update per op call), reset by whoever reads it for a run.
 */
public final class OpPaths {
    private static final Map<String, Map<String, LongAdder>> TAKEN = new ConcurrentHashMap<>();

    private OpPaths() {}

    /** Records one call of {@code op}: the kernel ({@code whyNot} null) or LibTorch because of {@code whyNot}. */
    static void record(String op, String whyNot) {
        String path = whyNot == null ? "CUDA kernel" : "LibTorch: " + whyNot;
        TAKEN.computeIfAbsent(op, k -> new ConcurrentHashMap<>()).computeIfAbsent(path, k -> new LongAdder()).increment();
    }

    /** Forgets what was recorded (a run starts counting afresh). */
    public static void reset() {
        TAKEN.clear();
    }

    /** op → "path ×calls[; other path ×calls]", ops in name order; empty when no call had a kernel backend. */
    public static Map<String, String> taken() {
        Map<String, String> out = new LinkedHashMap<>();
        new TreeMap<>(TAKEN).forEach((op, paths) -> {
            StringBuilder b = new StringBuilder();
            new TreeMap<>(paths).forEach((path, n) -> b.append(b.length() == 0 ? "" : "; ").append(path).append(" ×").append(n.sum()));
            out.put(op, b.toString());
        });
        return out;
    }
}
