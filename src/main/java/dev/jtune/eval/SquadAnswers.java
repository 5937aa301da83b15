package dev.jtune.eval;

import java.util.HashMap;
import java.util.List;
import java.util.Map;

/**
 * Exact match and token F1 as the SQuAD v1.1 evaluation script ({@code evaluate-v1.1.py}) computes them, after its
 * {@code normalize_answer}: lowercase, drop ASCII punctuation ({@code string.punctuation}: so "¿", "¡", "«" stay),
 * drop the words "a", "an", "the" ({@code \b(a|an|the)\b}, Unicode word boundaries), collapse whitespace.
 */
final class SquadAnswers {
    private SquadAnswers() {}

    private static final String PUNCTUATION = "!\"#$%&'()*+,-./:;<=>?@[\\]^_`{|}~";

    /** SQuAD's {@code normalize_answer}. */
    static String normalize(String s) {
        String lower = PyText.lower(s);
        StringBuilder noPunct = new StringBuilder(lower.length());
        lower.codePoints().filter(cp -> cp > 127 || PUNCTUATION.indexOf(cp) < 0).forEach(noPunct::appendCodePoint);
        return String.join(" ", PyText.split(removeArticles(noPunct.toString())));
    }

    /** {@code re.sub(r'\b(a|an|the)\b', ' ', text)}: each article between word boundaries becomes a space. */
    static String removeArticles(String text) {
        int[] cps = PyText.codePoints(text);
        StringBuilder out = new StringBuilder(text.length());
        int i = 0;
        while (i < cps.length) {
            int len = articleAt(cps, i);
            if (len > 0) {
                out.append(' ');
                i += len;
            } else {
                out.appendCodePoint(cps[i++]);
            }
        }
        return out.toString();
    }

    /** The length of an article starting at {@code i} with a word boundary on both sides, or 0. */
    private static int articleAt(int[] cps, int i) {
        if (i > 0 && PyText.isWord(cps[i - 1])) return 0;   // \b before: the previous character is not a word char
        // the alternation tries "a" first, then "an", then "the": "an" matches only where "a" fails the \b after it
        for (String art : new String[] {"a", "an", "the"}) {
            int n = art.length();
            if (i + n > cps.length) continue;
            boolean same = true;
            for (int k = 0; k < n; k++) same &= cps[i + k] == art.charAt(k);
            if (same && (i + n == cps.length || !PyText.isWord(cps[i + n]))) return n;
        }
        return 0;
    }

    /** 1 when the normalised answers are equal, else 0. */
    static double exactMatch(String prediction, String reference) {
        return normalize(prediction).equals(normalize(reference)) ? 1 : 0;
    }

    /** SQuAD's {@code f1_score}: F1 of the bag-of-words overlap of the normalised answers (0 when nothing is shared). */
    static double tokenF1(String prediction, String reference) {
        List<String> p = PyText.split(normalize(prediction));
        List<String> r = PyText.split(normalize(reference));
        Map<String, Integer> refCounts = new HashMap<>();
        for (String w : r) refCounts.merge(w, 1, Integer::sum);
        int same = 0;
        for (String w : p) {
            Integer c = refCounts.get(w);
            if (c != null && c > 0) {
                same++;
                refCounts.put(w, c - 1);
            }
        }
        if (same == 0) return 0;
        double precision = (double) same / p.size(), recall = (double) same / r.size();
        return 2 * precision * recall / (precision + recall);
    }
}
