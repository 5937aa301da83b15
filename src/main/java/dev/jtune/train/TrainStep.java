package dev.jtune.train;

import dev.jtune.config.Precision;
import dev.jtune.config.Experiment;
import dev.jtune.config.LoraSection;
import dev.jtune.data.Batch;
import dev.jtune.dist.DataParallel;
import dev.jtune.dist.GradientsReady;
import dev.jtune.data.TensorBatch;
import dev.jtune.kernels.AutogradBridge;
import dev.jtune.kernels.Ops;
import dev.jtune.model.CausalLM;
import dev.jtune.model.ModelConfig;
import dev.jtune.model.ModelInit;
import dev.jtune.model.ModelLoader;
import dev.jtune.peft.Lora;
import dev.jtune.peft.LoraAdapter;
import dev.jtune.peft.LoraSpec;
import dev.jtune.util.Devices;
import dev.jtune.util.Tensors;
import org.bytedeco.javacpp.PointerScope;
import org.bytedeco.pytorch.Device;
import org.bytedeco.pytorch.Scalar;
import org.bytedeco.pytorch.Tensor;
import org.bytedeco.pytorch.global.torch;
import org.bytedeco.pytorch.global.torch.ScalarType;

import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

/**
 * One optimizer step of the trainer, outside the training loop: what {@code jtune bench} times.
 *
 * <p>{@link #step} runs {@link #run}, the very step the trainer runs (Trainer adds only its bookkeeping: logs,
 * bad-step counting), so what bench times is what training does.
 *
 * <p>What trains comes from an experiment ({@link #fromExperiment}: the same {@link Trainable} the trainer builds), or
 * from a config with random weights ({@link #random}: no files; full fine-tuning with fp32 master weights, or LoRA
 * adapters on a frozen base stored in bf16 under bf16 precision, as the trainer does it).
 */
public final class TrainStep implements AutoCloseable {
    /** One step's outcome; {@code loss} is the mean over target tokens, {@code skipped} when gradients were not finite. */
    public record Result(double loss, double gradNorm, long tokens, boolean skipped) {}

    private final CausalLM model;
    private final Map<String, Tensor> trainable;
    private final Map<String, LoraAdapter> adapters;   // empty for full fine-tuning
    private final AdamW optimizer;
    private final LossScaler scaler;
    private final Precision precision;
    private final double maxGradNorm;
    private final AutoCloseable owner;
    private ActivationCheckpointing.Settings checkpointing = ActivationCheckpointing.Settings.OFF;
    private double labelSmoothing;
    private DataParallel dp = DataParallel.NONE;
    private StepLoss stepLoss;   // null: next-token cross-entropy with labelSmoothing

    private TrainStep(CausalLM model, Map<String, Tensor> trainable, Map<String, LoraAdapter> adapters, AdamW optimizer,
                      Precision precision, double maxGradNorm, AutoCloseable owner) {
        this.model = model;
        this.trainable = trainable;
        this.adapters = adapters;
        this.precision = precision;
        this.maxGradNorm = maxGradNorm;
        this.owner = owner;
        this.optimizer = optimizer;
        this.scaler = new LossScaler(model.device(), precision == Precision.FP16);
    }

    /**
     * The model, precision, LoRA and optimizer settings of an experiment (its model directory is loaded); the ops
     * run under {@code kernels} (the experiment's training.kernels, or bench's --kernels).
     */
    public static TrainStep fromExperiment(Experiment exp, Ops kernels) {
        Device device = Devices.parse(exp.training().device(), "training.device");
        Precision precision = exp.training().precision().resolve(device.is_cuda());
        ModelConfig config = ModelConfig.read(exp.model().path());
        torch.manual_seed(exp.training().seed());
        Trainable t = Trainable.forExperiment(exp, config, device, precision, kernels);
        Map<String, LoraAdapter> adapters = exp.lora().enabled() ? adaptersOf(t.model) : Map.of();
        var tr = exp.training();
        AdamW optimizer = new AdamW(t.parameters(), t.decayed(), tr.weightDecay(), tr.adamBeta1(), tr.adamBeta2(), tr.adamEpsilon());
        TrainStep step = new TrainStep(t.model, t.parameters(), adapters, optimizer, precision, tr.maxGradNorm(), t)
                .checkpointing(checkpointingOf(tr));
        step.labelSmoothing = tr.labelSmoothingFactor();
        return step;
    }

    /**
     * Random weights of {@code config}'s shape (transformers' initialisation; see {@link ModelInit}).
     * On the CPU the weights come from {@link ModelInit#randomParameters}; on CUDA they are drawn on the device
     * with the same distributions (the CPU generator would take minutes and tens of GB of host memory for 8B).
     *
     * @param lora    null for full fine-tuning (fp32 master weights), or the adapters to train on a frozen base
     * @param kernels the kernel policy of the model's ops
     */
    public static TrainStep random(ModelConfig config, Device device, Precision precision, LoraSpec lora, long seed,
                                   double weightDecay, double maxGradNorm, Ops kernels) {
        return random(config, device, precision, lora, seed, weightDecay, maxGradNorm, kernels, null);
    }

    /** As above; with {@code quantization} (LoRA only) the frozen base is 4-bit (QLoRA), drawn and quantized tensor by tensor. */
    public static TrainStep random(ModelConfig config, Device device, Precision precision, LoraSpec lora, long seed,
                                   double weightDecay, double maxGradNorm, Ops kernels, dev.jtune.quant.QuantizationConfig quantization) {
        boolean full = lora == null;
        if (full && quantization != null) throw new IllegalArgumentException("a 4-bit base needs LoRA");
        ScalarType dtype = full ? ScalarType.Float : Trainable.frozenBaseDtype(precision);
        CausalLM model;
        if (quantization != null) {
            model = dev.jtune.quant.QuantizedModelLoader.random(config, seed, dtype, device, kernels, quantization);
        } else {
            Map<String, Tensor> params;
            try (PointerScope scope = new PointerScope()) {
                params = ModelInit.randomParameters(config, seed, dtype, device);
                for (Tensor p : params.values()) {
                    if (full) p.requires_grad_(true);   // retained once by randomParameters: the model releases it at close
                }
            }
            model = ModelLoader.create(config, params, dtype, device, null, kernels);
        }
        if (full) {
            AdamW optimizer = new AdamW(model.parameters(), Trainable.fullDecay(config), weightDecay, 0.9, 0.999, 1e-8);
            return new TrainStep(model, model.parameters(), Map.of(), optimizer, precision, maxGradNorm, model);
        }
        Map<String, LoraAdapter> adapters;
        try (PointerScope scope = new PointerScope()) {
            adapters = Lora.create(config, lora, seed, device, "--lora-targets");
        }
        model.setAdapters(adapters);
        Map<String, Tensor> tensors = Lora.tensors(adapters);
        AdamW optimizer = new AdamW(tensors, n -> true, weightDecay, 0.9, 0.999, 1e-8);   // transformers' defaults
        return new TrainStep(model, tensors, adapters, optimizer, precision, maxGradNorm, model);
    }

    /** The experiment's {@code gradient_checkpointing} and its {@code offload} kwarg. */
    static ActivationCheckpointing.Settings checkpointingOf(dev.jtune.config.TrainingSection t) {
        return new ActivationCheckpointing.Settings(t.gradientCheckpointing(),
                Boolean.TRUE.equals(t.gradientCheckpointingKwargs().get("offload")));
    }

    /** The activation checkpointing later steps run with. */
    public ActivationCheckpointing.Settings checkpointingSettings() {
        return checkpointing;
    }

    /** Runs later steps with (or without) activation checkpointing; returns this. */
    public TrainStep checkpointing(ActivationCheckpointing.Settings settings) {
        this.checkpointing = java.util.Objects.requireNonNull(settings);
        return this;
    }

    /** Runs later steps with {@code loss} (a preference method's; null: cross-entropy); returns this. */
    public TrainStep loss(StepLoss loss) {
        this.stepLoss = loss;
        return this;
    }

    /** Runs later steps as one rank of a data-parallel run ({@link DataParallel#NONE}: alone); returns this. */
    public TrainStep dataParallel(DataParallel dp) {
        this.dp = java.util.Objects.requireNonNull(dp);
        return this;
    }

    @SuppressWarnings("unchecked")
    private static Map<String, LoraAdapter> adaptersOf(CausalLM model) {
        Map<String, LoraAdapter> out = new LinkedHashMap<>();
        model.adapters().forEach((k, v) -> {
            if (v instanceof LoraAdapter a) out.put(k, a);
        });
        return out;
    }

    /** One optimizer step over the micro-batches of one effective batch, at learning rate {@code lr}. */
    public Result step(List<Batch> micro, double lr) {
        return run(model, trainable, optimizer, scaler, precision, maxGradNorm, checkpointing,
                stepLoss != null ? stepLoss : StepLoss.causalLm(labelSmoothing), micro, lr, false, dp);
    }

    /**
     * The optimizer step itself, shared by the trainer and {@code jtune bench}: each micro-batch copied to the
     * device, forward under {@link Autocast}, {@link CausalLmLoss#sumAtTargets} divided by the target tokens of the
     * WHOLE effective batch (so 8 micro-batches of 1 equal one batch of 8), backward through the {@link LossScaler},
     * one host read of the loss per micro-batch; then unscale and check, clip, step, zero_grad. A non-finite
     * gradient norm (any precision) skips the update.
     *
     * <p>With {@code checkpointing} enabled, forward and backward of each micro-batch go through
     * {@link ActivationCheckpointing} (the same loss and gradients, blocks recomputed in the backward).
     *
     * @param labelSmoothing {@code training.label_smoothing_factor}: the loss trained on (and logged) is the smoothed one
     * @param poisonLoss make the loss NaN (the trainer's test hook for a corrupt batch)
     */
    static Result run(CausalLM model, Map<String, Tensor> trainable, AdamW optimizer, LossScaler scaler, Precision precision,
                      double maxGradNorm, ActivationCheckpointing.Settings checkpointing, double labelSmoothing,
                      List<Batch> micro, double lr, boolean poisonLoss) {
        return run(model, trainable, optimizer, scaler, precision, maxGradNorm, checkpointing, labelSmoothing, micro, lr,
                poisonLoss, DataParallel.NONE);
    }

    /**
     * As above, as one rank of a data-parallel run ({@code dp}): {@code micro} is this rank's share of the global batch;
     * the loss is divided by the target tokens of the whole global batch (counts all-reduced first), the gradients are
     * summed over the ranks once per step, in buckets started during the last micro-batch's backward as blocks' gradients
     * become final and waited for after it (so clipping sees the global norm and every rank steps identically; earlier
     * micro-batches never sync), and the returned loss and tokens are the global batch's.
     */
    static Result run(CausalLM model, Map<String, Tensor> trainable, AdamW optimizer, LossScaler scaler, Precision precision,
                      double maxGradNorm, ActivationCheckpointing.Settings checkpointing, double labelSmoothing,
                      List<Batch> micro, double lr, boolean poisonLoss, DataParallel dp) {
        return run(model, trainable, optimizer, scaler, precision, maxGradNorm, checkpointing, StepLoss.causalLm(labelSmoothing),
                micro, lr, poisonLoss, dp);
    }

    /**
     * As above with the loss of {@code training.method} ({@link StepLoss}): its sum over each micro-batch divided by its
     * units (target tokens, or pairs) of the whole global batch; the returned loss is that mean, {@code tokens} the
     * non-pad tokens.
     */
    static Result run(CausalLM model, Map<String, Tensor> trainable, AdamW optimizer, LossScaler scaler, Precision precision,
                      double maxGradNorm, ActivationCheckpointing.Settings checkpointing, StepLoss stepLoss,
                      List<Batch> micro, double lr, boolean poisonLoss, DataParallel dp) {
        long localTargets = 0, tokens = 0;
        for (Batch b : micro) {
            localTargets += stepLoss.units(b);
            tokens += b.tokens();
        }
        stepLoss.startStep();
        long targets = dp.globalTargets(localTargets);
        double lossSum = 0;
        model.setTraining(true);
        try {
            int lastMicro = micro.size() - 1;   // the last micro-batch with a backward: its gradients are the step's final ones
            while (lastMicro > 0 && stepLoss.units(micro.get(lastMicro)) == 0) lastMicro--;
            for (int m = 0; m < micro.size(); m++) {
                Batch b = micro.get(m);
                if (stepLoss.units(b) == 0) continue;
                // the scope frees this micro-batch's tensors; the bridge's step (closed first) what the fused ops kept
                // for their backward and their hooks, also when an exception skipped the backward
                try (PointerScope scope = new PointerScope(); AutogradBridge.Step ops = AutogradBridge.openStep()) {
                    TensorBatch tb = b.toTensors(model.device());
                    // fp16: the loss is scaled up before backward so small gradients do not flush to zero
                    long divisor = Math.max(1, targets);
                    java.util.function.UnaryOperator<Tensor> backwardOf = l -> scaler.scale(l.div(new Scalar((double) divisor)));
                    // data parallel, last micro-batch: its backward tells dp when blocks' gradients are final, and their
                    // buckets' all-reduce starts while the backward goes on (null: nothing to tell)
                    GradientsReady ready = m == lastMicro ? dp.gradientsReady() : null;
                    Tensor loss;
                    if (checkpointing.enabled()) {
                        loss = ActivationCheckpointing.lossAndBackward(model, tb, precision, checkpointing.offload(),
                                last -> poison(stepLoss.sum(model, model.finalNorm(last), b, tb), poisonLoss),
                                backwardOf, ready);
                    } else {
                        try (Autocast ac = Autocast.enter(precision, model.device())) {
                            Tensor hidden = BlockwiseForward.hidden(model, tb, ready);
                            loss = stepLoss.sum(model, hidden, b, tb);
                        }
                        loss = poison(loss, poisonLoss);
                        backwardOf.apply(loss).backward();
                    }
                    lossSum += loss.item_double();   // host sync per micro-batch (the unscaled loss is logged)
                }
            }
        } finally {
            model.setTraining(false);
        }
        double norm;
        boolean skipped;
        try (PointerScope scope = new PointerScope()) {
            // fp16: unscale and look for inf/NaN (one host sync); any precision: a non-finite norm skips the step
            dp.syncGradients();   // waits for (and starts the rest of) the buckets; no-op in a single process
            boolean finite = scaler.unscaleAndCheck(trainable.values());
            norm = finite ? AdamW.clipGradNorm(trainable.values(), maxGradNorm) : Double.NaN;
            skipped = !(finite && Double.isFinite(norm));
            if (!skipped) {
                optimizer.step(lr);
                dp.afterOptimizerStep();   // ZeRO stage 1: each tensor from the rank that stepped it
            }
            optimizer.zeroGrad();
            scaler.update();
        }
        double[] global = dp.sumLossAndTokens(lossSum, tokens);
        return new Result(global[0] / Math.max(1, targets), norm, (long) global[1], skipped);
    }

    private static Tensor poison(Tensor loss, boolean poisonLoss) {
        return poisonLoss ? loss.mul(new Scalar(Double.NaN)) : loss;
    }

    /** The optimizer this step drives (with the experiment's betas, epsilon and weight decay under {@link #fromExperiment}). */
    public AdamW optimizer() {
        return optimizer;
    }

    public CausalLM model() {
        return model;
    }

    /** The tensors the optimizer updates, by name. */
    public Map<String, Tensor> trainableParameters() {
        return trainable;
    }

    /** LoRA adapters by module name; empty for full fine-tuning. */
    public Map<String, LoraAdapter> adapters() {
        return adapters;
    }

    public Precision precision() {
        return precision;
    }

    public boolean lora() {
        return !adapters.isEmpty();
    }

    @Override
    public void close() {
        try {
            owner.close();
        } catch (Exception e) {
            throw new IllegalStateException(e);
        }
    }
}
