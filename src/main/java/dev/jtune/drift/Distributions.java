package dev.jtune.drift;

import java.util.Arrays;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.Set;

/** The statistics drift compares samples with: token distributions and length distributions. */
public final class Distributions {
    private Distributions() {}

    /** Token id -> count over every sequence. */
    public static Map<Long, Long> counts(List<long[]> sequences) {
        Map<Long, Long> c = new HashMap<>();
        for (long[] s : sequences) for (long id : s) c.merge(id, 1L, Long::sum);
        return c;
    }

    /**
     * Jensen-Shannon divergence of two unigram distributions, in bits (0 = identical, 1 = disjoint):
     * JS(P, Q) = ½ KL(P‖M) + ½ KL(Q‖M) with M = ½ (P + Q).
     */
    public static double jensenShannon(Map<Long, Long> p, Map<Long, Long> q) {
        double np = total(p), nq = total(q);
        if (np == 0 || nq == 0) return Double.NaN;
        double js = 0;
        Set<Long> keys = new java.util.HashSet<>(p.keySet());
        keys.addAll(q.keySet());
        for (Long k : keys) {
            double a = p.getOrDefault(k, 0L) / np, b = q.getOrDefault(k, 0L) / nq, m = (a + b) / 2;
            if (a > 0) js += 0.5 * a * log2(a / m);
            if (b > 0) js += 0.5 * b * log2(b / m);
        }
        return Math.max(0, js);
    }

    /** Share of the tokens in {@code sample} (with repeats) whose id is not among {@code known}. */
    public static double unseenShare(Map<Long, Long> sample, Set<Long> known) {
        double n = total(sample), unseen = 0;
        for (Map.Entry<Long, Long> e : sample.entrySet()) if (!known.contains(e.getKey())) unseen += e.getValue();
        return n == 0 ? Double.NaN : unseen / n;
    }

    /** Two-sample Kolmogorov-Smirnov statistic: the largest gap between the two empirical CDFs, in [0, 1]. */
    public static double kolmogorovSmirnov(int[] a, int[] b) {
        if (a.length == 0 || b.length == 0) return Double.NaN;
        int[] x = a.clone(), y = b.clone();
        Arrays.sort(x);
        Arrays.sort(y);
        int i = 0, j = 0;
        double d = 0;
        while (i < x.length && j < y.length) {
            int v = Math.min(x[i], y[j]);
            while (i < x.length && x[i] == v) i++;
            while (j < y.length && y[j] == v) j++;
            d = Math.max(d, Math.abs((double) i / x.length - (double) j / y.length));
        }
        return d;
    }

    public static double mean(int[] v) {
        return v.length == 0 ? Double.NaN : Arrays.stream(v).average().orElse(Double.NaN);
    }

    private static double total(Map<Long, Long> c) {
        double n = 0;
        for (long v : c.values()) n += v;
        return n;
    }

    private static double log2(double x) {
        return Math.log(x) / Math.log(2);
    }
}
