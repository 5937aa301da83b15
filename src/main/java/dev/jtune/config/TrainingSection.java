package dev.jtune.config;

import java.nio.file.Files;
import java.nio.file.Path;
import java.util.regex.Pattern;

/**
 * The {@code training:} section. Keys and defaults follow Hugging Face's {@code TrainingArguments} (and
 * {@code EarlyStoppingCallback} for the early-stopping keys); see KEYS.md for the mapping.
 *
 * <p>Paths are absolute: relative paths in the file resolve against the working directory (as in Hugging Face
 * scripts and axolotl), not against the experiment file's directory.
 *
 * @param outputDir              checkpoints, the final model and config.resolved.yaml go here; required
 * @param loggingDir             metrics logs; defaults to {@code outputDir/runs}
 * @param numTrainEpochs         passes over the training data (may be fractional); used when {@code maxSteps} is -1
 * @param maxSteps               optimizer steps to train for, overriding {@code numTrainEpochs}; -1 = by epochs
 * @param warmupSteps            linear warmup steps; when &gt; 0 it wins over {@code warmupRatio} (as in HF)
 * @param warmupRatio            warmup as a fraction of the total steps
 * @param maxGradNorm            gradient clipping norm; 0 = no clipping
 * @param evalSteps              evaluate every N steps; 0 = at the end of each epoch
 * @param saveSteps              checkpoint every N steps; 0 = at the end of each epoch
 * @param saveTotalLimit         checkpoints to keep (the best one is always kept); null = keep all
 * @param precision              {@code fp32}, {@code bf16}, {@code fp16}, or {@code auto} to let the trainer choose for the device
 * @param device                 {@code auto}, {@code cpu}, {@code cuda} or {@code cuda:N}
 * @param earlyStoppingPatience  evaluations without improvement before stopping; null = no early stopping
 * @param earlyStoppingThreshold how much the validation loss must improve to count as an improvement
 * @param loadBestModelAtEnd     finish with the checkpoint of lowest validation loss (ignored without validation data)
 * @param maxBadSteps            consecutive steps with a non-finite loss or gradients (each skipped) before the run stops
 * @param kernels                {@code auto} or {@code off}: whether the op layer may use jtune's fused CUDA kernels
 * @param skipMemoryCheck        start even when jtune plan's prediction says the run does not fit in the device's memory
 */
public record TrainingSection(
        @Key(Key.REQUIRED) Path outputDir,
        @Key(value = "null", nullable = true) Path loggingDir,
        @Key("3.0") double numTrainEpochs,
        @Key("-1") int maxSteps,
        @Key("8") int perDeviceTrainBatchSize,
        @Key("8") int perDeviceEvalBatchSize,
        @Key("1") int gradientAccumulationSteps,
        @Key("5e-5") double learningRate,
        @Key("linear") Scheduler lrSchedulerType,
        @Key("0") int warmupSteps,
        @Key("0.0") double warmupRatio,
        @Key("0.0") double weightDecay,
        @Key("0.9") double adamBeta1,
        @Key("0.999") double adamBeta2,
        @Key("1e-8") double adamEpsilon,
        @Key("1.0") double maxGradNorm,
        @Key("10") int loggingSteps,
        @Key("0") int evalSteps,
        @Key("0") int saveSteps,
        @Key(value = "2", nullable = true) Integer saveTotalLimit,
        @Key("42") long seed,
        @Key("auto") Precision precision,
        @Key("auto") String device,
        @Key(value = "null", nullable = true) Integer earlyStoppingPatience,
        @Key("0.0") double earlyStoppingThreshold,
        @Key("true") boolean loadBestModelAtEnd,
        @Key("2") int dataloaderNumWorkers,
        @Key("5") int maxBadSteps,
        @Key("auto") Kernels kernels,
        @Key("false") boolean skipMemoryCheck) implements Section {

    public enum Scheduler { CONSTANT, LINEAR, COSINE }

    public enum Precision { AUTO, FP32, BF16, FP16 }

    /** auto: jtune's CUDA kernels where they apply (CUDA tensors, fp32/bf16), LibTorch elsewhere; off: LibTorch everywhere. */
    public enum Kernels { AUTO, OFF }

    private static final Pattern DEVICE = Pattern.compile("auto|cpu|cuda|cuda:\\d+");

    @Override
    public TrainingSection withDerivedDefaults() {
        if (loggingDir != null || outputDir == null) return this;
        return new TrainingSection(outputDir, outputDir.resolve("runs"), numTrainEpochs, maxSteps,
                perDeviceTrainBatchSize, perDeviceEvalBatchSize, gradientAccumulationSteps, learningRate,
                lrSchedulerType, warmupSteps, warmupRatio, weightDecay, adamBeta1, adamBeta2, adamEpsilon, maxGradNorm,
                loggingSteps, evalSteps, saveSteps, saveTotalLimit, seed, precision, device, earlyStoppingPatience,
                earlyStoppingThreshold, loadBestModelAtEnd, dataloaderNumWorkers, maxBadSteps, kernels, skipMemoryCheck);
    }

    @Override
    public void validate(Problems p) {
        directory(p, "output_dir", outputDir);
        directory(p, "logging_dir", loggingDir);

        p.check(maxSteps == -1 || maxSteps >= 1, "max_steps",
                "must be -1 (train for num_train_epochs) or a positive number of steps, got " + maxSteps);
        p.check(maxSteps != -1 || numTrainEpochs > 0, "num_train_epochs",
                "must be > 0 when max_steps is -1, got " + numTrainEpochs, "max_steps");
        p.check(numTrainEpochs >= 0, "num_train_epochs", "must not be negative, got " + numTrainEpochs);
        atLeast(p, "per_device_train_batch_size", perDeviceTrainBatchSize, 1);
        atLeast(p, "per_device_eval_batch_size", perDeviceEvalBatchSize, 1);
        atLeast(p, "gradient_accumulation_steps", gradientAccumulationSteps, 1);
        p.check(learningRate > 0, "learning_rate", "must be > 0, got " + learningRate);
        atLeast(p, "warmup_steps", warmupSteps, 0);
        p.check(warmupRatio >= 0 && warmupRatio < 1, "warmup_ratio", "must be in [0, 1), got " + warmupRatio);
        p.check(weightDecay >= 0, "weight_decay", "must not be negative, got " + weightDecay);
        p.check(adamBeta1 >= 0 && adamBeta1 < 1, "adam_beta1", "must be in [0, 1), got " + adamBeta1);
        p.check(adamBeta2 >= 0 && adamBeta2 < 1, "adam_beta2", "must be in [0, 1), got " + adamBeta2);
        p.check(adamEpsilon > 0, "adam_epsilon", "must be > 0, got " + adamEpsilon);
        p.check(maxGradNorm >= 0, "max_grad_norm", "must not be negative (0 = no clipping), got " + maxGradNorm);
        atLeast(p, "logging_steps", loggingSteps, 1);
        p.check(evalSteps >= 0, "eval_steps", "must not be negative (0 = at the end of each epoch), got " + evalSteps);
        p.check(saveSteps >= 0, "save_steps", "must not be negative (0 = at the end of each epoch), got " + saveSteps);
        p.check(saveTotalLimit == null || saveTotalLimit >= 1, "save_total_limit",
                "must be at least 1, or null to keep every checkpoint, got " + saveTotalLimit);
        if (device != null) {
            p.check(DEVICE.matcher(device).matches(), "device",
                    "unknown device '" + device + "'; expected one of: auto, cpu, cuda, cuda:N");
        }
        p.check(earlyStoppingPatience == null || earlyStoppingPatience >= 1, "early_stopping_patience",
                "must be at least 1, or null for no early stopping, got " + earlyStoppingPatience);
        p.check(earlyStoppingThreshold >= 0, "early_stopping_threshold", "must not be negative, got " + earlyStoppingThreshold);
        atLeast(p, "dataloader_num_workers", dataloaderNumWorkers, 0);
        atLeast(p, "max_bad_steps", maxBadSteps, 1);
    }

    private static void atLeast(Problems p, String key, int value, int min) {
        p.check(value >= min, key, "must be at least " + min + ", got " + value);
    }

    private static void directory(Problems p, String key, Path dir) {
        if (dir != null && p.ok(key) && Files.exists(dir) && !Files.isDirectory(dir)) {
            p.add(key, p.describePath(key, dir) + " exists and is not a directory");
        }
    }
}
