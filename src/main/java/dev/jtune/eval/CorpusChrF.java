package dev.jtune.eval;

import java.util.HashMap;
import java.util.Map;

/**
 * Corpus chrF with sacreBLEU 2.x's defaults ({@code metrics/chrf.py}, {@code metrics/helpers.py}): character n-grams
 * of orders 1..6 over the text with all whitespace removed (Python's {@code ''.join(s.split())}; characters are code
 * points), case kept, no word n-grams, β = 2, statistics summed over the corpus, then precision and recall averaged
 * over the orders where both sides have n-grams ("effective order", eps_smoothing off). 0..100.
 */
final class CorpusChrF {
    static final int CHAR_ORDER = 6;
    static final double BETA = 2;

    /** Per order n (0-based): [hypothesis n-grams, reference n-grams, matches]. */
    private final long[] stats = new long[3 * CHAR_ORDER];

    void add(String hypothesis, String reference) {
        int[] hyp = PyText.codePoints(String.join("", PyText.split(hypothesis)));
        int[] ref = PyText.codePoints(String.join("", PyText.split(reference)));
        for (int n = 1; n <= CHAR_ORDER; n++) {
            Map<String, Integer> h = ngrams(hyp, n), r = ngrams(ref, n);
            long hypCount = 0, match = 0, refCount = 0;
            for (Map.Entry<String, Integer> e : h.entrySet()) {
                hypCount += e.getValue();
                Integer inRef = r.get(e.getKey());
                if (inRef != null) match += Math.min(e.getValue(), inRef);
            }
            for (int c : r.values()) refCount += c;
            int i = 3 * (n - 1);
            stats[i] += r.isEmpty() ? 0 : hypCount;   // sacreBLEU: "don't count hits if no reference exists for that n-gram"
            stats[i + 1] += refCount;
            stats[i + 2] += match;
        }
    }

    private static Map<String, Integer> ngrams(int[] cps, int n) {
        Map<String, Integer> out = new HashMap<>();
        for (int i = 0; i + n <= cps.length; i++) out.merge(new String(cps, i, n), 1, Integer::sum);
        return out;
    }

    /** sacreBLEU's {@code _compute_f_score} without eps smoothing. */
    double score() {
        double factor = BETA * BETA, avgPrec = 0, avgRec = 0;
        int effective = 0;
        for (int n = 0; n < CHAR_ORDER; n++) {
            long hyp = stats[3 * n], ref = stats[3 * n + 1], match = stats[3 * n + 2];
            if (hyp > 0 && ref > 0) {
                avgPrec += (double) match / hyp;
                avgRec += (double) match / ref;
                effective++;
            }
        }
        if (effective == 0) return 0;
        avgPrec /= effective;
        avgRec /= effective;
        if (avgPrec + avgRec == 0) return 0;
        return 100 * (1 + factor) * avgPrec * avgRec / (factor * avgPrec + avgRec);
    }
}
