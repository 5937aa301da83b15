package dev.jtune.metrics;

import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Locale;
import java.util.Map;

/**
 * Generated answers in the end-of-run report: each metric before (the base model) and after (the fine-tuned model),
 * on the test prompts and on the validation subset, and sample prompts with the reference, base and fine-tuned
 * answers side by side. Scores are 0..100; a missing score (no test split, a resumed run that did not see the base
 * model) is absent from its map.
 *
 * @param metrics   metric key to its label, in the configured order ({@code rouge_l} to "ROUGE-L")
 * @param baseTest  the base model on the test prompts
 * @param finalTest the final model on the test prompts
 * @param baseEval  the base model on the validation subset
 * @param lastEval  the model at the last evaluation on the validation subset
 * @param samples   prompts with the answers of both models
 * @param notes     lines about the generation (how many prompts, time, tokens/s)
 */
public record AnswerReport(Map<String, String> metrics, Map<String, Double> baseTest, Map<String, Double> finalTest,
                           Map<String, Double> baseEval, Map<String, Double> lastEval, List<Sample> samples, List<String> notes) {

    /** One prompt: the question, the reference answer, what the base model said and what the fine-tuned one said. */
    public record Sample(String question, String reference, String base, String tuned) {}

    public AnswerReport {
        metrics = new LinkedHashMap<>(metrics);
        baseTest = Map.copyOf(baseTest);
        finalTest = Map.copyOf(finalTest);
        baseEval = Map.copyOf(baseEval);
        lastEval = Map.copyOf(lastEval);
        samples = List.copyOf(samples);
        notes = List.copyOf(notes);
    }

    /** Rows of the before/after table: metric label, base, fine-tuned, change; for the test prompts, else validation. */
    List<String[]> rows(boolean test) {
        Map<String, Double> before = test ? baseTest : baseEval, after = test ? finalTest : lastEval;
        List<String[]> out = new ArrayList<>();
        for (Map.Entry<String, String> m : metrics.entrySet()) {
            Double b = before.get(m.getKey()), a = after.get(m.getKey());
            if (b == null && a == null) continue;
            out.add(new String[] {m.getValue(), fmt(b), fmt(a), b != null && a != null ? String.format(Locale.ROOT, "%+.1f", a - b) : "\u2014"});
        }
        return out;
    }

    private static String fmt(Double v) {
        return v == null ? "\u2014" : String.format(Locale.ROOT, "%.1f", v);
    }

    /** The tables as plain text, for the console (and the README). */
    public String text(int maxSamples, int width) {
        StringBuilder b = new StringBuilder();
        for (boolean test : new boolean[] {true, false}) {
            List<String[]> rows = rows(test);
            if (rows.isEmpty()) continue;
            b.append(test ? "generated answers, test prompts (0-100):" : "generated answers, validation subset (0-100):").append('\n');
            b.append(String.format(Locale.ROOT, "  %-12s %8s %11s %8s%n", "metric", "base", "fine-tuned", "change"));
            for (String[] r : rows) b.append(String.format(Locale.ROOT, "  %-12s %8s %11s %8s%n", r[0], r[1], r[2], r[3]));
        }
        for (String n : notes) b.append(n).append('\n');
        int k = 0;
        for (Sample s : samples) {
            if (k++ >= maxSamples) break;
            b.append("  Q: ").append(cut(s.question(), width)).append('\n')
                    .append("     reference:  ").append(cut(s.reference(), width)).append('\n')
                    .append("     base:       ").append(cut(s.base(), width)).append('\n')
                    .append("     fine-tuned: ").append(cut(s.tuned(), width)).append('\n');
        }
        return b.toString();
    }

    private static String cut(String s, int width) {
        if (s == null) return "\u2014";
        String one = s.replaceAll("\\s+", " ").strip();
        return one.length() <= width ? one : one.substring(0, width - 1) + "\u2026";
    }
}
