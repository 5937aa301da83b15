package dev.jtune.train;

import java.util.Map;

/**
 * Told of every validation evaluation during training, and may stop the run there: how {@code jtune sweep} prunes a
 * trial (ASHA). A stop ends the run as early stopping does (the final model, the test split, the report), with the
 * returned reason as the run's stop reason.
 */
@FunctionalInterface
public interface EvalListener {
    /** Never stops. */
    EvalListener NONE = (step, metrics) -> null;

    /**
     * @param step    the optimizer step just evaluated
     * @param metrics metrics.jsonl's names: {@code eval_loss}, {@code eval_perplexity}
     * @return null to go on, or why the run stops here (e.g. "pruned by ASHA at step 40 (...)")
     */
    String stopAfter(long step, Map<String, Double> metrics);
}
