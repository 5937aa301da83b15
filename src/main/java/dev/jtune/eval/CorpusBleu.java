package dev.jtune.eval;

import java.util.HashMap;
import java.util.List;
import java.util.Map;

/**
 * Corpus BLEU with sacreBLEU 2.x's defaults ({@code metrics/bleu.py}): 13a tokenisation of {@code rstrip()}ed text,
 * case kept, n-grams up to 4, one reference per hypothesis, statistics summed over the corpus, brevity penalty on
 * the summed lengths, and "exp" smoothing (an order with no match gets precision 100 / (2^k · total), k counting such
 * orders). 0..100.
 */
final class CorpusBleu {
    static final int MAX_ORDER = 4;

    private long sysLen, refLen;
    private final long[] correct = new long[MAX_ORDER];
    private final long[] total = new long[MAX_ORDER];

    /** Adds one hypothesis and its reference. */
    void add(String hypothesis, String reference) {
        List<String> hyp = Tokenizer13a.tokens(PyText.rstrip(hypothesis));
        List<String> ref = Tokenizer13a.tokens(PyText.rstrip(reference));
        sysLen += hyp.size();
        refLen += ref.size();
        Map<List<String>, Integer> refNgrams = ngrams(ref);
        for (Map.Entry<List<String>, Integer> e : ngrams(hyp).entrySet()) {
            int n = e.getKey().size() - 1;
            total[n] += e.getValue();
            Integer inRef = refNgrams.get(e.getKey());
            if (inRef != null) correct[n] += Math.min(e.getValue(), inRef);
        }
    }

    private static Map<List<String>, Integer> ngrams(List<String> tokens) {
        Map<List<String>, Integer> out = new HashMap<>();
        for (int n = 1; n <= MAX_ORDER; n++) {
            for (int i = 0; i + n <= tokens.size(); i++) out.merge(tokens.subList(i, i + n), 1, Integer::sum);
        }
        return out;
    }

    /** sacreBLEU's {@code compute_bleu} with smooth_method "exp" and effective_order off. */
    double score() {
        double bp = sysLen < refLen ? (sysLen > 0 ? Math.exp(1 - (double) refLen / sysLen) : 0.0) : 1.0;
        boolean anyCorrect = false;
        for (long c : correct) anyCorrect |= c != 0;
        if (!anyCorrect) return 0.0;
        double[] precisions = new double[MAX_ORDER];
        double smooth = 1;
        for (int n = 1; n <= MAX_ORDER; n++) {
            if (total[n - 1] == 0) break;   // the remaining precisions stay 0: log 0 is taken as -9999999999
            if (correct[n - 1] == 0) {
                smooth *= 2;
                precisions[n - 1] = 100.0 / (smooth * total[n - 1]);
            } else {
                precisions[n - 1] = 100.0 * correct[n - 1] / total[n - 1];
            }
        }
        double sum = 0;
        for (double p : precisions) sum += p == 0 ? -9999999999.0 : Math.log(p);
        return bp * Math.exp(sum / MAX_ORDER);
    }
}
