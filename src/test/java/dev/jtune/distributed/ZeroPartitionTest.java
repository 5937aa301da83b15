package dev.jtune.distributed;

import org.junit.jupiter.api.Test;

import java.util.HashSet;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Random;
import java.util.Set;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

/** ZeRO stage 1's partition: every tensor owned once, PyTorch's greedy assignment, balanced, the same on every call. */
class ZeroPartitionTest {
    static Map<String, Long> sizes(long... n) {
        Map<String, Long> m = new LinkedHashMap<>();
        for (int i = 0; i < n.length; i++) m.put("t" + i, n[i]);
        return m;
    }

    /**
     * Worked by hand as ZeroRedundancyOptimizer._partition_parameters does it: sorted largest first (ties in order:
     * t1=8, t3=8, t0=5, t4=3, t2=1), each to the least-loaded rank (ties to the lowest): t1→0, t3→1, t0→2, t4→2, t2→0.
     */
    @Test
    void greedyLargestFirstAsPyTorchDoesIt() {
        ZeroPartition p = ZeroPartition.of(sizes(5, 8, 1, 8, 3), 3);
        assertEquals(Map.of("t0", 2, "t1", 0, "t2", 0, "t3", 1, "t4", 2), p.owners());
        assertEquals(List.of("t0", "t1", "t2", "t3", "t4"), List.copyOf(p.owners().keySet()), "in the optimizer's order");
        assertArrayEquals(new long[] {9, 8, 8}, p.rankElements());
        assertEquals(9, p.largestShard());
        assertEquals(List.of("t1", "t2"), p.ownedBy(0));
    }

    @Test
    void everyTensorOwnedOnceBalancedAndDeterministic() {
        Random rnd = new Random(7);
        for (int trial = 0; trial < 50; trial++) {
            int world = 1 + rnd.nextInt(8), n = 1 + rnd.nextInt(60);
            long[] s = new long[n];
            long max = 0, total = 0;
            for (int i = 0; i < n; i++) {
                s[i] = 1 + rnd.nextInt(rnd.nextBoolean() ? 100 : 100_000);
                max = Math.max(max, s[i]);
                total += s[i];
            }
            ZeroPartition p = ZeroPartition.of(sizes(s), world);
            ZeroPartition again = ZeroPartition.of(sizes(s), world);
            assertEquals(p.owners(), again.owners(), "the same partition on every rank");
            assertArrayEquals(p.rankElements(), again.rankElements());
            Set<String> seen = new HashSet<>();
            long sum = 0;
            for (int r = 0; r < world; r++) {
                for (String name : p.ownedBy(r)) assertTrue(seen.add(name), name + " owned twice");
                sum += p.rankElements()[r];
            }
            assertEquals(n, seen.size(), "every tensor owned");
            assertEquals(total, sum);
            // greedy on sorted sizes (LPT): no rank exceeds the mean by more than the largest tensor
            assertTrue(p.largestShard() <= (double) total / world + max, "balanced: " + p.largestShard() + " vs mean " + total / world);
            long min = Long.MAX_VALUE;
            for (long e : p.rankElements()) min = Math.min(min, e);
            assertTrue(p.largestShard() - min <= max, "the spread is at most the largest tensor");
        }
    }

    /** Equal tensors (a model's blocks) split evenly; one rank takes everything; a bad world size is a bug. */
    @Test
    void equalTensorsSplitEvenly() {
        long[] blocks = new long[12];
        java.util.Arrays.fill(blocks, 1000);
        ZeroPartition p = ZeroPartition.of(sizes(blocks), 4);
        assertArrayEquals(new long[] {3000, 3000, 3000, 3000}, p.rankElements());
        assertEquals(List.of("t0", "t4", "t8"), p.ownedBy(0), "round robin in order");
        assertArrayEquals(new long[] {12000}, ZeroPartition.of(sizes(blocks), 1).rankElements());
        assertThrows(IllegalArgumentException.class, () -> ZeroPartition.of(sizes(blocks), 0));
        assertThrows(IllegalArgumentException.class, () -> p.ownerOf("nope"));
    }
}
