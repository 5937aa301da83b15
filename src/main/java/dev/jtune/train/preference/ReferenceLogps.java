package dev.jtune.train.preference;

import dev.jtune.data.Batch;
import dev.jtune.data.SequenceKey;
import dev.jtune.data.TensorBatch;
import dev.jtune.model.CausalLM;
import dev.jtune.model.ProjectionAdapter;
import org.bytedeco.pytorch.NoGradGuard;
import org.bytedeco.pytorch.Tensor;

import java.util.Map;

/**
 * The reference model's completion log-probabilities for a batch's rows ((B,) float32, no graph), the way TRL gets them:
 * <ul>
 * <li>{@link #adaptersOff}: LoRA, the policy itself with its adapters detached for the forward (PEFT's
 *     {@code disable_adapter()}): no second copy of the base;</li>
 * <li>{@link #frozen}: full fine-tuning, a frozen copy of the base model (TRL's {@code create_reference_model});</li>
 * <li>{@link #precomputed}: every sequence's value computed once before training
 *     ({@code precompute_ref_log_probs}: with LoRA by the adapters-off base, with full fine-tuning by
 *     {@link #untrained}, the policy before its first update), looked up by its tokens;</li>
 * <li>{@link #NONE}: {@code reference_free} (and the methods without a reference: ORPO, SimPO): zeros.</li>
 * </ul>
 * Each runs the model in evaluation mode (no dropout, no NEFTune noise), under the caller's autocast.
 */
public interface ReferenceLogps extends AutoCloseable {
    /** @return (B,) float32 summed completion log-probabilities of the rows, or null for "no reference" (zeros) */
    Tensor of(Batch b, TensorBatch tb, SequenceLogps.Rows rows);

    /** What the reference is, for the console and jtune plan. */
    String describe();

    @Override
    default void close() {}

    ReferenceLogps NONE = new ReferenceLogps() {
        @Override
        public Tensor of(Batch b, TensorBatch tb, SequenceLogps.Rows rows) {
            return null;
        }

        @Override
        public String describe() {
            return "none";
        }
    };

    /** The policy with its adapters switched off for the reference forward. */
    static ReferenceLogps adaptersOff(CausalLM policy) {
        return new ReferenceLogps() {
            @Override
            public Tensor of(Batch b, TensorBatch tb, SequenceLogps.Rows rows) {
                Map<String, ProjectionAdapter> adapters = policy.adapters();
                boolean training = policy.training();
                policy.setAdapters(Map.of());
                policy.setTraining(false);
                try {
                    return forward(policy, tb, rows);
                } finally {
                    policy.setAdapters(adapters);
                    policy.setTraining(training);
                }
            }

            @Override
            public String describe() {
                return "the base with the LoRA adapters switched off (no second copy)";
            }
        };
    }

    /**
     * The policy itself before its first update (precompute_ref_log_probs with full fine-tuning: the step is assembled
     * from the base weights, so before training the policy IS the reference and no copy is loaded). Only valid while
     * nothing has updated the policy: precompute with it before training, never use it in a step.
     */
    static ReferenceLogps untrained(CausalLM policy) {
        return new ReferenceLogps() {
            @Override
            public Tensor of(Batch b, TensorBatch tb, SequenceLogps.Rows rows) {
                boolean training = policy.training();
                policy.setTraining(false);
                try {
                    return forward(policy, tb, rows);
                } finally {
                    policy.setTraining(training);
                }
            }

            @Override
            public String describe() {
                return "the policy before its first update (the base weights; no copy loaded)";
            }
        };
    }

    /** A frozen model (full fine-tuning's reference): closed with this. */
    static ReferenceLogps frozen(CausalLM reference) {
        reference.setTraining(false);
        return new ReferenceLogps() {
            @Override
            public Tensor of(Batch b, TensorBatch tb, SequenceLogps.Rows rows) {
                return forward(reference, tb, rows);
            }

            @Override
            public String describe() {
                return "a frozen copy of the base model in " + dev.jtune.util.Tensors.hfName(reference.dtype());
            }

            @Override
            public void close() {
                reference.close();
            }
        };
    }

    /** Values computed before training, by the rows' tokens. */
    static ReferenceLogps precomputed(Map<SequenceKey, Double> values) {
        return new ReferenceLogps() {
            @Override
            public Tensor of(Batch b, TensorBatch tb, SequenceLogps.Rows rows) {
                float[] v = new float[rows.size()];
                for (int r = 0; r < v.length; r++) {
                    Double x = values.get(new SequenceKey(b.inputIds()[r], rows.length()[r]));
                    if (x == null) throw new IllegalStateException("no precomputed reference log-probability for row " + r);
                    v[r] = (float) (double) x;
                }
                return dev.jtune.util.Tensors.floats(v).to(tb.inputIds().device(), org.bytedeco.pytorch.global.torch.ScalarType.Float);
            }

            @Override
            public String describe() {
                return "precomputed reference log-probabilities (" + values.size() + " sequences)";
            }
        };
    }

    private static Tensor forward(CausalLM model, TensorBatch tb, SequenceLogps.Rows rows) {
        try (NoGradGuard ng = new NoGradGuard()) {
            Tensor hidden = model.hidden(tb.inputIds(), tb.positionIds(), tb.attentionMask(), null);   // (B, T, D)
            return SequenceLogps.sums(model, hidden, rows);
        }
    }
}
