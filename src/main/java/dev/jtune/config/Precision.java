package dev.jtune.config;

/**
 * The numeric precision of a run: the {@code training.precision} key, and, once {@link #resolve resolved} for a
 * device, the mode the trainer, the evaluator and {@code jtune bench} run in (train.Autocast takes it as it is).
 *
 * <p>One type for the setting and the mode, kept here in config/ because the experiment file names it and config/
 * must not depend on train/; train/ already depends on config/.
 * <ul>
 * <li>{@code FP32}: no autocast.</li>
 * <li>{@code BF16}: autocast, matrix products in bf16; fp32 master weights.</li>
 * <li>{@code FP16}: autocast in fp16, with dynamic loss scaling.</li>
 * <li>{@code AUTO}: a setting only, never a mode: bf16 on CUDA, fp32 on the CPU.</li>
 * </ul>
 */
public enum Precision {
    AUTO, FP32, BF16, FP16;

    /** The mode this setting means on a device: {@code AUTO} becomes bf16 on CUDA and fp32 on the CPU. */
    public Precision resolve(boolean cuda) {
        if (this != AUTO) return this;
        return cuda ? BF16 : FP32;
    }

    /** Whether matrix products run in a 16-bit type under autocast (bf16 or fp16). */
    public boolean autocast() {
        return this == BF16 || this == FP16;
    }

    /** For messages and reports: "fp32", "bf16", "fp16", "auto". */
    public String label() {
        return name().toLowerCase(java.util.Locale.ROOT);
    }
}
