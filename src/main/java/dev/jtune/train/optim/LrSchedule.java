package dev.jtune.train.optim;

import dev.jtune.config.TrainingSection.Scheduler;

import java.util.Map;

/**
 * Learning rate per optimizer step, as transformers' {@code get_scheduler} builds it (optimization.py): a
 * {@code LambdaLR} whose step with 0-based index {@code s} uses {@code learning_rate · factor(s)}. The factors below
 * are transcriptions of transformers' {@code _get_*_lr_lambda} functions, in the same floating-point order.
 * Warmup (all but {@code constant}): {@code s / max(1, warmup)} while {@code s < warmup}. After it, with
 * {@code progress = (s − warmup) / max(1, total − warmup)}:
 * <ul>
 * <li>{@code linear}: {@code max(0, (total − s) / max(1, total − warmup))}</li>
 * <li>{@code cosine}: {@code max(0, ½(1 + cos(π · num_cycles · 2 · progress)))}, num_cycles 0.5</li>
 * <li>{@code cosine_with_restarts}: 0 once progress ≥ 1, else {@code max(0, ½(1 + cos(π · ((num_cycles · progress) mod 1))))}, num_cycles 1</li>
 * <li>{@code cosine_with_min_lr}: the cosine factor {@code f} mapped to {@code max(0, f(1 − r) + r)}, {@code r = min_lr_rate}
 *     or {@code min_lr / learning_rate}</li>
 * <li>{@code polynomial}: {@code ((lr − lr_end)(1 − progress)^power + lr_end) / lr}; {@code lr_end / lr} past total
 *     (lr_end 1e-7, power 1)</li>
 * <li>{@code constant}: 1 (no warmup: transformers' {@code get_constant_schedule} takes none)</li>
 * <li>{@code constant_with_warmup}: 1</li>
 * <li>{@code inverse_sqrt}: {@code 1 / sqrt((s + timescale − warmup) / timescale)}, timescale = warmup, or 10,000 without
 *     warmup</li>
 * </ul>
 */
public final class LrSchedule {
    private final Scheduler kind;
    private final double base;
    private final long warmup;
    private final long total;
    private final Map<String, Double> kwargs;

    public LrSchedule(Scheduler kind, double base, long warmup, long total) {
        this(kind, base, warmup, total, Map.of());
    }

    /** @param kwargs transformers' {@code lr_scheduler_kwargs} (validated by TrainingSection) */
    public LrSchedule(Scheduler kind, double base, long warmup, long total, Map<String, Double> kwargs) {
        this.kind = kind;
        this.base = base;
        this.warmup = kind == Scheduler.CONSTANT ? 0 : warmup;
        this.total = total;
        this.kwargs = Map.copyOf(kwargs);
    }

    /** transformers' {@code TrainingArguments.get_warmup_steps}: warmup_steps if > 0, else ceil(warmup_ratio · total). */
    public static long warmupSteps(int warmupSteps, double warmupRatio, long totalSteps) {
        return warmupSteps > 0 ? warmupSteps : (long) Math.ceil(warmupRatio * totalSteps);
    }

    /** The learning rate of the optimizer step with 0-based index {@code step}. */
    public double at(long step) {
        return base * factor(step);
    }

    /** The multiplier of the learning rate at {@code step} (transformers' lr_lambda). */
    public double factor(long step) {
        if (kind == Scheduler.CONSTANT) return 1.0;
        if (step < warmup) {
            // constant_with_warmup divides by max(1.0, warmup), the others by max(1, warmup): the same double
            return (double) step / (double) Math.max(1, warmup);
        }
        double progress = (double) (step - warmup) / (double) Math.max(1, total - warmup);
        switch (kind) {
            case CONSTANT_WITH_WARMUP:
                return 1.0;
            case LINEAR:
                return Math.max(0.0, (double) (total - step) / (double) Math.max(1, total - warmup));
            case COSINE:
                return Math.max(0.0, 0.5 * (1.0 + Math.cos(Math.PI * arg("num_cycles", 0.5) * 2.0 * progress)));
            case COSINE_WITH_RESTARTS: {
                if (progress >= 1.0) return 0.0;
                return Math.max(0.0, 0.5 * (1.0 + Math.cos(Math.PI * ((arg("num_cycles", 1.0) * progress) % 1.0))));
            }
            case COSINE_WITH_MIN_LR: {
                double rate = kwargs.containsKey("min_lr") ? kwargs.get("min_lr") / base : arg("min_lr_rate", 0.0);
                double f = 0.5 * (1.0 + Math.cos(Math.PI * arg("num_cycles", 0.5) * 2.0 * progress));
                f = f * (1 - rate) + rate;
                return Math.max(0, f);
            }
            case POLYNOMIAL: {
                double lrEnd = arg("lr_end", 1e-7), power = arg("power", 1.0);
                if (step > total) return lrEnd / base;
                double lrRange = base - lrEnd;
                long decaySteps = total - warmup;
                if (decaySteps <= 0) return lrEnd / base;   // transformers divides by zero here
                double pctRemaining = 1 - (double) (step - warmup) / decaySteps;
                double decay = lrRange * Math.pow(pctRemaining, power) + lrEnd;
                return decay / base;
            }
            case INVERSE_SQRT: {
                double timescale = kwargs.containsKey("timescale") ? kwargs.get("timescale") : (warmup > 0 ? warmup : 10_000);
                double shift = timescale - warmup;
                return 1.0 / Math.sqrt((step + shift) / timescale);
            }
            default:
                throw new IllegalStateException(kind.toString());
        }
    }

    private double arg(String name, double dflt) {
        Double v = kwargs.get(name);
        return v == null ? dflt : v;
    }

    /** Warmup steps; 0 for {@code constant}, which has none. */
    public long warmup() {
        return warmup;
    }

    public long total() {
        return total;
    }
}
