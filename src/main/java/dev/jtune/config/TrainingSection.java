package dev.jtune.config;

import dev.jtune.kernels.KernelMode;

import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import java.util.Map;
import java.util.regex.Pattern;

/**
 * The {@code training:} section. Keys and defaults follow Hugging Face's {@code TrainingArguments} (and
 * {@code EarlyStoppingCallback} for the early-stopping keys); docs/configuration.md's {@code training:} key table gives the mapping.
 *
 * <p>Paths are absolute: relative paths in the file resolve against the working directory (as in Hugging Face
 * scripts and axolotl), not against the experiment file's directory.
 *
 * @param outputDir              checkpoints, the final model and config.resolved.yaml go here; required
 * @param loggingDir             metrics logs; defaults to {@code outputDir/runs}
 * @param numTrainEpochs         passes over the training data (may be fractional); used when {@code maxSteps} is -1
 * @param maxSteps               optimizer steps to train for, overriding {@code numTrainEpochs}; -1 = by epochs
 * @param lrSchedulerKwargs      keyword arguments of the schedule ({@code num_cycles}, {@code min_lr}, {@code min_lr_rate},
 *                               {@code lr_end}, {@code power}, {@code timescale}), as transformers' {@code lr_scheduler_kwargs}
 * @param warmupSteps            linear warmup steps; when &gt; 0 it wins over {@code warmupRatio} (as in HF)
 * @param warmupRatio            warmup as a fraction of the total steps
 * @param neftuneNoiseAlpha      NEFTune: while training, uniform noise of magnitude alpha / sqrt(L·d) added to the input
 *                               embeddings (L = the batch's padded length, d = hidden size), as transformers does; null = off
 * @param labelSmoothingFactor   epsilon of label smoothing on the training loss, as transformers' LabelSmoother:
 *                               (1 - epsilon)·NLL + epsilon·(mean over the vocabulary of -log p), per target token; 0 = off
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
 * @param gradientCheckpointing  activation checkpointing: keep only each decoder block's input and recompute the block
 *                               in the backward (less memory, about one more forward of compute)
 * @param gradientCheckpointingKwargs {@code offload: true} keeps the saved block inputs in pinned host memory on CUDA
 *                               (a no-op on the CPU)
 * @param predictWithGenerate    answer held-out prompts (instruction and chat data) and score the answers against the
 *                               references: the base model at the start, a validation subset at each evaluation, the
 *                               test prompts at the end (transformers' {@code Seq2SeqTrainingArguments} name)
 * @param generationMaxLength    new tokens per answer, at most
 * @param generationNumBeams     1 = greedy decoding (beam search is not built: more is refused)
 * @param evalGenerationSamples  validation prompts answered at each evaluation: the same subset each time, drawn with the seed
 * @param generationMetrics      which scores: exact_match, token_f1, rouge_l, bleu, chrf (see dev.jtune.eval.AnswerMetric)
 * @param ddpTimeout             seconds a collective of a data-parallel run may wait for the other ranks before this rank
 *                               exits with code 1 naming the rank and the collective (transformers' {@code ddp_timeout})
 * @param zeroStage              0: plain data parallel (every rank keeps the whole optimizer state); 1: ZeRO stage 1, the
 *                               optimizer state sharded across the ranks (DeepSpeed's {@code zero_optimization.stage}, PyTorch's
 *                               {@code ZeroRedundancyOptimizer}); no effect in one process or with world size 1
 * @param ddpBucketCapMb         MiB per gradient bucket of the data-parallel all-reduce (transformers' and DDP's
 *                               {@code bucket_cap_mb}); the first bucket holds at most 1 MiB
 * @param metricForBestModel     what ranks evaluations for the best checkpoint and early stopping: {@code loss}, or with a
 *                               preference method {@code rewards/accuracies}, {@code rewards/margins}, ... ({@code eval_} prefix optional)
 * @param greaterIsBetter        whether larger values of that metric are better; null = unless its name ends in "loss"
 * @param method                 {@code sft} (default), or preference tuning: {@code dpo}, {@code orpo}, {@code kto}, {@code simpo}
 *                               (see the {@code preference:} section)
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
        @Key("{}") Map<String, Double> lrSchedulerKwargs,
        @Key("0") int warmupSteps,
        @Key("0.0") double warmupRatio,
        @Key("0.0") double weightDecay,
        @Key(value = "null", nullable = true) Double neftuneNoiseAlpha,
        @Key("0.0") double labelSmoothingFactor,
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
        @Key("auto") KernelMode kernels,
        @Key("false") boolean skipMemoryCheck,
        @Key("false") boolean gradientCheckpointing,
        @Key("{}") Map<String, Boolean> gradientCheckpointingKwargs,
        @Key("false") boolean predictWithGenerate,
        @Key("64") int generationMaxLength,
        @Key("1") int generationNumBeams,
        @Key("32") int evalGenerationSamples,
        @Key("[exact_match, token_f1, rouge_l, bleu, chrf]") List<String> generationMetrics,
        @Key("1800") int ddpTimeout,
        @Key("0") int zeroStage,
        @Key("25") double ddpBucketCapMb,
        @Key("sft") Method method,
        @Key("loss") String metricForBestModel,
        @Key(value = "null", nullable = true) Boolean greaterIsBetter) implements Section {

    /** The metrics an evaluation can rank by (metric_for_best_model, with or without the eval_ prefix). */
    public static final List<String> BEST_MODEL_METRICS = List.of("loss", "rewards/accuracies", "rewards/margins",
            "rewards/chosen", "rewards/rejected");

    /** metric_for_best_model without its optional {@code eval_} prefix, as transformers reads it. */
    public String bestModelMetric() {
        return metricForBestModel == null ? "loss" : metricForBestModel.startsWith("eval_") ? metricForBestModel.substring(5) : metricForBestModel;
    }

    /** Whether a larger value of the metric is better: greater_is_better, else (as transformers) unless it is a loss. */
    public boolean largerIsBetter() {
        return greaterIsBetter != null ? greaterIsBetter : !bestModelMetric().endsWith("loss");
    }

    /**
     * What the run optimises: {@code sft} (next-token cross-entropy on the targets) or a preference method on pairs
     * ({@code dpo}, {@code orpo}, {@code simpo}) or labelled completions ({@code kto}), set up by the {@code preference:} section.
     */
    public enum Method { SFT, DPO, ORPO, KTO, SIMPO;
        /** Whether it trains on preference data ({@code preference:} applies). */
        public boolean preference() {
            return this != SFT;
        }
    }

    /** The ZeRO stages jtune has built: 0 (plain data parallel) and 1 (optimizer state sharded across the ranks). */
    public static final int MAX_ZERO_STAGE = 1;

    /** The {@code gradient_checkpointing_kwargs} jtune reads. */
    public static final List<String> GRADIENT_CHECKPOINTING_KWARGS = List.of("offload");

    /** transformers' {@code SchedulerType} values that jtune implements (see train.LrSchedule for the formulas). */
    public enum Scheduler { LINEAR, COSINE, COSINE_WITH_RESTARTS, POLYNOMIAL, CONSTANT, CONSTANT_WITH_WARMUP, INVERSE_SQRT, COSINE_WITH_MIN_LR }

    /**
     * The {@code lr_scheduler_kwargs} each scheduler accepts: the keyword arguments of transformers' schedule function
     * that {@code get_scheduler} passes through (an unknown one is a TypeError there, and refused here).
     */
    public static List<String> schedulerKwargs(Scheduler s) {
        return switch (s) {
            case COSINE, COSINE_WITH_RESTARTS -> List.of("num_cycles");
            case COSINE_WITH_MIN_LR -> List.of("num_cycles", "min_lr", "min_lr_rate");
            case POLYNOMIAL -> List.of("lr_end", "power");
            case INVERSE_SQRT -> List.of("timescale");
            case LINEAR, CONSTANT, CONSTANT_WITH_WARMUP -> List.of();
        };
    }

    private static final Pattern DEVICE = Pattern.compile("auto|cpu|cuda|cuda:\\d+");

    @Override
    public TrainingSection withDerivedDefaults() {
        if (loggingDir != null || outputDir == null) return this;
        return new TrainingSection(outputDir, outputDir.resolve("runs"), numTrainEpochs, maxSteps,
                perDeviceTrainBatchSize, perDeviceEvalBatchSize, gradientAccumulationSteps, learningRate,
                lrSchedulerType, lrSchedulerKwargs, warmupSteps, warmupRatio, weightDecay, neftuneNoiseAlpha, labelSmoothingFactor, adamBeta1, adamBeta2, adamEpsilon, maxGradNorm,
                loggingSteps, evalSteps, saveSteps, saveTotalLimit, seed, precision, device, earlyStoppingPatience,
                earlyStoppingThreshold, loadBestModelAtEnd, dataloaderNumWorkers, maxBadSteps, kernels, skipMemoryCheck, gradientCheckpointing,
                gradientCheckpointingKwargs, predictWithGenerate, generationMaxLength, generationNumBeams, evalGenerationSamples,
                generationMetrics, ddpTimeout, zeroStage, ddpBucketCapMb, method, metricForBestModel, greaterIsBetter);
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
        validateScheduler(p);
        p.check(weightDecay >= 0, "weight_decay", "must not be negative, got " + weightDecay);
        p.check(neftuneNoiseAlpha == null || neftuneNoiseAlpha >= 0, "neftune_noise_alpha",
                "must not be negative (the NEFTune paper uses 5 to 15; null = no noise), got " + neftuneNoiseAlpha);
        p.check(labelSmoothingFactor >= 0 && labelSmoothingFactor < 1, "label_smoothing_factor",
                "must be in [0, 1) (0 = no smoothing; 0.1 is usual), got " + labelSmoothingFactor);
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
        validateGeneration(p);
        atLeast(p, "ddp_timeout", ddpTimeout, 1);
        if (metricForBestModel != null) {
            p.check(BEST_MODEL_METRICS.contains(bestModelMetric()), "metric_for_best_model", "unknown metric '" + metricForBestModel
                    + "'; expected one of: " + String.join(", ", BEST_MODEL_METRICS) + " (an eval_ prefix is optional)");
        }
        p.check(ddpBucketCapMb > 0 && Double.isFinite(ddpBucketCapMb), "ddp_bucket_cap_mb",
                "must be a positive number of MiB (DDP's default is 25), got " + ddpBucketCapMb);
        p.check(zeroStage >= 0 && zeroStage <= MAX_ZERO_STAGE, "zero_stage", zeroStage == 2 || zeroStage == 3
                ? "ZeRO stage " + zeroStage + " (sharded gradients" + (zeroStage == 3 ? " and weights" : "") + ") is not built in jtune; "
                        + "supported: 0 (plain data parallel) and 1 (optimizer state sharded across the ranks), got " + zeroStage
                : "must be 0 (plain data parallel) or 1 (optimizer state sharded across the ranks), got " + zeroStage);
        if (gradientCheckpointingKwargs != null) {
            for (String k : gradientCheckpointingKwargs.keySet()) {
                p.check(GRADIENT_CHECKPOINTING_KWARGS.contains(k), "gradient_checkpointing_kwargs",
                        "'" + k + "' is not a key jtune reads; it takes: " + String.join(", ", GRADIENT_CHECKPOINTING_KWARGS));
            }
        }
    }

    /** The generation keys; that the data has prompts and answers is {@link CrossChecks}' business. */
    private void validateGeneration(Problems p) {
        atLeast(p, "generation_max_length", generationMaxLength, 1);
        atLeast(p, "eval_generation_samples", evalGenerationSamples, 0);
        p.check(generationNumBeams == 1, "generation_num_beams", generationNumBeams < 1
                ? "must be at least 1, got " + generationNumBeams
                : "beam search is not built in jtune yet: set generation_num_beams: 1 (greedy decoding), got " + generationNumBeams);
        if (generationMetrics != null) {
            List<String> known = dev.jtune.eval.AnswerMetric.keys();
            if (generationMetrics.isEmpty()) {
                p.add("generation_metrics", "must name at least one metric: " + String.join(", ", known));
            }
            for (String m : generationMetrics) {
                if (known.contains(m)) continue;
                p.add("generation_metrics", "unknown metric '" + m + "'" + Yaml.didYouMean(m, known) + "; the metrics are: "
                        + String.join(", ", known));
                break;   // a key reports one problem
            }
        }
    }

    private void validateScheduler(Problems p) {
        if (lrSchedulerType == null || lrSchedulerKwargs == null) return;
        String type = lrSchedulerType.name().toLowerCase(java.util.Locale.ROOT);
        List<String> known = schedulerKwargs(lrSchedulerType);
        for (String k : lrSchedulerKwargs.keySet()) {
            if (!known.contains(k)) {
                p.add("lr_scheduler_kwargs", "'" + k + "' is not an argument of the " + type + " schedule; "
                        + (known.isEmpty() ? "it takes none" : "it takes: " + String.join(", ", known)));
            }
        }
        Map<String, Double> kw = lrSchedulerKwargs;
        if (lrSchedulerType == Scheduler.CONSTANT && (warmupSteps > 0 || warmupRatio > 0)) {
            // transformers' get_scheduler calls get_constant_schedule(optimizer) and drops the warmup without a word
            p.add("lr_scheduler_type", "constant has no warmup (transformers ignores warmup_steps and warmup_ratio with it); "
                    + "use constant_with_warmup, or set warmup_steps and warmup_ratio to 0");
        }
        if (lrSchedulerType == Scheduler.COSINE_WITH_MIN_LR && kw.containsKey("min_lr") == kw.containsKey("min_lr_rate")) {
            p.add("lr_scheduler_kwargs", "cosine_with_min_lr needs exactly one of min_lr and min_lr_rate, e.g. {min_lr_rate: 0.1}");
        }
        if (kw.containsKey("min_lr_rate")) {
            double r = kw.get("min_lr_rate");
            p.check(r >= 0 && r <= 1, "lr_scheduler_kwargs", "min_lr_rate must be in [0, 1], got " + r);
        }
        if (kw.containsKey("min_lr")) p.check(kw.get("min_lr") >= 0, "lr_scheduler_kwargs", "min_lr must not be negative, got " + kw.get("min_lr"));
        if (kw.containsKey("num_cycles")) p.check(kw.get("num_cycles") > 0, "lr_scheduler_kwargs", "num_cycles must be > 0, got " + kw.get("num_cycles"));
        if (kw.containsKey("power")) p.check(kw.get("power") > 0, "lr_scheduler_kwargs", "power must be > 0, got " + kw.get("power"));
        if (lrSchedulerType == Scheduler.POLYNOMIAL) {
            double lrEnd = kw.getOrDefault("lr_end", 1e-7);
            p.check(learningRate > lrEnd, "lr_scheduler_kwargs",
                    "lr_end (" + lrEnd + ") must be smaller than learning_rate (" + learningRate + "), as transformers requires");
        }
        if (kw.containsKey("timescale")) {
            double ts = kw.get("timescale");
            p.check(ts >= 1 && ts == Math.rint(ts), "lr_scheduler_kwargs", "timescale must be a whole number of steps >= 1, got " + ts);
        }
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
