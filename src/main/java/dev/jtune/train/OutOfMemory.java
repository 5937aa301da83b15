package dev.jtune.train;

import dev.jtune.config.Precision;
import dev.jtune.config.Experiment;
import dev.jtune.util.UserError;
import org.bytedeco.pytorch.Device;

import java.util.Locale;

/**
 * Out of memory, on the GPU (CUDA's caching allocator) or the host (LibTorch's CPU allocator, or the JVM),
 * turned into a message with the sizes involved and what to change, instead of a stack trace.
 */
final class OutOfMemory {
    private OutOfMemory() {}

    static boolean is(Throwable e) {
        for (Throwable c = e; c != null; c = c.getCause()) {
            if (c instanceof OutOfMemoryError) return true;
            String m = c.getMessage();
            if (m != null) {
                String l = m.toLowerCase(Locale.ROOT);
                if (l.contains("out of memory") || l.contains("not enough memory") || l.contains("can't allocate memory")
                        || l.contains("tried to allocate") || l.contains("cudaerrormemoryallocation")) return true;
            }
            if (c.getCause() == c) break;
        }
        return false;
    }

    static UserError explain(Throwable e, Experiment exp, long parameters, Precision precision, Device device) {
        return explain(e, exp, parameters, precision, device, "training");
    }

    /**
     * @param during what ran out of memory: "training", "the final evaluation" or "the test evaluation" (evaluation
     *               holds no gradients or optimizer state; its batch is per_device_eval_batch_size rows)
     */
    static UserError explain(Throwable e, Experiment exp, long parameters, Precision precision, Device device, String during) {
        String what = e.getMessage() == null ? e.toString() : e.getMessage().lines().findFirst().orElse("");
        var t = exp.training();
        StringBuilder s = new StringBuilder();
        boolean evaluating = !during.equals("training");
        s.append(String.format(Locale.ROOT, "out of %s memory %s (%s)%n", device.is_cuda() ? "GPU" : "host",
                evaluating ? "in " + during : "while training", what));
        s.append(String.format(Locale.ROOT, "  the run: %,d parameters, %s, micro-batch %d × %d tokens, %s%n", parameters,
                exp.lora().enabled() ? "LoRA r=" + exp.lora().r() : "full fine-tuning (weights, gradients and 2 optimizer states in fp32: "
                        + String.format(Locale.ROOT, "%.1f GiB", parameters * 16.0 / (1L << 30)) + ")",
                t.perDeviceTrainBatchSize(), exp.data().maxSeqLength(), precision.name().toLowerCase(Locale.ROOT)));
        s.append("  try, in this order:");
        if (evaluating && t.perDeviceEvalBatchSize() > 1) {
            s.append(String.format(Locale.ROOT, "%n  - a smaller evaluation batch: --set training.per_device_eval_batch_size=%d",
                    Math.max(1, t.perDeviceEvalBatchSize() / 2)));
        }
        if (t.perDeviceTrainBatchSize() > 1) {
            s.append(String.format(Locale.ROOT, "%n  - a smaller micro-batch with more accumulation (same effective batch): "
                            + "--set training.per_device_train_batch_size=%d --set training.gradient_accumulation_steps=%d",
                    Math.max(1, t.perDeviceTrainBatchSize() / 2), t.gradientAccumulationSteps() * 2));
        }
        s.append(String.format(Locale.ROOT, "%n  - shorter sequences: --set data.max_seq_length=%d", Math.max(8, exp.data().maxSeqLength() / 2)));
        if (!exp.lora().enabled()) s.append(String.format(Locale.ROOT, "%n  - LoRA instead of full fine-tuning: --set lora.enabled=true (no gradients or optimizer state for the base)"));
        if (precision == Precision.FP32) s.append(String.format(Locale.ROOT, "%n  - bf16: --set training.precision=bf16"));
        return new UserError(s.toString(), e);
    }
}
