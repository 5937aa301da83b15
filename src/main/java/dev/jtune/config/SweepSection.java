package dev.jtune.config;

import java.util.List;
import java.util.Locale;

/**
 * The {@code sweep:} section: what {@code jtune sweep} searches, read from the experiment file (the command line's
 * {@code --param}, {@code --trials}, ... override it). {@code jtune train} binds and checks it like any section and
 * otherwise ignores it, so one file serves both commands.
 *
 * @param params    {@code KEY=SPEC} entries, as {@code --param}: {@code training.learning_rate=loguniform(1e-5,1e-3)},
 *                  {@code lora.r=[4,8,16]}, {@code training.warmup_steps=int(0,20)}, {@code uniform(lo,hi)}
 * @param method    random (sample each trial) or grid (the product of the choices)
 * @param trials    how many trials; null = the whole grid (random search needs a number)
 * @param prune     none, or asha (asynchronous successive halving at evaluation steps)
 * @param metric    what ranks the trials: eval_loss or eval_perplexity; for preference methods also eval_rewards/accuracies,
 *                  eval_rewards/margins, eval_rewards/chosen, eval_rewards/rejected (maximize them)
 * @param direction minimize or maximize the metric
 * @param seed      seed of the trial choices (each trial trains with training.seed)
 * @param eta       ASHA's reduction factor: rungs at r·eta^k evaluation steps, the top 1/eta of a rung go on
 */
public record SweepSection(
        @Key("[]") List<String> params,
        @Key("random") Method method,
        @Key(value = "null", nullable = true) Integer trials,
        @Key("none") Prune prune,
        @Key("eval_loss") String metric,
        @Key("minimize") Direction direction,
        @Key("0") long seed,
        @Key("3") int eta) implements Section {

    public enum Method { RANDOM, GRID }

    public enum Prune { NONE, ASHA }

    public enum Direction { MINIMIZE, MAXIMIZE }

    /** The metrics an evaluation reports (metrics.jsonl's names). */
    public static final List<String> METRICS = List.of("eval_loss", "eval_perplexity", "eval_rewards/accuracies",
            "eval_rewards/margins", "eval_rewards/chosen", "eval_rewards/rejected");

    public SweepSection {
        params = params == null ? List.of() : List.copyOf(params);
    }

    @Override
    public void validate(Problems p) {
        for (String entry : params) {
            int eq = entry.indexOf('=');
            if (eq <= 0 || entry.substring(0, eq).strip().split("\\.", -1).length != 2) {
                p.add("params", "'" + entry + "' is not KEY=SPEC, e.g. training.learning_rate=loguniform(1e-5,1e-3)");
            }
        }
        if (trials != null && trials < 1) p.add("trials", "must be at least 1, got " + trials);
        if (metric != null && !METRICS.contains(metric.toLowerCase(Locale.ROOT))) {
            p.add("metric", "unknown metric '" + metric + "'; expected one of: " + String.join(", ", METRICS));
        }
        if (eta < 2) p.add("eta", "must be at least 2, got " + eta);
    }
}
