package dev.jtune.train.preference;

import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.function.UnaryOperator;

/**
 * Means of named metrics over what a step (or an evaluation) saw: each value added with its weight (a pair's metrics
 * weigh 1; a micro-batch's own values, such as nll_loss or KTO's kl, weigh its pairs, or 1), divided at the end.
 * TRL's names: {@code rewards/chosen}, {@code rewards/accuracies}, {@code logps/rejected}, {@code nll_loss}, {@code kl}.
 * In a data-parallel run the ranks' sums are added up before dividing ({@link #sumOverRanks}), so the logged means are
 * those of the global batch, as TRL's {@code gather_for_metrics} makes them.
 */
public final class StepMetrics {
    /** Every name a preference loss logs, in a fixed order: the layout of the vector the ranks sum. */
    static final List<String> NAMES = List.of("rewards/chosen", "rewards/rejected", "rewards/accuracies", "rewards/margins",
            "logps/chosen", "logps/rejected", "nll_loss", "log_odds_ratio", "log_odds_chosen", "kl");

    private final Map<String, double[]> sums = new LinkedHashMap<>();   // name -> {weighted sum, weight}

    void add(String name, double value, double weight) {
        if (!NAMES.contains(name)) throw new IllegalArgumentException("not a known preference metric: " + name);
        double[] s = sums.computeIfAbsent(name, k -> new double[2]);
        s[0] += value * weight;
        s[1] += weight;
    }

    void reset() {
        sums.clear();
    }

    /**
     * Replaces this rank's sums by those of every rank: {@code sum} adds a vector up over the ranks (an all-reduce that
     * every rank calls with the same layout, {@link #NAMES}: a KTO rank whose batch held no undesirable example sends
     * zeros for rewards/rejected).
     */
    void sumOverRanks(UnaryOperator<double[]> sum) {
        double[] v = new double[2 * NAMES.size()];
        for (int i = 0; i < NAMES.size(); i++) {
            double[] s = sums.get(NAMES.get(i));
            if (s != null) {
                v[2 * i] = s[0];
                v[2 * i + 1] = s[1];
            }
        }
        double[] all = sum.apply(v);
        sums.clear();
        for (int i = 0; i < NAMES.size(); i++) if (all[2 * i + 1] > 0) sums.put(NAMES.get(i), new double[] {all[2 * i], all[2 * i + 1]});
    }

    /** The means, in the order first added (KTO's rewards/margins: chosen minus rejected, as TRL logs it). */
    public Map<String, Double> means() {
        Map<String, Double> out = new LinkedHashMap<>();
        sums.forEach((k, s) -> out.put(k, s[1] == 0 ? Double.NaN : s[0] / s[1]));
        if (!out.containsKey("rewards/margins") && out.containsKey("rewards/chosen") && out.containsKey("rewards/rejected")) {
            out.put("rewards/margins", out.get("rewards/chosen") - out.get("rewards/rejected"));
        }
        return out;
    }
}
