package dev.jtune.bench;

import dev.jtune.config.Precision;
import dev.jtune.config.Experiment;
import dev.jtune.kernels.KernelMode;
import dev.jtune.kernels.Ops;
import dev.jtune.data.Batch;
import dev.jtune.model.ModelConfig;
import dev.jtune.peft.LoraSpec;
import dev.jtune.quant.QuantType;
import dev.jtune.quant.QuantizationConfig;
import dev.jtune.quant.QuantizedModelLoader;
import dev.jtune.quant.QuantizedProjection;
import dev.jtune.model.CausalLM;
import dev.jtune.distributed.DataParallel;
import dev.jtune.distributed.DistGroup;
import dev.jtune.distributed.LaunchEnv;
import dev.jtune.train.step.TrainStep;
import dev.jtune.train.Trainer;
import dev.jtune.util.Devices;
import dev.jtune.util.UserError;
import org.bytedeco.pytorch.Device;
import org.bytedeco.pytorch.Tensor;
import org.bytedeco.pytorch.global.torch;
import org.bytedeco.pytorch.global.torch.ScalarType;

import java.io.IOException;
import java.lang.management.ManagementFactory;
import java.nio.file.Path;
import java.time.Instant;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Locale;
import java.util.Optional;
import java.util.function.UnaryOperator;
import java.time.Duration;
import java.util.Map;
import java.util.Random;

/**
 * {@code jtune bench}: times optimizer steps of the trainer ({@link TrainStep}) on synthetic token batches and sets
 * them against the hardware: tokens/s, step time, model FLOPs per token (6N + attention, and the LoRA-adjusted count),
 * model FLOP/s, MFU against the datasheet peak and against a matrix product measured in the same run, and peak memory.
 * It measures into a {@link BenchResult}, whose JSON has the same shape as bench/peer/hf_peft_bench.py's.
 */
public final class BenchRunner {
    /**
     * What to run. {@code experiment} or {@code shape} (exactly one); the others override or default. {@code launch}: the
     * launcher's description of this rank (torchrun, {@code --nproc-per-node}), or empty for one process.
     */
    public record Options(Path experiment, String shape, String arch, String precision, Integer loraR, List<String> loraTargets,
                          Integer seqLen, Integer microBatch, Integer gradAccum, String device, int steps, int warmup,
                          Integer gemmSize, Path profile, int profilePeriodMs, long seed, String kernels,
                          boolean gradientCheckpointing, String quantization, Integer zeroStage, String method,
                          Optional<LaunchEnv> launch) {
    }

    private BenchRunner() {}

    public static BenchResult run(Options o) {
        if (o.steps() < 1) throw new UserError("--steps: must be at least 1, got " + o.steps());
        if (o.warmup() < 0) throw new UserError("--warmup: must be 0 or more, got " + o.warmup());
        if ((o.experiment() == null) == (o.shape() == null)) {
            throw new UserError("give either an experiment file or --shape (one of " + Shapes.names() + "), not " + (o.shape() == null ? "neither" : "both"));
        }
        positive(o.seqLen(), "--seq-len");
        positive(o.microBatch(), "--micro-batch");
        positive(o.gradAccum(), "--grad-accum");
        positive(o.gemmSize(), "--gemm-size");
        if (o.loraR() != null && o.loraR() < 0) throw new UserError("--lora-r: must be 0 (full fine-tuning) or more, got " + o.loraR());
        if (o.profilePeriodMs() < 1) throw new UserError("--profile-period-ms: must be at least 1, got " + o.profilePeriodMs());
        if (o.zeroStage() != null && o.zeroStage() != 0 && o.zeroStage() != 1) {
            throw new UserError("--zero-stage: " + (o.zeroStage() == 2 || o.zeroStage() == 3 ? "ZeRO stage " + o.zeroStage() + " is not built in jtune; " : "")
                    + "supported: 0 (plain data parallel) and 1 (optimizer state sharded across the ranks), got " + o.zeroStage());
        }
        // --method: a preference method's loss, made by the step's factory for the model it builds (null: sft)
        dev.jtune.train.step.StepLoss.Factory method = o.method() == null ? null : preferenceLoss(o.method());
        // --zero-stage, --gradient-checkpointing and --method over the experiment's (or the defaults') settings
        UnaryOperator<TrainStep.Settings> flags = s -> {
            if (o.zeroStage() != null) s = s.withZeroStage(o.zeroStage());
            if (o.gradientCheckpointing()) s = s.withCheckpointing(new dev.jtune.train.step.ActivationCheckpointing.Settings(true, false));
            if (method != null) s = s.withLoss(method);
            return s;
        };
        // under torchrun or --nproc-per-node: this process is one rank; it reports its own numbers and the all-reduce's
        Optional<LaunchEnv> launch = o.launch();

        ModelConfig config;
        int seqLen, micro, accum;
        java.util.function.Function<DistGroup, TrainStep> build;   // the step, once the group is joined
        Device device;
        String source;
        if (o.experiment() != null) {
            if (o.shape() != null || o.arch() != null || o.precision() != null || o.loraR() != null || o.loraTargets() != null
                    || o.quantization() != null) {
                throw new UserError("--arch, --precision, --lora-r, --lora-targets and --quantization go with --shape; with an experiment "
                        + "file, change it (a 4-bit base: model.quantization.load_in_4bit: true)");
            }
            Experiment exp = Experiment.load(o.experiment(), List.of());
            seqLen = o.seqLen() != null ? o.seqLen() : exp.data().maxSeqLength();
            micro = o.microBatch() != null ? o.microBatch() : exp.training().perDeviceTrainBatchSize();
            accum = o.gradAccum() != null ? o.gradAccum() : exp.training().gradientAccumulationSteps();
            if (o.device() != null) throw new UserError("--device goes with --shape; the experiment's training.device is used");
            config = ModelConfig.read(exp.model().path());
            checkSeqLen(seqLen, config);
            device = Devices.parse(exp.training().device(), "training.device");
            Ops ops = Ops.of(o.kernels() != null ? kernelsMode(o.kernels()) : exp.training().kernels());
            build = group -> TrainStep.forExperiment(exp, ops, group, flags);
            source = o.experiment().toString();
        } else {
            config = Shapes.config(o.shape(), o.arch());
            seqLen = o.seqLen() != null ? o.seqLen() : 512;
            micro = o.microBatch() != null ? o.microBatch() : 1;
            accum = o.gradAccum() != null ? o.gradAccum() : 1;
            checkSeqLen(seqLen, config);
            device = Devices.parse(o.device() == null ? "cpu" : o.device(), "--device");
            String p = o.precision() == null ? (device.is_cuda() ? "bf16" : "fp32") : o.precision().toLowerCase(Locale.ROOT);
            Precision mode = switch (p) {
                case "fp32" -> Precision.FP32;
                case "bf16" -> Precision.BF16;
                default -> throw new UserError("--precision: unknown value '" + o.precision() + "'; expected fp32 or bf16");
            };
            int r = o.loraR() == null ? 0 : o.loraR();
            if (r == 0 && o.loraTargets() != null) throw new UserError("--lora-targets needs --lora-r N (N > 0)");
            LoraSpec lora = r == 0 ? null : new LoraSpec(r, 2.0 * r, 0.0, o.loraTargets() == null ? List.of("all-linear") : o.loraTargets(), false, true);
            QuantizationConfig q = quantization(o.quantization(), mode);
            if (q != null && lora == null) {
                throw new UserError("--quantization " + o.quantization() + " needs --lora-r N: a 4-bit base is frozen (QLoRA trains adapters on it)");
            }
            Ops ops = Ops.of(o.kernels() != null ? kernelsMode(o.kernels()) : KernelMode.AUTO);
            Device on = device;
            build = group -> {
                torch.manual_seed(o.seed());
                return TrainStep.random(config, on, lora, o.seed(), ops, q, flags.apply(TrainStep.Settings.defaults(mode, 0.0, 1.0)), group);
            };
            source = "shape " + o.shape() + " (random weights)";
        }
        Device on = device;
        try (DistGroup group = launch.map(e -> DistGroup.join(e, on, Duration.ofSeconds(600), System.err)).orElse(DistGroup.single());
             TrainStep step = build.apply(group)) {
            return measure(o, step, config, seqLen, micro, accum, source, group);
        }
    }

    /**
     * {@code --quantization}: nf4 or fp4 as QLoRA runs it (double quantization; compute in bf16 under bf16 autocast, else
     * fp32), or none/absent for a 16/32-bit base.
     */
    static QuantizationConfig quantization(String s, Precision mode) {
        if (s == null || s.equalsIgnoreCase("none")) return null;
        String t = s.toLowerCase(Locale.ROOT);
        if (!t.equals("nf4") && !t.equals("fp4")) throw new UserError("--quantization: unknown value '" + s + "'; expected nf4, fp4 or none");
        return new QuantizationConfig(QuantType.parse(t, "--quantization"), true, mode == Precision.FP32 ? "float32" : "bfloat16", List.of());
    }

    /**
     * The dequantization's cost: seconds for one pass over every 4-bit weight (each dequantized to the compute dtype,
     * as a forward does), the best of three; null without a 4-bit base.
     */
    static Double dequantizeSecondsPerPass(CausalLM m) {
        if (m.frozenLinears().isEmpty()) return null;
        double best = Double.MAX_VALUE;
        for (int rep = 0; rep < 3; rep++) {
            long t0 = System.nanoTime();
            for (dev.jtune.model.FrozenLinear f : m.frozenLinears().values()) {
                if (!(f instanceof QuantizedProjection p)) continue;
                try (org.bytedeco.javacpp.PointerScope s = new org.bytedeco.javacpp.PointerScope()) {
                    Tensor w = p.dequantize();
                    if (rep == 0 && w.numel() == 0) throw new IllegalStateException();
                }
            }
            DeviceInfo.sync(m.device());
            best = Math.min(best, (System.nanoTime() - t0) / 1e9);
        }
        return best;
    }

    private static KernelMode kernelsMode(String s) {
        try {
            return KernelMode.parse(s);
        } catch (IllegalArgumentException e) {
            throw new UserError("--kernels: unknown value '" + s + "'; expected auto or off");
        }
    }

    private static void positive(Integer v, String flag) {
        if (v != null && v < 1) throw new UserError(flag + ": must be at least 1, got " + v);
    }

    private static void checkSeqLen(int seqLen, ModelConfig c) {
        if (seqLen < 2) throw new UserError("--seq-len: must be at least 2 (one next-token target), got " + seqLen);
        if (seqLen > c.maxPositions()) {
            throw new UserError("--seq-len " + seqLen + " is longer than the model supports (" + c.maxPositions() + " positions)");
        }
    }

    /**
     * {@code --method}: the preference loss of that method with TRL's defaults, made for the step's model (dpo's
     * reference: the LoRA base with its adapters off, so dpo needs --lora-r; orpo and simpo have no reference); null for sft.
     */
    static dev.jtune.train.step.StepLoss.Factory preferenceLoss(String method) {
        dev.jtune.config.TrainingSection.Method m;
        try {
            m = dev.jtune.config.TrainingSection.Method.valueOf(method.toUpperCase(Locale.ROOT));
        } catch (IllegalArgumentException e) {
            throw new UserError("--method: unknown value '" + method + "'; expected sft, dpo, orpo or simpo");
        }
        if (m == dev.jtune.config.TrainingSection.Method.SFT) return null;
        if (m == dev.jtune.config.TrainingSection.Method.KTO) {
            throw new UserError("--method kto is not benched (its labels come from data); dpo times the same forward and backward");
        }
        var settings = new dev.jtune.config.PreferenceSection(null, null, null, null, null, null, null, null, null, null, null, null,
                "chosen", "rejected", "completion", "label").resolvedFor(m);
        var loss = new dev.jtune.train.preference.PreferenceLoss(m, settings);
        return (model, lora) -> {
            if (loss.needsReference() && !lora) {
                throw new UserError("--method " + method + " benches the reference as LoRA's adapters-off base: add --lora-r N");
            }
            return new dev.jtune.train.preference.PreferenceStepLoss(loss, loss.needsReference()
                    ? dev.jtune.train.preference.ReferenceLogps.adaptersOff(model) : dev.jtune.train.preference.ReferenceLogps.NONE,
                    java.util.Map.of());
        };
    }

    /**
     * Preference pairs for --method: {@code accum} micro-batches of {@code micro} pairs, 2·micro rows of {@code seqLen}
     * random ids (chosen rows first), the first half of each row a prompt (masked), the rest a completion.
     */
    public static List<Batch> syntheticPairs(int vocab, int seqLen, int micro, int accum, long seed) {
        Random rnd = new Random(seed);
        int prompt = seqLen / 2;
        List<Batch> out = new ArrayList<>();
        for (int m = 0; m < accum; m++) {
            long[][] ids = new long[2 * micro][seqLen];
            long[][] labels = new long[2 * micro][seqLen];
            for (int r = 0; r < 2 * micro; r++) {
                for (int t = 0; t < seqLen; t++) {
                    ids[r][t] = r >= micro && t < prompt ? ids[r - micro][t] : rnd.nextInt(vocab);   // a pair shares its prompt
                    labels[r][t] = t < prompt ? dev.jtune.util.Labels.IGNORE_INDEX : ids[r][t];
                }
            }
            out.add(new Batch(ids, labels, null, null, 2 * micro * (seqLen - prompt), 2 * micro * seqLen));
        }
        return out;
    }

    /** {@code accum} micro-batches of {@code micro} rows of {@code seqLen} random token ids; every next token is a target. */
    public static List<Batch> syntheticBatches(int vocab, int seqLen, int micro, int accum, long seed) {
        Random rnd = new Random(seed);
        List<Batch> out = new ArrayList<>();
        for (int m = 0; m < accum; m++) {
            long[][] ids = new long[micro][seqLen];
            for (long[] row : ids) for (int t = 0; t < seqLen; t++) row[t] = rnd.nextInt(vocab);
            long[][] labels = new long[micro][];
            for (int i = 0; i < micro; i++) labels[i] = ids[i].clone();
            out.add(new Batch(ids, labels, null, null, micro * (seqLen - 1), micro * seqLen));
        }
        return out;
    }

    private static BenchResult measure(Options o, TrainStep step, ModelConfig modelConfig, int seqLen, int micro, int accum, String source,
                                      DistGroup group) {
        Device device = step.model().device();
        // each rank its own batches (as its shard would be), of the same shape
        boolean pairs = o.method() != null && !o.method().equalsIgnoreCase("sft");
        List<Batch> batches = pairs ? syntheticPairs(modelConfig.vocabSize(), seqLen, micro, accum, o.seed() + group.rank())
                : syntheticBatches(modelConfig.vocabSize(), seqLen, micro, accum, o.seed() + group.rank());
        long tokensPerStep = (long) micro * seqLen * accum * (pairs ? 2 : 1);   // a pair is two sequences
        double lr = 1e-5;

        // ZeRO stage 1: the step keeps (and steps) only this rank's shard of the optimizer state from the first step on, so
        // the steps alone below differ from the data-parallel ones by the collectives only
        List<Double> losses = new ArrayList<>();
        for (int i = 0; i < o.warmup(); i++) losses.add(step.stepAlone(batches, lr).loss());
        // distributed: first the same steps without the all-reduce (the rank alone: the 1-rank rate to scale against)
        double aloneTokensPerS = Double.NaN;
        DataParallel dp = step.dataParallel();
        if (group.active()) {
            group.barrier("barrier before the bench's steps");
            long a0 = System.nanoTime();
            for (int i = 0; i < o.steps(); i++) step.stepAlone(batches, lr);
            DeviceInfo.sync(device);
            aloneTokensPerS = tokensPerStep * o.steps() / ((System.nanoTime() - a0) / 1e9);
            for (int i = 0; i < Math.max(1, o.warmup()); i++) step.step(batches, lr);   // the buckets' first use
            group.barrier("barrier before the bench's data-parallel steps");
        }
        double[] commTimes = new double[o.steps()], exposedTimes = new double[o.steps()];
        long startedEarly = 0;   // gradient buckets whose all-reduce started during the backward, over the timed steps
        DeviceInfo.sync(device);
        // the peak up to here is the load's (and warm-up's); the timed steps get a window of their own
        DeviceInfo.Memory loadMem = DeviceInfo.peakMemory(device);
        DeviceInfo.Window window = DeviceInfo.resetPeak(device);

        var threads = ManagementFactory.getThreadMXBean();
        var os = (com.sun.management.OperatingSystemMXBean) ManagementFactory.getOperatingSystemMXBean();
        long cpu0 = os.getProcessCpuTime(), thread0 = threads.getCurrentThreadCpuTime();
        double busy0 = machineBusySeconds();
        JfrProfile profiler = o.profile() == null ? null : new JfrProfile(o.profile(), o.profilePeriodMs());
        String windowStart = Instant.now().toString();
        double[] times = new double[o.steps()];
        long skipped = 0;
        long wall0 = System.nanoTime();
        for (int i = 0; i < o.steps(); i++) {
            long t0 = System.nanoTime();
            dp.startStep(i + 1);
            TrainStep.Result r = step.step(batches, lr);
            DeviceInfo.sync(device);
            times[i] = (System.nanoTime() - t0) / 1e9;
            commTimes[i] = dp.commSeconds();
            exposedTimes[i] = dp.exposedSeconds();
            startedEarly += dp.bucketsStartedDuringBackward();
            losses.add(r.loss());
            if (r.skipped()) skipped++;
        }
        double wall = (System.nanoTime() - wall0) / 1e9;
        JfrProfile.Result profile = null;
        if (profiler != null) {
            try (profiler) {
                profile = profiler.stop();
            } catch (IOException e) {
                throw new UserError("--profile " + o.profile() + ": cannot write the recording: " + e.getMessage(), e);
            }
        }
        long cpu1 = os.getProcessCpuTime(), thread1 = threads.getCurrentThreadCpuTime();
        double busy1 = machineBusySeconds();
        DeviceInfo.Memory stepMem = DeviceInfo.peakMemory(device);
        DeviceInfo.Memory mem = window.resetNote() == null ? loadMem : stepMem;   // not reset: the step's peak is the process's

        // the hardware's own rate, same process and thread pool
        int gemmN = o.gemmSize() != null ? o.gemmSize() : device.is_cuda() ? 8192 : 2048;
        double minSec = device.is_cuda() ? 1.0 : 0.5;
        double gemmFp32 = Gemm.tflops(ScalarType.Float, device, gemmN, 3, minSec);
        double gemmBf16 = Gemm.tflops(ScalarType.BFloat16, device, gemmN, 3, minSec);
        boolean bf16Compute = step.precision() == Precision.BF16
                || step.precision() == Precision.FP16;   // fp16 runs on the same units as bf16
        double gemmSame = bf16Compute ? gemmBf16 : gemmFp32;
        double gemmBest = Math.max(gemmFp32, gemmBf16);

        String deviceName = DeviceInfo.name(device);
        Double datasheet = device.is_cuda() ? DeviceInfo.datasheetBf16Tflops(deviceName) : null;

        double[] sorted = times.clone();
        Arrays.sort(sorted);
        double tokensPerS = tokensPerStep * o.steps() / Arrays.stream(times).sum();
        long adapterParams = 0;
        for (Tensor t : step.trainableParameters().values()) adapterParams += step.lora() ? t.numel() : 0;
        double fullFlops = Flops.fullPerToken(modelConfig, seqLen);
        Double loraFlops = step.lora() ? Flops.loraPerToken(modelConfig, seqLen, adapterParams) : null;
        double mfuFlops = loraFlops != null ? loraFlops : fullFlops;

        long trainable = 0;
        for (Tensor t : step.trainableParameters().values()) trainable += t.numel();
        Long loraR = null;
        Integer loraModules = null;
        Long baseBytes = null;
        if (step.lora()) {
            loraR = step.adapters().values().iterator().next().a().size(0);
            loraModules = step.adapters().size();
            baseBytes = QuantizedModelLoader.baseBytes(step.model());
        }
        BenchResult.Quantization quantization = null;
        Double dequant = dequantizeSecondsPerPass(step.model());
        if (dequant != null) {
            QuantizedProjection any = (QuantizedProjection) step.model().frozenLinears().values().iterator().next();
            long quantizedParams = 0, quantizedBytes = 0;
            for (dev.jtune.model.FrozenLinear f : step.model().frozenLinears().values()) {
                QuantizedProjection p = (QuantizedProjection) f;
                quantizedParams += p.weight().state().numel();
                quantizedBytes += p.weight().storageBytes() - p.weight().state().toJsonBytes().length;
            }
            // each micro-batch dequantizes every weight in the forward and again in the backward (+1 recompute with checkpointing)
            int passes = accum * (2 + (step.settings().checkpointing().enabled() ? 1 : 0));
            quantization = new BenchResult.Quantization(any.weight().state().type().bnbName(), any.weight().state().nested(),
                    dev.jtune.util.Tensors.hfName(any.compute()), step.model().frozenLinears().size(), quantizedParams,
                    (double) quantizedBytes / quantizedParams, dequant, passes, dequant * passes / percentile(sorted, 50),
                    "one pass = every 4-bit weight dequantized to the compute dtype once, timed alone after the steps (best of 3)");
        }
        Map<String, String> kernels = new LinkedHashMap<>();
        kernels.put("mode", step.model().kernels().mode().key());
        kernels.putAll(step.model().kernels().paths(device.is_cuda()));
        BenchResult.Config config = new BenchResult.Config(source, o.shape(), modelConfig.modelType(), Flops.parameters(modelConfig),
                Flops.matmulParameters(modelConfig), trainable, step.lora() ? "lora" : "full", loraR, loraModules, baseBytes,
                baseBytes == null ? null : (double) baseBytes / Flops.parameters(modelConfig), quantization, step.precision().label(),
                seqLen, micro, accum, tokensPerStep, step.settings().checkpointing().enabled(),
                o.method() == null ? "sft" : o.method().toLowerCase(Locale.ROOT),   // --method: the loss timed
                device.is_cuda() ? "cuda" : "cpu", deviceName, torch.get_num_threads(), "sdpa (LibTorch scaled_dot_product_attention, causal)",
                kernels);
        double mean = Arrays.stream(times).average().orElse(Double.NaN);
        double model = mfuFlops * tokensPerS / 1e12;
        // the timed steps alone: the peak since the window was reset after warm-up
        boolean stepWindow = window.resetNote() == null;
        BenchResult.Memory memory = new BenchResult.Memory(mem.kind(), mem.peakBytes(), mem.peakReservedBytes(),
                mem.note() + "; measured after the warm-up steps, before the timed ones (load + warm-up)",
                stepWindow ? stepMem.peakBytes() : null, stepWindow ? stepMem.peakReservedBytes() : null, window.startBytes(),
                !stepWindow ? window.resetNote()
                        : device.is_cuda() ? "peak allocated bytes over the timed steps (peak statistics reset after warm-up); step_start_bytes: allocated then"
                        : "VmHWM over the timed steps (reset through /proc/self/clear_refs after warm-up): the whole process's resident set, "
                                + "JVM and LibTorch included; step_start_bytes: VmRSS then",
                step.optimizer().stateBytes());   // this rank's: under ZeRO stage 1 its shard
        BenchResult.Distributed distributed = null;
        if (group.active()) {
            double comm = Arrays.stream(commTimes).sum() / o.steps();
            double exposed = Arrays.stream(exposedTimes).sum() / o.steps();
            distributed = new BenchResult.Distributed(group.rank(), group.worldSize(), group.kind(), dp.bucketCount(), dp.zero() != null ? 1 : 0,
                    step.optimizer().stateBytes(), (long) group.allReduceSum(new double[] {step.optimizer().stateBytes()},
                    "all-reduce of the optimizer state's bytes")[0], tokensPerS,
                    group.allReduceSum(new double[] {tokensPerS}, "all-reduce of the bench's rates")[0], comm, comm / mean, exposed,
                    exposed / mean, (double) startedEarly / o.steps(), aloneTokensPerS, tokensPerS / aloneTokensPerS,
                    "tokens_per_s_alone: the same steps on this rank without the all-reduce, all ranks running at once "
                    + "(the 1-rank rate when each rank has a device of its own; on a shared CPU the ranks also share the cores); "
                    + "scaling_efficiency = tokens_per_s_rank / tokens_per_s_alone; allreduce time runs from the first bucket's "
                    + "packing to the last one's unpacking, partly during the backward; allreduce_exposed is the part the step "
                    + "waits for after the backward returned; both include the token-count and loss all-reduces, and under ZeRO "
                    + "stage 1 the broadcast of the updated weights from their owners (under ZeRO the alone steps too update only "
                    + "this rank's shard)");
            dp.close();
        }
        return new BenchResult("jtune", 1, windowStart, config, new BenchResult.Steps(o.warmup(), o.steps(), skipped),
                new BenchResult.StepTime(percentile(sorted, 50), percentile(sorted, 10), percentile(sorted, 90), mean, sorted[0],
                        sorted[sorted.length - 1]),
                tokensPerS,
                new BenchResult.FlopsPerToken(fullFlops, loraFlops, Flops.attention(modelConfig, seqLen),
                        loraFlops != null ? "lora_adjusted" : "full_6n_attn"),
                new BenchResult.ModelTflops(fullFlops * tokensPerS / 1e12, loraFlops == null ? null : loraFlops * tokensPerS / 1e12),
                new BenchResult.Gemm(gemmN, gemmFp32, gemmBf16, bf16Compute ? "bf16" : "fp32", gemmBf16 > gemmFp32 ? "bf16" : "fp32"),
                new BenchResult.Peak(deviceName, datasheet, device.is_cuda()
                        ? (datasheet == null ? "device not in the datasheet table" : "NVIDIA datasheet, dense (no sparsity)")
                        : "no datasheet peak for CPUs; use the measured GEMM"),
                new BenchResult.Mfu(loraFlops != null ? "lora_adjusted" : "full_6n_attn", datasheet == null ? null : model / datasheet,
                        model / gemmSame, model / gemmBest, fullFlops * tokensPerS / 1e12 / gemmSame),
                memory,
                // CPU the rest of the machine used meanwhile (other processes): a busy neighbour makes the numbers unreliable
                new BenchResult.CpuTime(wall, (cpu1 - cpu0) / 1e9, (thread1 - thread0) / 1e9, Runtime.getRuntime().availableProcessors(),
                        busy0 >= 0 && busy1 >= 0 ? Math.max(0, busy1 - busy0 - (cpu1 - cpu0) / 1e9) : null),
                new BenchResult.Loss(losses.get(0), losses.get(losses.size() - 1)), profile, distributed);
    }

    /** Busy CPU seconds of the whole machine since boot (/proc/stat: all but idle and iowait), or -1. */
    static double machineBusySeconds() {
        try {
            String[] f = java.nio.file.Files.readAllLines(Path.of("/proc/stat")).get(0).trim().split("\\s+");
            long busy = 0;
            for (int i = 1; i < f.length && i <= 8; i++) if (i != 4 && i != 5) busy += Long.parseLong(f[i]);
            return busy / 100.0;   // USER_HZ
        } catch (IOException | RuntimeException e) {
            return -1;
        }
    }

    static double percentile(double[] sorted, double p) {
        if (sorted.length == 1) return sorted[0];
        double pos = p / 100.0 * (sorted.length - 1);
        int lo = (int) Math.floor(pos), hi = (int) Math.ceil(pos);
        return sorted[lo] + (sorted[hi] - sorted[lo]) * (pos - lo);
    }

    /** The result as a table for people, drawn from the same records {@code --json} writes. */
    public static String table(BenchResult j) {
        StringBuilder b = new StringBuilder();
        BenchResult.Config c = j.config();
        row(b, "model", c.source() + ": " + c.modelType() + ", " + String.format(Locale.ROOT, "%,d", c.parameters()) + " parameters ("
                + String.format(Locale.ROOT, "%,d", c.matmulParameters()) + " in matrix products)");
        row(b, "training", c.mode() + (c.loraR() != null ? " r=" + c.loraR() + " on " + c.loraModules() + " modules" : "")
                + ", " + String.format(Locale.ROOT, "%,d", c.trainableParameters()) + " trainable, " + c.precision());
        BenchResult.Quantization q = c.quantization();
        if (c.frozenBaseBytes() != null) {
            row(b, "frozen base", String.format(Locale.ROOT, "%.1f MiB (%.3f B/parameter)%s", c.frozenBaseBytes() / 1048576.0,
                    c.frozenBaseBytesPerParameter(), q == null ? ""
                            : String.format(Locale.ROOT, ", %s%s on %d linear layers (%.4f B/quantized parameter, compute %s)",
                            q.type(), q.doubleQuant() ? " + double quant" : "", q.quantizedLinearLayers(), q.quantizedBytesPerParameter(),
                            q.computeDtype())));
        }
        if (q != null) {
            row(b, "dequantization", String.format(Locale.ROOT, "%.4f s per pass × %d passes per step = %.1f%% of the median step",
                    q.dequantizeSecondsPerPass(), q.dequantizePassesPerStep(), 100 * q.dequantizeShareOfStep()));
        }
        row(b, "batch", String.format(Locale.ROOT, "%d × %d tokens × %d accumulation = %,d tokens/step",
                c.microBatch(), c.seqLen(), c.gradAccum(), c.tokensPerStep()));
        row(b, "device", c.deviceName() + " (" + c.device() + ", " + c.intraOpThreads() + " intra-op threads)");
        var paths = new java.util.ArrayList<String>();
        c.kernels().forEach((k, v) -> { if (!k.equals("mode")) paths.add(k + ": " + v); });
        row(b, "kernels", c.kernels().get("mode") + "; " + String.join("; ", paths));
        BenchResult.StepTime st = j.stepTimeS();
        row(b, "step time", String.format(Locale.ROOT, "median %.4f s (p10 %.4f, p90 %.4f) over %d steps after %d warm-up",
                st.median(), st.p10(), st.p90(), j.steps().timed(), j.steps().warmup()));
        row(b, "tokens/s", String.format(Locale.ROOT, "%,.0f per device", j.tokensPerS()));
        BenchResult.FlopsPerToken f = j.flopsPerToken();
        row(b, "FLOPs/token", String.format(Locale.ROOT, "%s (6N + attention)%s", sci(f.full6nAttn()),
                f.loraAdjusted() == null ? "" : ", " + sci(f.loraAdjusted()) + " (LoRA-adjusted: 4N + adapters + attention)"));
        BenchResult.ModelTflops mf = j.modelTflops();
        row(b, "model FLOP/s", String.format(Locale.ROOT, "%.4f TFLOP/s (6N)%s", mf.full6nAttn(),
                mf.loraAdjusted() == null ? "" : String.format(Locale.ROOT, ", %.4f TFLOP/s (LoRA-adjusted)", mf.loraAdjusted())));
        BenchResult.Gemm g = j.gemm();
        row(b, "measured GEMM", String.format(Locale.ROOT, "%d³: fp32 %.3f TFLOP/s, bf16 %.3f TFLOP/s", g.size(), g.fp32Tflops(), g.bf16Tflops()));
        BenchResult.Peak pk = j.peak();
        row(b, "datasheet peak", pk.datasheetBf16DenseTflops() == null ? "none (" + pk.note() + ")"
                : pk.datasheetBf16DenseTflops() + " TFLOP/s bf16 dense");
        BenchResult.Mfu mfu = j.mfu();
        row(b, "MFU", String.format(Locale.ROOT, "%.1f%% of the %s GEMM, %.1f%% of the best GEMM%s (%s FLOPs)",
                100 * mfu.vsGemmSameDtype(), g.sameDtype(), 100 * mfu.vsGemmBest(),
                mfu.vsDatasheet() == null ? "" : String.format(Locale.ROOT, ", %.1f%% of the datasheet", 100 * mfu.vsDatasheet()),
                mfu.flops()));
        BenchResult.Memory m = j.memory();
        row(b, "load memory", m.peakBytes() == null ? "unknown (" + m.note() + ")"
                : String.format(Locale.ROOT, "%.1f MiB peak, load and warm-up, %s%s", m.peakBytes() / 1048576.0, m.kind(),
                m.peakReservedBytes() == null ? "" : String.format(Locale.ROOT, " (%.1f MiB reserved)", m.peakReservedBytes() / 1048576.0)));
        row(b, "step memory", m.stepPeakBytes() == null ? "unknown (" + m.stepNote() + ")"
                : String.format(Locale.ROOT, "%.1f MiB peak over the timed steps (%.1f MiB in use when they started)",
                m.stepPeakBytes() / 1048576.0, m.stepStartBytes() == null ? 0.0 : m.stepStartBytes() / 1048576.0));
        BenchResult.CpuTime cpu = j.cpuTimeS();
        row(b, "CPU time", String.format(Locale.ROOT, "process %.2f s, bench thread %.2f s, other processes %.2f s, over %.2f s wall on %d cores",
                cpu.process(), cpu.benchThread(), cpu.otherProcesses() == null ? Double.NaN : cpu.otherProcesses(), cpu.wall(), cpu.cores()));
        row(b, "loss", String.format(Locale.ROOT, "%.4f -> %.4f", j.loss().first(), j.loss().last()));
        BenchResult.Distributed d = j.distributed();
        if (d != null) {
            row(b, "data parallel", String.format(Locale.ROOT, "rank %d of %d (%s, %d gradient buckets, %.1f started during the backward): "
                            + "%,.0f tokens/s on this rank, %,.0f all ranks; all-reduce %.2f ms/step (%.1f%% of the step), exposed after "
                            + "the backward %.2f ms/step (%.1f%%); alone %,.0f tokens/s: scaling efficiency %.1f%%",
                    d.rank(), d.worldSize(), d.backend(), d.gradientBuckets(), d.bucketsStartedDuringBackward(), d.tokensPerSRank(),
                    d.tokensPerSGlobal(), 1e3 * d.allreduceSPerStep(), 100 * d.allreduceShare(), 1e3 * d.allreduceExposedSPerStep(),
                    100 * d.allreduceExposedShare(), d.tokensPerSAlone(), 100 * d.scalingEfficiency()));
            long rank = d.optimizerStateBytesRank(), all = d.optimizerStateBytesAllRanks();
            row(b, "optimizer state", d.zeroStage() == 1
                    ? String.format(Locale.ROOT, "%.1f MiB on this rank, %.1f MiB on all %d ranks together (ZeRO stage 1: sharded, %.1f%% here)",
                            rank / 1048576.0, all / 1048576.0, d.worldSize(), 100.0 * rank / all)
                    : String.format(Locale.ROOT, "%.1f MiB on this rank, the whole state (plain data parallel: every rank keeps all of it)", rank / 1048576.0));
        } else {
            row(b, "optimizer state", String.format(Locale.ROOT, "%.1f MiB (AdamW's two moments)", m.optimizerStateBytes() / 1048576.0));
        }
        JfrProfile.Result p = j.profile();
        if (p != null) {
            row(b, "profile", String.format(Locale.ROOT, "%d samples of the bench thread: LibTorch ops %d, freeing tensors %d, Java %d, "
                    + "JavaCPP %d, other native %d; Java-side %.1f%% (%.1f%% counting the frees) (%s)",
                    p.samples(), p.libtorch(), p.free(), p.java(), p.javacpp(), p.otherNative(), 100 * p.javaSideFraction(),
                    100 * p.javaSideFractionWithFree(), p.file()));
            for (Map<String, Long> top : List.of(p.topLibtorch(), p.topJava(), p.topOther())) {
                top.forEach((k, v) -> b.append(String.format(Locale.ROOT, "  %6d  %s%n", v, k)));
            }
        }
        return b.toString();
    }

    private static void row(StringBuilder b, String k, String v) {
        b.append(String.format(Locale.ROOT, "%-15s %s%n", k, v));
    }

    private static String sci(double v) {
        return String.format(Locale.ROOT, "%.4g", v);
    }
}
