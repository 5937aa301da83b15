package dev.jtune.eval;

import java.util.ArrayList;
import java.util.List;

/**
 * ROUGE-L F-measure as Google's rouge-score (rouge_score 0.1.2, {@code rouge_scorer._score_lcs}) computes it with
 * its default tokenizer and no stemmer ({@code tokenize.py}): lowercase, every run of characters outside
 * {@code [a-z0-9]} becomes a space, split. So accented letters are dropped: "café" is the token "caf" and "¿Qué?" is
 * "qu"; an answer in a non-Latin script has no tokens at all (and scores 0).
 */
final class RougeL {
    private RougeL() {}

    /** rouge_score's default tokenizer. */
    static List<String> tokenize(String text) {
        String lower = PyText.lower(text);
        List<String> tokens = new ArrayList<>();
        StringBuilder cur = new StringBuilder();
        for (int i = 0; i < lower.length(); i++) {
            char c = lower.charAt(i);
            if ((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9')) {
                cur.append(c);
            } else if (cur.length() > 0) {
                tokens.add(cur.toString());
                cur.setLength(0);
            }
        }
        if (cur.length() > 0) tokens.add(cur.toString());
        return tokens;
    }

    /** F-measure of the longest common subsequence of tokens; 0 when either side has no tokens. */
    static double fMeasure(String prediction, String reference) {
        List<String> target = tokenize(reference), pred = tokenize(prediction);
        if (target.isEmpty() || pred.isEmpty()) return 0;
        int lcs = lcsLength(target, pred);
        double precision = (double) lcs / pred.size(), recall = (double) lcs / target.size();
        return precision + recall > 0 ? 2 * precision * recall / (precision + recall) : 0;
    }

    static int lcsLength(List<String> a, List<String> b) {
        int[] prev = new int[b.size() + 1], cur = new int[b.size() + 1];
        for (int i = 1; i <= a.size(); i++) {
            for (int j = 1; j <= b.size(); j++) {
                cur[j] = a.get(i - 1).equals(b.get(j - 1)) ? prev[j - 1] + 1 : Math.max(prev[j], cur[j - 1]);
            }
            int[] t = prev;
            prev = cur;
            cur = t;
        }
        return prev[b.size()];
    }
}
