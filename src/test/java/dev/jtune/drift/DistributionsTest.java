package dev.jtune.drift;

import org.junit.jupiter.api.Test;

import java.util.List;
import java.util.Map;
import java.util.Set;

import static org.junit.jupiter.api.Assertions.assertEquals;

/** The drift statistics against values worked out by hand (and scipy's definitions: JS in bits, two-sample KS D). */
class DistributionsTest {
    @Test
    void jensenShannonIsZeroForTheSameDistributionOneForDisjointAndSymmetric() {
        Map<Long, Long> p = Distributions.counts(List.of(new long[] {1, 1, 2, 3}));
        assertEquals(0.0, Distributions.jensenShannon(p, Distributions.counts(List.of(new long[] {3, 2, 1, 1, 3, 2, 1, 1}))), 1e-12);
        assertEquals(1.0, Distributions.jensenShannon(p, Distributions.counts(List.of(new long[] {7, 8}))), 1e-12);
        // P = (1/2, 1/2, 0), Q = (0, 1/2, 1/2): M = (1/4, 1/2, 1/4); JS = 1/2 [1/2 log2 2 + 0] · 2 = 0.5
        Map<Long, Long> a = Distributions.counts(List.of(new long[] {1, 2})), b = Distributions.counts(List.of(new long[] {2, 3}));
        assertEquals(0.5, Distributions.jensenShannon(a, b), 1e-12);
        assertEquals(Distributions.jensenShannon(b, a), Distributions.jensenShannon(a, b), 0);
    }

    @Test
    void unseenShareCountsRepeats() {
        assertEquals(0.75, Distributions.unseenShare(Distributions.counts(List.of(new long[] {1, 9, 9, 9})), Set.of(1L, 2L)), 1e-12);
    }

    @Test
    void kolmogorovSmirnovIsTheLargestCdfGap() {
        assertEquals(0.0, Distributions.kolmogorovSmirnov(new int[] {1, 2, 3}, new int[] {3, 2, 1}), 0);
        assertEquals(1.0, Distributions.kolmogorovSmirnov(new int[] {1, 2}, new int[] {5, 6, 7}), 0);
        // a = {1,2,3,4}, b = {3,4,5,6}: at 2 the CDFs are 0.5 and 0
        assertEquals(0.5, Distributions.kolmogorovSmirnov(new int[] {1, 2, 3, 4}, new int[] {3, 4, 5, 6}), 1e-12);
    }
}
