package dev.jtune.train.preference;

import dev.jtune.config.Experiment;
import dev.jtune.config.Precision;
import dev.jtune.config.PreferenceSection;
import dev.jtune.config.TrainingSection;
import dev.jtune.data.PreparedData;
import dev.jtune.data.SequenceKey;
import dev.jtune.model.CausalLM;
import dev.jtune.model.ModelLoader;
import org.bytedeco.pytorch.global.torch.ScalarType;

import java.io.PrintStream;
import java.util.List;
import java.util.Locale;
import java.util.Map;

/**
 * Builds a run's preference loss from its experiment: the method's {@link PreferenceLoss}, and the reference TRL would
 * use: none (orpo, simpo, dpo's reference_free); with LoRA the policy with its adapters off; with full fine-tuning a
 * frozen copy of the base (in the dtype of the autocast); with precompute_ref_log_probs the adapters-off base, or the
 * policy itself before its first update (no copy is ever loaded), run once over every split before training.
 */
public final class PreferenceSetup {
    private PreferenceSetup() {}

    /**
     * @param model     the policy (its dropout is switched off, as TRL's {@code disable_dropout=True} does)
     * @param lora      whether the policy trains LoRA adapters on a frozen base
     * @param desirable KTO: the completions' labels by their tokens
     */
    public static PreferenceStepLoss stepLoss(Experiment exp, CausalLM model, boolean lora, Precision precision,
                                              PreparedData data, Map<SequenceKey, Boolean> desirable, long padId, PrintStream out) {
        TrainingSection t = exp.training();
        PreferenceSection p = exp.preference();
        PreferenceLoss loss = new PreferenceLoss(t.method(), p);
        model.setDropout(dev.jtune.model.ModelDropout.NONE);
        ReferenceLogps reference = ReferenceLogps.NONE;
        if (loss.needsReference()) {
            boolean precompute = Boolean.TRUE.equals(p.precomputeRefLogProbs());
            // precompute with full fine-tuning: the policy is still the base (the step is being assembled from it; a
            // resumed run restores its checkpoint later), so it computes the reference log-probabilities without a copy
            reference = lora ? ReferenceLogps.adaptersOff(model) : precompute ? ReferenceLogps.untrained(model)
                    : ReferenceLogps.frozen(ModelLoader.load(exp.model().path(), referenceDtype(precision), model.device(), model.kernels()));
            if (precompute) {
                long start = System.nanoTime();
                String what = reference.describe();
                reference = PreferenceStepLoss.precompute(reference, model,
                        List.of(data.train(), data.validation(), data.test()),
                        new int[] {t.perDeviceTrainBatchSize(), t.perDeviceEvalBatchSize(), t.perDeviceEvalBatchSize()},
                        exp.data().maxSeqLength(), padId, precision);
                out.printf(Locale.ROOT, "preference: reference log-probabilities of %d sequences precomputed with %s in %.1f s%n",
                        data.train().size() + data.validation().size() + data.test().size(), what, (System.nanoTime() - start) / 1e9);
            }
        }
        out.println("preference: " + describe(t.method(), p) + "; reference: " + reference.describe());
        return new PreferenceStepLoss(loss, reference, desirable);
    }

    /** A frozen full-fine-tuning reference is kept in the autocast's dtype (what the policy's matrix products see). */
    static ScalarType referenceDtype(Precision precision) {
        return precision == Precision.BF16 ? ScalarType.BFloat16 : precision == Precision.FP16 ? ScalarType.Half : ScalarType.Float;
    }

    /** "dpo (loss sigmoid, beta 0.1)" and the like, for the console. */
    public static String describe(TrainingSection.Method m, PreferenceSection p) {
        return switch (m) {
            case DPO -> String.format(Locale.ROOT, "dpo (loss %s, beta %s, label_smoothing %s%s%s)",
                    p.lossType().name().toLowerCase(Locale.ROOT), p.beta(), p.labelSmoothing(),
                    p.rpoAlpha() == null ? "" : ", rpo_alpha " + p.rpoAlpha(), p.referenceFree() ? ", reference-free" : "");
            case ORPO -> "orpo (lambda = beta " + p.beta() + ")";
            case SIMPO -> "simpo (beta " + p.beta() + ", gamma " + p.simpoGamma() + ", cpo_alpha " + p.cpoAlpha() + ")";
            case KTO -> "kto (beta " + p.beta() + ", desirable_weight " + p.desirableWeight() + ", undesirable_weight "
                    + p.undesirableWeight() + ")";
            case SFT -> "sft";
        };
    }
}
