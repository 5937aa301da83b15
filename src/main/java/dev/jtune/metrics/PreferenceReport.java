package dev.jtune.metrics;

import java.util.Locale;
import java.util.Map;
import java.util.SortedMap;

/**
 * The report's section for preference tuning: the reward margin (rewards/chosen − rewards/rejected) and the reward
 * accuracy (the share of pairs whose chosen completion gets the higher implicit reward) by step, training and
 * validation, TRL's {@code rewards/margins} and {@code rewards/accuracies}. A run that learns the preferences shows
 * the margins rising from 0 and the accuracy rising from about one half.
 */
public final class PreferenceReport {
    private PreferenceReport() {}

    /**
     * @param train the logged training metrics by step  @param eval the validation metrics by step
     * @return the section's HTML, or null when no preference metric was logged
     */
    public static String section(SortedMap<Long, Map<String, Double>> train, SortedMap<Long, Map<String, Double>> eval) {
        if (!has(train, "rewards/margins") && !has(eval, "rewards/margins")) return null;
        StringBuilder h = new StringBuilder("<section>\n<h2>Preferences</h2>\n");
        h.append("<p>The implicit reward margin between chosen and rejected completions, and the share of pairs whose chosen "
                + "completion is rewarded higher (TRL's rewards/margins and rewards/accuracies).</p>\n");
        h.append("<h3>Reward margin</h3>\n").append(chart(train, eval, "rewards/margins", "reward margin", v -> String.format(Locale.ROOT, "%.3g", v)));
        if (has(train, "rewards/accuracies") || has(eval, "rewards/accuracies")) {
            h.append("<h3>Reward accuracy</h3>\n").append(chart(train, eval, "rewards/accuracies", "reward accuracy",
                    v -> String.format(Locale.ROOT, "%.2f", v)));
        }
        return h.append("</section>\n").toString();
    }

    private static boolean has(SortedMap<Long, Map<String, Double>> m, String key) {
        return m.values().stream().anyMatch(v -> v.containsKey(key));
    }

    private static String chart(SortedMap<Long, Map<String, Double>> train, SortedMap<Long, Map<String, Double>> eval, String key,
                                String label, java.util.function.DoubleFunction<String> format) {
        SvgChart c = new SvgChart(920, 260, "step", label, format);
        double[][] t = series(train, key), e = series(eval, key);
        if (t[0].length > 0) c.add(new SvgChart.Series("train-" + key.replace('/', '-'), "training", HtmlReport.SMOOTH_COLOR, t[0], t[1], false, 1.8));
        if (e[0].length > 0) c.add(new SvgChart.Series("eval-" + key.replace('/', '-'), "validation", HtmlReport.EVAL_COLOR, e[0], e[1], true, 2.2));
        return c.render(label + " by step") + "\n";
    }

    private static double[][] series(SortedMap<Long, Map<String, Double>> m, String key) {
        double[] xs = m.entrySet().stream().filter(x -> x.getValue().containsKey(key)).mapToDouble(x -> x.getKey()).toArray();
        double[] ys = m.values().stream().filter(v -> v.containsKey(key)).mapToDouble(v -> v.get(key)).toArray();
        return new double[][] {xs, ys};
    }
}
