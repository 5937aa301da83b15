package dev.jtune.eval;

import java.util.Arrays;
import java.util.List;
import java.util.Locale;

/**
 * The scores of generated answers against reference answers, each a corpus score on 0..100 (the scale of SQuAD's
 * script and of sacreBLEU; rouge-score's 0..1 F-measure is multiplied by 100). Names are those of the
 * {@code generation_metrics} key and of metrics.jsonl ({@code eval_rouge_l}, {@code test_bleu}, ...).
 */
public enum AnswerMetric {
    /** SQuAD v1.1: share of answers equal to the reference after normalisation. */
    EXACT_MATCH("exact match"),
    /** SQuAD v1.1: mean bag-of-words F1 after normalisation. */
    TOKEN_F1("token F1"),
    /** rouge-score: mean ROUGE-L F-measure, default tokenizer, no stemming. */
    ROUGE_L("ROUGE-L"),
    /** sacreBLEU: corpus BLEU, 13a tokenisation, exp smoothing. */
    BLEU("BLEU"),
    /** sacreBLEU: corpus chrF (character 6-grams, β = 2). */
    CHRF("chrF");

    private final String label;

    AnswerMetric(String label) {
        this.label = label;
    }

    /** The key's spelling: {@code exact_match}, {@code token_f1}, {@code rouge_l}, {@code bleu}, {@code chrf}. */
    public String key() {
        return name().toLowerCase(Locale.ROOT);
    }

    /** For people: "ROUGE-L". */
    public String label() {
        return label;
    }

    public static List<String> keys() {
        return Arrays.stream(values()).map(AnswerMetric::key).toList();
    }

    /** The metric named {@code key} (as written in generation_metrics), or null. */
    public static AnswerMetric byKey(String key) {
        for (AnswerMetric m : values()) if (m.key().equals(key)) return m;
        return null;
    }
}
