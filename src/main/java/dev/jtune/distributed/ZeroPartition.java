package dev.jtune.distributed;

import java.util.ArrayList;
import java.util.Collections;
import java.util.Comparator;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

/**
 * Which rank owns each trained tensor under ZeRO stage 1 ({@code training.zero_stage: 1}): whole tensors, never split,
 * assigned as PyTorch's {@code ZeroRedundancyOptimizer} does it: largest first (ties in the given order), each to the
 * rank with the fewest elements so far (ties to the lowest rank). Deterministic from the names and sizes alone, so every
 * rank computes the same partition without talking, and {@code jtune plan} predicts the same shard sizes without loading
 * anything.
 *
 * <p>The owner keeps AdamW's state (exp_avg, exp_avg_sq) for its tensors and is the only rank that updates them.
 *
 * @param owners     rank of each tensor, by name, in the given order
 * @param rankElements elements owned by each rank
 */
public record ZeroPartition(Map<String, Integer> owners, long[] rankElements) {

    /** The partition of {@code sizes} (elements per tensor, in the optimizer's order) over {@code worldSize} ranks. */
    public static ZeroPartition of(Map<String, Long> sizes, int worldSize) {
        if (worldSize < 1) throw new IllegalArgumentException("world size " + worldSize);
        List<String> names = new ArrayList<>(sizes.keySet());
        List<String> bySize = new ArrayList<>(names);
        bySize.sort(Comparator.comparingLong((String n) -> sizes.get(n)).reversed());   // stable: ties keep the given order
        long[] load = new long[worldSize];
        Map<String, Integer> chosen = new LinkedHashMap<>();
        for (String n : bySize) {
            int min = 0;
            for (int r = 1; r < worldSize; r++) if (load[r] < load[min]) min = r;
            chosen.put(n, min);
            load[min] += sizes.get(n);
        }
        Map<String, Integer> owners = new LinkedHashMap<>();
        for (String n : names) owners.put(n, chosen.get(n));
        return new ZeroPartition(Collections.unmodifiableMap(owners), load);
    }

    public int worldSize() {
        return rankElements.length;
    }

    public int ownerOf(String name) {
        Integer r = owners.get(name);
        if (r == null) throw new IllegalArgumentException("not a partitioned tensor: " + name);
        return r;
    }

    /** The names {@code rank} owns, in the given order. */
    public List<String> ownedBy(int rank) {
        List<String> out = new ArrayList<>();
        owners.forEach((n, r) -> {
            if (r == rank) out.add(n);
        });
        return out;
    }

    /** The most elements any rank owns: its optimizer state is the largest (what the memory plan must fit). */
    public long largestShard() {
        long m = 0;
        for (long e : rankElements) m = Math.max(m, e);
        return m;
    }
}
