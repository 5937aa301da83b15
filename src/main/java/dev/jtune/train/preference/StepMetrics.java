package dev.jtune.train.preference;

import java.util.LinkedHashMap;
import java.util.Map;

/**
 * Means of named metrics over what a step (or an evaluation) saw: each value added with its weight (a pair's metrics
 * weigh 1; a micro-batch's own values, such as nll_loss or KTO's kl, weigh its pairs, or 1), divided at the end.
 * TRL's names: {@code rewards/chosen}, {@code rewards/accuracies}, {@code logps/rejected}, {@code nll_loss}, {@code kl}.
 */
public final class StepMetrics {
    private final Map<String, double[]> sums = new LinkedHashMap<>();   // name -> {weighted sum, weight}

    void add(String name, double value, double weight) {
        double[] s = sums.computeIfAbsent(name, k -> new double[2]);
        s[0] += value * weight;
        s[1] += weight;
    }

    void reset() {
        sums.clear();
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
