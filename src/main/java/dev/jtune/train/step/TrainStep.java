package dev.jtune.train.step;

import dev.jtune.train.optim.AdamW;
import dev.jtune.train.optim.LossScaler;
import dev.jtune.config.Experiment;
import dev.jtune.config.Precision;
import dev.jtune.config.TrainingSection;
import dev.jtune.data.Batch;
import dev.jtune.data.TensorBatch;
import dev.jtune.distributed.DataParallel;
import dev.jtune.distributed.DistGroup;
import dev.jtune.distributed.GradientsReady;
import dev.jtune.distributed.ZeroSharding;
import dev.jtune.kernels.AutogradBridge;
import dev.jtune.kernels.Ops;
import dev.jtune.model.CausalLM;
import dev.jtune.model.ModelConfig;
import dev.jtune.peft.LoraAdapter;
import dev.jtune.peft.LoraSpec;
import dev.jtune.quant.QuantizationConfig;
import dev.jtune.util.Devices;
import org.bytedeco.javacpp.PointerScope;
import org.bytedeco.pytorch.Device;
import org.bytedeco.pytorch.Scalar;
import org.bytedeco.pytorch.Tensor;
import org.bytedeco.pytorch.global.torch;

import java.util.List;
import java.util.Map;
import java.util.Objects;
import java.util.function.UnaryOperator;

/**
 * One optimizer step of a run, bound to what it updates: the model and its trained tensors ({@link Trainable}), AdamW,
 * the fp16 loss scaler, the precision and clipping norm, and the data-parallel sync (with ZeRO stage 1, the optimizer
 * state sharded over the ranks). {@link #assemble} is the one place these are put together: the trainer, {@code jtune
 * bench}, {@code jtune lr-find} and {@code jtune sweep} all build their steps through it, so what bench times is what
 * training does.
 *
 * <p>What trains comes from an experiment ({@link #forExperiment}: the same {@link Trainable} the trainer builds), or
 * from a config with random weights ({@link #random}: no files; full fine-tuning with fp32 master weights, or LoRA
 * adapters on a frozen base, as the trainer does it).
 */
public final class TrainStep implements AutoCloseable {
    /**
     * One step's outcome; {@code loss} is the mean over the loss's units (target tokens; a preference method's pairs),
     * {@code skipped} when gradients were not finite.
     */
    public record Result(double loss, double gradNorm, long tokens, boolean skipped) {}

    /**
     * How a step runs besides the model: the experiment's optimizer, clipping, precision and data-parallel keys.
     *
     * @param labelSmoothing {@code training.label_smoothing_factor}: the loss trained on (and logged) is the smoothed one;
     *                       evaluation scores the plain loss
     * @param zeroStage      0 (every rank keeps the whole optimizer state) or 1 (sharded over the ranks)
     * @param bucketCapMb    the data-parallel gradient buckets' size ({@code training.ddp_bucket_cap_mb})
     * @param loss           what the step minimises ({@code training.method}): made by {@link #assemble} for the model it
     *                       trains; null: next-token cross-entropy with {@code labelSmoothing}
     */
    public record Settings(Precision precision, double weightDecay, double beta1, double beta2, double epsilon, double maxGradNorm,
                           ActivationCheckpointing.Settings checkpointing, double labelSmoothing, int zeroStage, double bucketCapMb,
                           StepLoss.Factory loss) {
        public Settings {
            Objects.requireNonNull(precision, "precision");
            Objects.requireNonNull(checkpointing, "checkpointing");
        }

        /** The experiment's {@code training} keys, under {@code precision} (resolved for the device). */
        public static Settings of(TrainingSection t, Precision precision) {
            return new Settings(precision, t.weightDecay(), t.adamBeta1(), t.adamBeta2(), t.adamEpsilon(), t.maxGradNorm(),
                    new ActivationCheckpointing.Settings(t.gradientCheckpointing(), Boolean.TRUE.equals(t.gradientCheckpointingKwargs().get("offload"))),
                    t.labelSmoothingFactor(), t.zeroStage(), t.ddpBucketCapMb(), null);
        }

        /** transformers' defaults (betas 0.9 and 0.999, epsilon 1e-8; no checkpointing, smoothing or ZeRO) with these three. */
        public static Settings defaults(Precision precision, double weightDecay, double maxGradNorm) {
            return new Settings(precision, weightDecay, 0.9, 0.999, 1e-8, maxGradNorm, ActivationCheckpointing.Settings.OFF, 0.0, 0,
                    DataParallel.DEFAULT_BUCKET_CAP_MB, null);
        }

        /** The same with activation checkpointing as given. */
        public Settings withCheckpointing(ActivationCheckpointing.Settings c) {
            return new Settings(precision, weightDecay, beta1, beta2, epsilon, maxGradNorm, c, labelSmoothing, zeroStage, bucketCapMb, loss);
        }

        /** The same with ZeRO stage {@code stage} (0 or 1). */
        public Settings withZeroStage(int stage) {
            return new Settings(precision, weightDecay, beta1, beta2, epsilon, maxGradNorm, checkpointing, labelSmoothing, stage, bucketCapMb, loss);
        }

        /** The same with {@code loss} (a preference method's, made for the trained model by {@link #assemble}; null: cross-entropy). */
        public Settings withLoss(StepLoss.Factory loss) {
            return new Settings(precision, weightDecay, beta1, beta2, epsilon, maxGradNorm, checkpointing, labelSmoothing, zeroStage, bucketCapMb, loss);
        }
    }

    final Trainable trained;
    final AdamW optimizer;
    final LossScaler scaler;
    final Settings s;
    /** The other ranks of a data-parallel run ({@link DataParallel#NONE} in a single process). */
    final DataParallel dp;
    /** What the step minimises: {@code s.loss()} made for this model, or cross-entropy with label smoothing. */
    final StepLoss loss;

    private TrainStep(Trainable trained, AdamW optimizer, LossScaler scaler, Settings s, DataParallel dp, StepLoss loss) {
        this.trained = trained;
        this.optimizer = optimizer;
        this.scaler = scaler;
        this.s = s;
        this.dp = dp;
        this.loss = loss;
    }

    /**
     * The one factory of training steps: AdamW over {@code trained}'s tensors (its decay rule; under ZeRO stage 1 with
     * more than one rank, this rank's shard of the state only), the loss scaler (on under fp16), and the gradient sync
     * over {@code group} ({@link DataParallel#NONE} alone). Every rank starts from rank 0's weights, as
     * DistributedDataParallel's constructor makes sure. The loss is {@code s.loss()} made for {@code trained}'s model (a
     * preference method's, with its reference), or cross-entropy. The step owns {@code trained} and the loss:
     * {@link #close} closes them.
     */
    public static TrainStep assemble(Trainable trained, Settings s, DistGroup group) {
        ZeroSharding zero = s.zeroStage() == 1 && group.worldSize() > 1 ? ZeroSharding.of(group, trained.parameters()) : null;
        // the whole optimizer state, or under ZeRO stage 1 this rank's shard of it
        AdamW optimizer = zero == null
                ? new AdamW(trained.parameters(), trained.decayed(), s.weightDecay(), s.beta1(), s.beta2(), s.epsilon())
                : new AdamW(trained.parameters(), trained.decayed(), zero::owns, s.weightDecay(), s.beta1(), s.beta2(), s.epsilon());
        group.broadcast(List.copyOf(trained.parameters().values()), 0, "broadcast of the initial weights from rank 0");
        StepLoss loss = s.loss() == null ? StepLoss.causalLm(s.labelSmoothing())
                : s.loss().create(trained.model, trained instanceof Trainable.Adapters);
        DataParallel dp = DataParallel.of(group, trained.parameters(), trained.model.numBlocks(), s.bucketCapMb()).shardOptimizer(zero);
        if (dp.active()) loss.joinRanks(v -> group.allReduceSum(v, "all-reduce of the loss's batch statistics (KTO's KL)"));
        return new TrainStep(trained, optimizer, new LossScaler(trained.model.device(), s.precision() == Precision.FP16), s, dp, loss);
    }

    /**
     * The model, LoRA and optimizer settings of an experiment (its model directory is loaded, on training.device, seeded
     * with training.seed) as one rank of {@code group}; the ops run under {@code kernels} (the experiment's
     * training.kernels, or bench's --kernels).
     *
     * @param adjust changes to the experiment's settings (bench's --gradient-checkpointing, --zero-stage); identity else
     */
    public static TrainStep forExperiment(Experiment exp, Ops kernels, DistGroup group, UnaryOperator<Settings> adjust) {
        Device device = Devices.parse(exp.training().device(), "training.device");
        Precision precision = exp.training().precision().resolve(device.is_cuda());
        ModelConfig config = ModelConfig.read(exp.model().path());
        torch.manual_seed(exp.training().seed());
        Trainable t = Trainable.forExperiment(exp, config, device, precision, kernels);
        try {
            return assemble(t, adjust.apply(Settings.of(exp.training(), precision)), group);
        } catch (RuntimeException e) {
            t.close();
            throw e;
        }
    }

    /**
     * Random weights of {@code config}'s shape ({@link Trainable#random}) as one rank of {@code group}.
     *
     * @param lora         null for full fine-tuning (fp32 master weights), or the adapters to train on a frozen base
     * @param quantization a 4-bit base (QLoRA; LoRA only), or null
     */
    public static TrainStep random(ModelConfig config, Device device, LoraSpec lora, long seed, Ops kernels,
                                   QuantizationConfig quantization, Settings s, DistGroup group) {
        Trainable t = Trainable.random(config, device, s.precision(), lora, seed, kernels, quantization);
        try {
            return assemble(t, s, group);
        } catch (RuntimeException e) {
            t.close();
            throw e;
        }
    }

    /** One optimizer step over the micro-batches of one effective batch, at learning rate {@code lr}. */
    public Result step(List<Batch> micro, double lr) {
        return run(micro, lr, dp);
    }

    /**
     * As {@link #step}, with no collective: this rank alone (bench's one-rank rate beside the data-parallel one; under
     * ZeRO stage 1 it updates its own shard only). A loss that joined the ranks (KTO's KL) would still call them: bench
     * refuses kto.
     */
    public Result stepAlone(List<Batch> micro, double lr) {
        return run(micro, lr, DataParallel.NONE);
    }

    /**
     * The optimizer step itself: each micro-batch copied to the device, forward under {@link Autocast}, the loss
     * ({@link StepLoss#sum}: {@link CausalLmLoss#sumAtTargets}, or a preference method's) divided by its units (target
     * tokens, or pairs) of the WHOLE effective batch (so 8 micro-batches of 1 equal one batch of 8), backward through the {@link LossScaler}, one host read of the loss per micro-batch;
     * then unscale and check, clip, step, zero_grad. A non-finite gradient norm (any precision) skips the update.
     *
     * <p>With activation checkpointing, forward and backward of each micro-batch go through
     * {@link ActivationCheckpointing} (the same loss and gradients, blocks recomputed in the backward).
     *
     * <p>As one rank of a data-parallel run ({@code dp}): {@code micro} is this rank's share of the global batch; the
     * loss is divided by the target tokens of the whole global batch (counts all-reduced first), the gradients are
     * summed over the ranks once per step, in buckets started during the last micro-batch's backward as blocks'
     * gradients become final and waited for after it (so clipping sees the global norm and every rank steps
     * identically; earlier micro-batches never sync), and the returned loss and tokens are the global batch's.
     */
    Result run(List<Batch> micro, double lr, DataParallel dp) {
        long localTargets = 0, tokens = 0;
        for (Batch b : micro) {
            localTargets += loss.units(b);
            tokens += b.tokens();
        }
        loss.startStep();
        long targets = dp.globalTargets(localTargets);
        double lossSum = 0;
        model().setTraining(true);
        try {
            int lastMicro = micro.size() - 1;   // the last micro-batch with a backward: its gradients are the step's final ones
            while (lastMicro > 0 && loss.units(micro.get(lastMicro)) == 0) lastMicro--;
            for (int m = 0; m < micro.size(); m++) {
                Batch b = micro.get(m);
                if (loss.units(b) == 0) continue;
                // the scope frees this micro-batch's tensors; the bridge's step (closed first) what the fused ops kept
                // for their backward and their hooks, also when an exception skipped the backward
                try (PointerScope scope = new PointerScope(); AutogradBridge.Step ops = AutogradBridge.openStep()) {
                    TensorBatch tb = b.toTensors(model().device());
                    // fp16: the loss is scaled up before backward so small gradients do not flush to zero
                    long divisor = Math.max(1, targets);
                    java.util.function.UnaryOperator<Tensor> backwardOf = l -> scaler.scale(l.div(new Scalar((double) divisor)));
                    // data parallel, last micro-batch: its backward tells dp when blocks' gradients are final, and their
                    // buckets' all-reduce starts while the backward goes on (null: nothing to tell)
                    GradientsReady ready = m == lastMicro ? dp.gradientsReady() : null;
                    Tensor sum;
                    if (s.checkpointing().enabled()) {
                        sum = ActivationCheckpointing.lossAndBackward(model(), tb, s.precision(), s.checkpointing().offload(),
                                last -> loss.sum(model(), model().finalNorm(last), b, tb),
                                backwardOf, ready);
                    } else {
                        try (Autocast ac = Autocast.enter(s.precision(), model().device())) {
                            Tensor hidden = BlockwiseForward.hidden(model(), tb, ready);
                            sum = loss.sum(model(), hidden, b, tb);
                        }
                        backwardOf.apply(sum).backward();
                    }
                    lossSum += sum.item_double();   // host sync per micro-batch (the unscaled loss is logged)
                }
            }
        } finally {
            model().setTraining(false);
        }
        double norm;
        boolean skipped;
        try (PointerScope scope = new PointerScope()) {
            // fp16: unscale and look for inf/NaN (one host sync); any precision: a non-finite norm skips the step
            dp.syncGradients();   // waits for (and starts the rest of) the buckets; no-op in a single process
            boolean finite = scaler.unscaleAndCheck(trained.parameters().values());
            norm = finite ? AdamW.clipGradNorm(trained.parameters().values(), s.maxGradNorm()) : Double.NaN;
            skipped = !(finite && Double.isFinite(norm));
            if (!skipped) {
                optimizer.step(lr);
                dp.afterOptimizerStep();   // ZeRO stage 1: each tensor from the rank that stepped it
            }
            optimizer.zeroGrad();
            scaler.update();
        }
        double[] global = dp.sumLossAndTokens(lossSum, tokens);
        // the method's metrics (rewards/chosen, ...) over the global batch, as TRL gathers them from every process
        if (dp.active()) loss.sumMetricsOverRanks(v -> dp.group().allReduceSum(v, "all-reduce of the step's preference metrics"));
        return new Result(global[0] / Math.max(1, targets), norm, (long) global[1], skipped);
    }


    /** The optimizer this step drives. */
    public AdamW optimizer() {
        return optimizer;
    }

    /** The fp16 loss scaler (disabled in other precisions). */
    public LossScaler scaler() {
        return scaler;
    }

    /** What the step trains, and how it is saved and restored. */
    public Trainable trained() {
        return trained;
    }

    /** The model trained (with its LoRA adapters attached, if any). */
    public CausalLM model() {
        return trained.model;
    }

    /** The tensors the optimizer updates, by name. */
    public Map<String, Tensor> trainableParameters() {
        return trained.parameters();
    }

    /** LoRA adapters by module name; empty for full fine-tuning. */
    public Map<String, LoraAdapter> adapters() {
        return trained instanceof Trainable.Adapters a ? a.adapters() : Map.of();
    }

    /** What the step minimises (cross-entropy, or a preference method's {@link StepLoss}). */
    public StepLoss loss() {
        return loss;
    }

    /** What the step runs with. */
    public Settings settings() {
        return s;
    }

    public Precision precision() {
        return s.precision();
    }

    public boolean lora() {
        return trained instanceof Trainable.Adapters;
    }

    /** The data-parallel sync (NONE alone): the loop names its steps, bench reads its timings. */
    public DataParallel dataParallel() {
        return dp;
    }

    /** Closes the gradient sync, the loss (a preference method's reference) and the model. */
    @Override
    public void close() {
        try {
            dp.close();
        } finally {
            try {
                if (loss instanceof AutoCloseable c) c.close();
            } catch (Exception e) {
                throw new IllegalStateException("closing the step's loss: " + e.getMessage(), e);
            } finally {
                trained.close();
            }
        }
    }
}
