package dev.jtune.train.step;

import dev.jtune.data.Batch;
import dev.jtune.data.TensorBatch;
import dev.jtune.model.CausalLM;
import org.bytedeco.pytorch.Tensor;

import java.util.Map;

/**
 * What an optimizer step minimises, chosen by {@code training.method}: the training step ({@link TrainStep#step}) sums
 * {@link #sum} over its micro-batches and divides by the {@link #units} of the whole (global) effective batch, so
 * gradient accumulation stays exact whatever the loss. Supervised fine-tuning ({@link #causalLm}) sums token NLLs over
 * target tokens; the preference methods (dev.jtune.train.preference) sum per-pair (or per-example) losses over pairs.
 */
public interface StepLoss {
    /** What a micro-batch's loss is averaged over: its target tokens, or its pairs (KTO: its examples). */
    long units(Batch b);

    /**
     * The micro-batch's loss summed over its units: a 0-d float32 tensor with a graph back to the trained weights.
     *
     * @param hidden the final (normed) hidden states (B, T, D), computed under autocast (this runs under it too)
     */
    Tensor sum(CausalLM model, Tensor hidden, Batch b, TensorBatch tb);

    /** Before a step's first micro-batch (preference losses reset their per-step metrics). */
    default void startStep() {}

    /**
     * Data parallel, once when the step is assembled: {@code sum} adds a vector up over the ranks, for a loss that needs
     * a global quantity inside the step (KTO's KL estimate). Every rank's training micro-batches call it alike.
     */
    default void joinRanks(java.util.function.UnaryOperator<double[]> sum) {}

    /**
     * Data parallel, after every rank's step: makes {@link #stepMetrics} those of the global batch. {@code sum} is an
     * all-reduce (sum) over the ranks, which every rank calls once per step with a vector of the same length.
     */
    default void sumMetricsOverRanks(java.util.function.UnaryOperator<double[]> sum) {}

    /** The named metrics of the last step (TRL's names: {@code rewards/chosen}, ...); empty for supervised fine-tuning. */
    default Map<String, Double> stepMetrics() {
        return Map.of();
    }

    /**
     * Makes a run's loss for the model it trains ({@link TrainStep#assemble} calls it once): a preference method's
     * reference may be that model with its LoRA adapters off.
     */
    @FunctionalInterface
    interface Factory {
        /** @param lora whether {@code model} trains LoRA adapters on a frozen base */
        StepLoss create(CausalLM model, boolean lora);
    }

    /** Next-token cross-entropy over the target tokens ({@link CausalLmLoss}), with label smoothing epsilon. */
    static StepLoss causalLm(double labelSmoothing) {
        return new StepLoss() {
            @Override
            public long units(Batch b) {
                return b.targetTokens();
            }

            @Override
            public Tensor sum(CausalLM model, Tensor hidden, Batch b, TensorBatch tb) {
                return CausalLmLoss.sumAtTargets(model, hidden, tb.labels(), labelSmoothing);
            }
        };
    }
}
