package dev.jtune.sweep;

import dev.jtune.api.TrainerCallback;
import dev.jtune.api.TrainerControl;
import dev.jtune.api.TrainerState;

import java.util.ArrayList;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.TreeMap;

/**
 * Asynchronous successive halving (ASHA, Li et al. 2018), as Optuna's {@code SuccessiveHalvingPruner} applies it to
 * trials that report at evaluation steps. Rung k is the evaluation at step {@code r·eta^k}, r being a trial's first
 * evaluation step. A trial reaching a rung goes on when its metric is among the best {@code max(1, n / eta)} of the
 * n values recorded at that rung (the earlier trials' and its own); otherwise it is pruned there.
 *
 * <p>Trials run one after another, so the values of a rung are those of the finished trials; they are read back from
 * each trial's metrics.jsonl ({@link #record}), which makes a resumed sweep decide exactly as an uninterrupted one.
 */
final class AshaPruner {
    private final int eta;
    private final boolean minimize;
    private final String metric;
    /** rung index → the finished trials' values there. */
    private final Map<Integer, List<Double>> rungs = new TreeMap<>();

    public AshaPruner(int eta, boolean minimize, String metric) {
        this.eta = eta;
        this.minimize = minimize;
        this.metric = metric;
    }

    /** The rung index of {@code step} for a trial whose first evaluation was at {@code first}, or -1 when it is no rung. */
    int rungOf(long step, long first) {
        if (first <= 0 || step % first != 0) return -1;
        long q = step / first;
        int k = 0;
        while (q % eta == 0) {
            q /= eta;
            k++;
        }
        return q == 1 ? k : -1;
    }

    /** Adds a finished trial's evaluations (step → metric value, in step order) to the rungs. */
    public void record(Map<Long, Double> curve) {
        if (curve.isEmpty()) return;
        long first = curve.keySet().iterator().next();
        curve.forEach((step, v) -> {
            int k = rungOf(step, first);
            if (k >= 0 && Double.isFinite(v)) rungs.computeIfAbsent(k, x -> new ArrayList<>()).add(v);
        });
    }

    /**
     * The decision at one evaluation: null to go on, or the reason to stop.
     *
     * @param first the trial's first evaluation step (r)
     */
    String decide(long step, long first, double value) {
        int k = rungOf(step, first);
        if (k < 0) return null;
        if (!Double.isFinite(value)) return String.format(Locale.ROOT, "pruned by ASHA at step %d (%s is not finite)", step, metric);
        List<Double> competing = new ArrayList<>(rungs.getOrDefault(k, List.of()));
        competing.add(value);
        competing.sort(minimize ? null : java.util.Comparator.reverseOrder());
        int keep = Math.max(1, competing.size() / eta);
        double cut = competing.get(keep - 1);
        boolean goesOn = minimize ? value <= cut : value >= cut;
        if (goesOn) return null;
        return String.format(Locale.ROOT, "pruned by ASHA at step %d (rung %d: %s %.4f is not among the best %d of %d trials there; the cut is %.4f)",
                step, k, metric, value, keep, competing.size(), cut);
    }

    /**
     * The pruner of one trial: a callback that stops the trial at an evaluation that does not make its rung's cut.
     *
     * @param firstEval the trial's first evaluation step when it is already known (a resumed trial), else 0
     */
    public TrainerCallback callback(long firstEval) {
        return new TrainerCallback() {
            long first = firstEval;

            @Override
            public void onEvaluate(TrainerState state, Map<String, Double> metrics, TrainerControl control) {
                long step = state.globalStep();
                if (first <= 0) first = step;
                Double v = metrics.get(metric);
                String stop = decide(step, first, v == null ? Double.NaN : v);
                if (stop != null) control.stopTraining(stop);
            }
        };
    }
}
