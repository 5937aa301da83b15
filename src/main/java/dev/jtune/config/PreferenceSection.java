package dev.jtune.config;

import java.util.List;
import java.util.Locale;
import java.util.Map;

/**
 * The {@code preference:} section: the settings of preference tuning ({@code training.method} dpo, orpo, kto or simpo),
 * with TRL's names and defaults (DPOConfig, ORPOConfig, KTOConfig, CPOConfig). Each method reads only its own keys
 * ({@link #keysOf}); a key another method reads is refused ({@link CrossChecks}). Keys left out are null here and take
 * TRL's default of the chosen method in {@link #resolvedFor}, which the loader applies, so the resolved file shows the
 * values that ran.
 *
 * @param beta                     DPO/KTO/SimPO: the temperature of the implicit reward; ORPO: λ, the weight of the odds-ratio term
 * @param lossType                 DPO: sigmoid (default), ipo, hinge or robust
 * @param labelSmoothing           DPO (sigmoid, robust) and SimPO: the conservative-DPO label noise, in [0, 0.5)
 * @param referenceFree            DPO: no reference model (its log-probabilities are taken as 0)
 * @param precomputeRefLogProbs    DPO/KTO: the reference log-probabilities of every example computed once before training
 * @param rpoAlpha                 DPO: weight of the NLL of the chosen completions added to the loss (RPO); null = off
 * @param maxPromptLength          tokens of the prompt kept (its last ones, as TRL keeps them); every method
 * @param truncationMode           which end of a sequence longer than data.max_seq_length (TRL's max_length) is kept:
 *                                 keep_end (TRL's default: the prompt's start goes first) or keep_start; every method
 * @param desirableWeight          KTO: weight of the losses of desirable examples
 * @param undesirableWeight        KTO: weight of the losses of undesirable examples
 * @param simpoGamma               SimPO: the target reward margin γ
 * @param cpoAlpha                 SimPO: weight of the NLL of the chosen completions (TRL's CPO term; 0 = pure SimPO)
 * @param chosenColumn             preference data: the preferred completion's column
 * @param rejectedColumn           preference data: the dispreferred completion's column
 * @param completionColumn         KTO data: the completion's column
 * @param labelColumn              KTO data: the column saying whether the completion is desirable (true/false, 1/0)
 */
public record PreferenceSection(
        @Key(value = "null", nullable = true) Double beta,
        @Key(value = "null", nullable = true) LossType lossType,
        @Key(value = "null", nullable = true) Double labelSmoothing,
        @Key(value = "null", nullable = true) Boolean referenceFree,
        @Key(value = "null", nullable = true) Boolean precomputeRefLogProbs,
        @Key(value = "null", nullable = true) Double rpoAlpha,
        @Key(value = "null", nullable = true) Integer maxPromptLength,
        @Key(value = "null", nullable = true) TruncationMode truncationMode,
        @Key(value = "null", nullable = true) Double desirableWeight,
        @Key(value = "null", nullable = true) Double undesirableWeight,
        @Key(value = "null", nullable = true) Double simpoGamma,
        @Key(value = "null", nullable = true) Double cpoAlpha,
        @Key("chosen") String chosenColumn,
        @Key("rejected") String rejectedColumn,
        @Key("completion") String completionColumn,
        @Key("label") String labelColumn) implements Section {

    /** DPO's loss functions (TRL's {@code loss_type}). */
    public enum LossType { SIGMOID, IPO, HINGE, ROBUST }

    /**
     * TRL's {@code truncation_mode}: which tokens of a sequence (prompt then completion) longer than max_length are kept:
     * the last ones ({@code keep_end}, the default: the prompt's start is dropped, then the completion's) or the first
     * ones ({@code keep_start}: the completion's end is dropped; a prompt that fills max_length leaves no completion).
     */
    public enum TruncationMode { KEEP_END, KEEP_START }

    /** The method-specific keys each method reads (their TRL defaults: {@link #resolvedFor}). */
    private static final Map<TrainingSection.Method, List<String>> KEYS = Map.of(
            TrainingSection.Method.SFT, List.of(),
            TrainingSection.Method.DPO, List.of("beta", "loss_type", "label_smoothing", "reference_free", "precompute_ref_log_probs",
                    "rpo_alpha", "max_prompt_length", "truncation_mode"),
            TrainingSection.Method.ORPO, List.of("beta", "max_prompt_length", "truncation_mode"),
            TrainingSection.Method.KTO, List.of("beta", "desirable_weight", "undesirable_weight", "precompute_ref_log_probs",
                    "max_prompt_length", "truncation_mode"),
            TrainingSection.Method.SIMPO, List.of("beta", "simpo_gamma", "cpo_alpha", "label_smoothing", "max_prompt_length", "truncation_mode"));

    /** The method-specific keys {@code method} reads (the column keys are read by the data formats, not listed here). */
    public static List<String> keysOf(TrainingSection.Method method) {
        return KEYS.get(method);
    }

    /** The method-specific keys set in this section (non-null), in order. */
    List<String> setKeys() {
        List<String> out = new java.util.ArrayList<>();
        Object[] values = {beta, lossType, labelSmoothing, referenceFree, precomputeRefLogProbs, rpoAlpha, maxPromptLength,
                truncationMode, desirableWeight, undesirableWeight, simpoGamma, cpoAlpha};
        List<String> names = SectionBinder.keys(PreferenceSection.class);
        for (int i = 0; i < values.length; i++) if (values[i] != null) out.add(names.get(i));
        return out;
    }

    /**
     * This section with every key of {@code method} that was left out at its TRL default (SimPO: CPOConfig's, beta 0.1,
     * simpo_gamma 0.5, cpo_alpha 1.0; TRL documents cpo_alpha 0 as pure SimPO, the SimPO paper uses beta 2 to 10).
     */
    public PreferenceSection resolvedFor(TrainingSection.Method method) {
        List<String> d = KEYS.get(method);
        return new PreferenceSection(
                pick(beta, d, "beta", (Double) 0.1), pick(lossType, d, "loss_type", LossType.SIGMOID),
                pick(labelSmoothing, d, "label_smoothing", (Double) 0.0), pick(referenceFree, d, "reference_free", Boolean.FALSE),
                pick(precomputeRefLogProbs, d, "precompute_ref_log_probs", Boolean.FALSE), rpoAlpha,
                pick(maxPromptLength, d, "max_prompt_length", (Integer) 512),
                pick(truncationMode, d, "truncation_mode", TruncationMode.KEEP_END), pick(desirableWeight, d, "desirable_weight", (Double) 1.0),
                pick(undesirableWeight, d, "undesirable_weight", (Double) 1.0), pick(simpoGamma, d, "simpo_gamma", (Double) 0.5),
                pick(cpoAlpha, d, "cpo_alpha", (Double) 1.0), chosenColumn, rejectedColumn, completionColumn, labelColumn);
    }

    /** The value set, else the method's default when the method reads the key, else null. */
    private static <T> T pick(T value, List<String> methodKeys, String key, T fallback) {
        return value != null || !methodKeys.contains(key) ? value : fallback;
    }

    /** {@code beta}, or the method's default when unresolved. */
    public double betaOr(double fallback) {
        return beta == null ? fallback : beta;
    }

    @Override
    public void validate(Problems p) {
        if (beta != null) p.check(beta > 0 && Double.isFinite(beta), "beta", "must be > 0 (TRL's default is 0.1), got " + beta);
        if (labelSmoothing != null) {
            p.check(labelSmoothing >= 0 && labelSmoothing < 0.5, "label_smoothing", "must be in [0, 0.5) (0 = off), got " + labelSmoothing);
        }
        if (rpoAlpha != null) p.check(rpoAlpha >= 0, "rpo_alpha", "must not be negative (null = off), got " + rpoAlpha);
        if (maxPromptLength != null) p.check(maxPromptLength >= 1, "max_prompt_length", "must be at least 1, got " + maxPromptLength);
        if (desirableWeight != null) p.check(desirableWeight > 0, "desirable_weight", "must be > 0, got " + desirableWeight);
        if (undesirableWeight != null) p.check(undesirableWeight > 0, "undesirable_weight", "must be > 0, got " + undesirableWeight);
        if (simpoGamma != null) p.check(simpoGamma >= 0, "simpo_gamma", "must not be negative, got " + simpoGamma);
        if (cpoAlpha != null) p.check(cpoAlpha >= 0, "cpo_alpha", "must not be negative (0 = pure SimPO), got " + cpoAlpha);
        for (String k : List.of("chosen_column", "rejected_column", "completion_column", "label_column")) {
            String v = switch (k) {
                case "chosen_column" -> chosenColumn;
                case "rejected_column" -> rejectedColumn;
                case "completion_column" -> completionColumn;
                default -> labelColumn;
            };
            if (v != null && p.ok(k)) p.check(!v.isBlank(), k, "expected a column name, got an empty string");
        }
        if (lossType == LossType.HINGE && labelSmoothing != null && labelSmoothing > 0) {
            p.add("label_smoothing", "the hinge loss has no label smoothing (TRL ignores it); set label_smoothing: 0 or loss_type: sigmoid or robust");
        }
        if (lossType == LossType.IPO && labelSmoothing != null && labelSmoothing > 0) {
            p.add("label_smoothing", "the ipo loss has no label smoothing (TRL ignores it); set label_smoothing: 0 or loss_type: sigmoid or robust");
        }
        if (Boolean.TRUE.equals(referenceFree) && Boolean.TRUE.equals(precomputeRefLogProbs)) {
            p.add("precompute_ref_log_probs", "reference_free: true uses no reference model, so there is nothing to precompute");
        }
    }

    /** The method's name as written in YAML. */
    static String name(TrainingSection.Method m) {
        return m.name().toLowerCase(Locale.ROOT);
    }
}
