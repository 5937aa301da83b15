package dev.jtune.eval;

import java.util.EnumMap;
import java.util.List;
import java.util.Map;

/** Scores a list of generated answers against their references with the chosen {@link AnswerMetric}s. */
final class AnswerScores {
    private AnswerScores() {}

    /** Each chosen metric's corpus score, 0..100, in {@code metrics}' order; empty for no answers. */
    public static Map<AnswerMetric, Double> score(List<String> predictions, List<String> references, List<AnswerMetric> metrics) {
        if (predictions.size() != references.size()) {
            throw new IllegalArgumentException(predictions.size() + " predictions, " + references.size() + " references");
        }
        Map<AnswerMetric, Double> out = new EnumMap<>(AnswerMetric.class);
        if (predictions.isEmpty()) return out;
        for (AnswerMetric m : metrics) out.put(m, score(m, predictions, references));
        return out;
    }

    static double score(AnswerMetric m, List<String> predictions, List<String> references) {
        int n = predictions.size();
        switch (m) {
            case BLEU -> {
                CorpusBleu b = new CorpusBleu();
                for (int i = 0; i < n; i++) b.add(predictions.get(i), references.get(i));
                return b.score();
            }
            case CHRF -> {
                CorpusChrF c = new CorpusChrF();
                for (int i = 0; i < n; i++) c.add(predictions.get(i), references.get(i));
                return c.score();
            }
            default -> {
                double sum = 0;
                for (int i = 0; i < n; i++) sum += segment(m, predictions.get(i), references.get(i));
                return 100 * sum / n;
            }
        }
    }

    /** A per-answer score on 0..1 for the averaged metrics (exact match, token F1, ROUGE-L). */
    static double segment(AnswerMetric m, String prediction, String reference) {
        return switch (m) {
            case EXACT_MATCH -> SquadAnswers.exactMatch(prediction, reference);
            case TOKEN_F1 -> SquadAnswers.tokenF1(prediction, reference);
            case ROUGE_L -> RougeL.fMeasure(prediction, reference);
            default -> throw new IllegalArgumentException(m + " is a corpus metric");
        };
    }
}
