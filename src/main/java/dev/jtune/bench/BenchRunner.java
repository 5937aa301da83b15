package dev.jtune.bench;

import dev.jtune.config.Precision;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ObjectNode;
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
import dev.jtune.dist.DataParallel;
import dev.jtune.dist.DistGroup;
import dev.jtune.dist.LaunchEnv;
import dev.jtune.train.TrainStep;
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
 * The JSON it writes has the same shape as bench/peer/hf_peft_bench.py's.
 */
public final class BenchRunner {
    private static final ObjectMapper JSON = new ObjectMapper();

    /** What to run. {@code experiment} or {@code shape} (exactly one); the others override or default. */
    public record Options(Path experiment, String shape, String arch, String precision, Integer loraR, List<String> loraTargets,
                          Integer seqLen, Integer microBatch, Integer gradAccum, String device, int steps, int warmup,
                          Integer gemmSize, Path profile, int profilePeriodMs, long seed, String kernels,
                          boolean gradientCheckpointing, String quantization, Integer zeroStage, String method) {
    }

    private BenchRunner() {}

    public static ObjectNode run(Options o) {
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
        dev.jtune.train.StepLoss.Factory method = o.method() == null ? null : preferenceLoss(o.method());
        // --zero-stage, --gradient-checkpointing and --method over the experiment's (or the defaults') settings
        UnaryOperator<TrainStep.Settings> flags = s -> {
            if (o.zeroStage() != null) s = s.withZeroStage(o.zeroStage());
            if (o.gradientCheckpointing()) s = s.withCheckpointing(new dev.jtune.train.ActivationCheckpointing.Settings(true, false));
            if (method != null) s = s.withLoss(method);
            return s;
        };
        // under torchrun or --nproc-per-node: this process is one rank; it reports its own numbers and the all-reduce's
        Optional<LaunchEnv> launch = LaunchEnv.fromEnvironment(System.getenv());

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
    static dev.jtune.train.StepLoss.Factory preferenceLoss(String method) {
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

    private static ObjectNode measure(Options o, TrainStep step, ModelConfig config, int seqLen, int micro, int accum, String source,
                                      DistGroup group) {
        Device device = step.model().device();
        // each rank its own batches (as its shard would be), of the same shape
        boolean pairs = o.method() != null && !o.method().equalsIgnoreCase("sft");
        List<Batch> batches = pairs ? syntheticPairs(config.vocabSize(), seqLen, micro, accum, o.seed() + group.rank())
                : syntheticBatches(config.vocabSize(), seqLen, micro, accum, o.seed() + group.rank());
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
        double fullFlops = Flops.fullPerToken(config, seqLen);
        Double loraFlops = step.lora() ? Flops.loraPerToken(config, seqLen, adapterParams) : null;
        double mfuFlops = loraFlops != null ? loraFlops : fullFlops;

        ObjectNode j = JSON.createObjectNode();
        j.put("tool", "jtune");
        j.put("schema", 1);
        j.put("time", windowStart);
        ObjectNode c = j.putObject("config");
        c.put("source", source);
        c.put("shape", o.shape());
        c.put("model_type", config.modelType());
        c.put("parameters", Flops.parameters(config));
        c.put("matmul_parameters", Flops.matmulParameters(config));
        long trainable = 0;
        for (Tensor t : step.trainableParameters().values()) trainable += t.numel();
        c.put("trainable_parameters", trainable);
        c.put("mode", step.lora() ? "lora" : "full");
        if (step.lora()) {
            var first = step.adapters().values().iterator().next();
            c.put("lora_r", first.a().size(0));
            c.put("lora_modules", step.adapters().size());
        }
        if (step.lora()) {
            long baseBytes = QuantizedModelLoader.baseBytes(step.model());
            c.put("frozen_base_bytes", baseBytes);
            c.put("frozen_base_bytes_per_parameter", (double) baseBytes / Flops.parameters(config));
        }
        Double dequant = dequantizeSecondsPerPass(step.model());
        if (dequant != null) {
            QuantizedProjection any = (QuantizedProjection) step.model().frozenLinears().values().iterator().next();
            ObjectNode q = c.putObject("quantization");
            q.put("type", any.weight().state().type().bnbName());
            q.put("double_quant", any.weight().state().nested());
            q.put("compute_dtype", dev.jtune.util.Tensors.hfName(any.compute()));
            q.put("quantized_linear_layers", step.model().frozenLinears().size());
            long quantizedParams = 0, quantizedBytes = 0;
            for (dev.jtune.model.FrozenLinear f : step.model().frozenLinears().values()) {
                QuantizedProjection p = (QuantizedProjection) f;
                quantizedParams += p.weight().state().numel();
                quantizedBytes += p.weight().storageBytes() - p.weight().state().toJsonBytes().length;
            }
            q.put("quantized_parameters", quantizedParams);
            q.put("quantized_bytes_per_parameter", (double) quantizedBytes / quantizedParams);
            // each micro-batch dequantizes every weight in the forward and again in the backward (+1 recompute with checkpointing)
            int passes = accum * (2 + (step.settings().checkpointing().enabled() ? 1 : 0));
            double median = percentile(sorted, 50);
            q.put("dequantize_seconds_per_pass", dequant);
            q.put("dequantize_passes_per_step", passes);
            q.put("dequantize_share_of_step", dequant * passes / median);
            q.put("note", "one pass = every 4-bit weight dequantized to the compute dtype once, timed alone after the steps (best of 3)");
        }
        c.put("precision", step.precision().label());
        c.put("seq_len", seqLen);
        c.put("micro_batch", micro);
        c.put("grad_accum", accum);
        c.put("tokens_per_step", tokensPerStep);
        c.put("gradient_checkpointing", step.settings().checkpointing().enabled());
        c.put("method", o.method() == null ? "sft" : o.method().toLowerCase(Locale.ROOT));   // --method: the loss timed
        c.put("device", device.is_cuda() ? "cuda" : "cpu");
        c.put("device_name", deviceName);
        c.put("intra_op_threads", torch.get_num_threads());
        c.put("attention", "sdpa (LibTorch scaled_dot_product_attention, causal)");
        ObjectNode k = c.putObject("kernels");
        k.put("mode", step.model().kernels().mode().key());
        step.model().kernels().paths(device.is_cuda()).forEach(k::put);
        ObjectNode s = j.putObject("steps");
        s.put("warmup", o.warmup());
        s.put("timed", o.steps());
        s.put("skipped_non_finite", skipped);
        ObjectNode st = j.putObject("step_time_s");
        st.put("median", percentile(sorted, 50));
        st.put("p10", percentile(sorted, 10));
        st.put("p90", percentile(sorted, 90));
        st.put("mean", Arrays.stream(times).average().orElse(Double.NaN));
        st.put("min", sorted[0]);
        st.put("max", sorted[sorted.length - 1]);
        j.put("tokens_per_s", tokensPerS);
        ObjectNode f = j.putObject("flops_per_token");
        f.put("full_6n_attn", fullFlops);
        if (loraFlops != null) f.put("lora_adjusted", loraFlops);
        else f.putNull("lora_adjusted");
        f.put("attention", Flops.attention(config, seqLen));
        f.put("used_for_mfu", loraFlops != null ? "lora_adjusted" : "full_6n_attn");
        ObjectNode mf = j.putObject("model_tflops");
        mf.put("full_6n_attn", fullFlops * tokensPerS / 1e12);
        if (loraFlops != null) mf.put("lora_adjusted", loraFlops * tokensPerS / 1e12);
        else mf.putNull("lora_adjusted");
        ObjectNode g = j.putObject("gemm");
        g.put("size", gemmN);
        g.put("fp32_tflops", gemmFp32);
        g.put("bf16_tflops", gemmBf16);
        g.put("same_dtype", bf16Compute ? "bf16" : "fp32");
        g.put("faster", gemmBf16 > gemmFp32 ? "bf16" : "fp32");
        ObjectNode pk = j.putObject("peak");
        pk.put("device", deviceName);
        if (datasheet != null) pk.put("datasheet_bf16_dense_tflops", datasheet);
        else pk.putNull("datasheet_bf16_dense_tflops");
        pk.put("note", device.is_cuda() ? (datasheet == null ? "device not in the datasheet table" : "NVIDIA datasheet, dense (no sparsity)")
                : "no datasheet peak for CPUs; use the measured GEMM");
        double model = mfuFlops * tokensPerS / 1e12;
        ObjectNode mfu = j.putObject("mfu");
        mfu.put("flops", loraFlops != null ? "lora_adjusted" : "full_6n_attn");
        if (datasheet != null) mfu.put("vs_datasheet", model / datasheet);
        else mfu.putNull("vs_datasheet");
        mfu.put("vs_gemm_same_dtype", model / gemmSame);
        mfu.put("vs_gemm_best", model / gemmBest);
        mfu.put("full_6n_attn_vs_gemm_same_dtype", fullFlops * tokensPerS / 1e12 / gemmSame);
        ObjectNode m = j.putObject("memory");
        m.put("kind", mem.kind());
        if (mem.peakBytes() != null) m.put("peak_bytes", mem.peakBytes());
        else m.putNull("peak_bytes");
        if (mem.peakReservedBytes() != null) m.put("peak_reserved_bytes", mem.peakReservedBytes());
        else m.putNull("peak_reserved_bytes");
        m.put("note", mem.note() + "; measured after the warm-up steps, before the timed ones (load + warm-up)");
        // the timed steps alone: the peak since the window was reset after warm-up
        Long stepPeak = window.resetNote() == null ? stepMem.peakBytes() : null;
        if (stepPeak != null) m.put("step_peak_bytes", stepPeak);
        else m.putNull("step_peak_bytes");
        if (window.resetNote() == null && stepMem.peakReservedBytes() != null) m.put("step_peak_reserved_bytes", stepMem.peakReservedBytes());
        else m.putNull("step_peak_reserved_bytes");
        if (window.startBytes() != null) m.put("step_start_bytes", window.startBytes());
        else m.putNull("step_start_bytes");
        m.put("step_note", window.resetNote() != null ? window.resetNote()
                : device.is_cuda() ? "peak allocated bytes over the timed steps (peak statistics reset after warm-up); step_start_bytes: allocated then"
                : "VmHWM over the timed steps (reset through /proc/self/clear_refs after warm-up): the whole process's resident set, "
                        + "JVM and LibTorch included; step_start_bytes: VmRSS then");
        m.put("optimizer_state_bytes", step.optimizer().stateBytes());   // this rank's: under ZeRO stage 1 its shard
        ObjectNode cpu = j.putObject("cpu_time_s");
        cpu.put("wall", wall);
        cpu.put("process", (cpu1 - cpu0) / 1e9);
        cpu.put("bench_thread", (thread1 - thread0) / 1e9);
        cpu.put("cores", Runtime.getRuntime().availableProcessors());
        // CPU the rest of the machine used meanwhile (other processes): a busy neighbour makes the numbers unreliable
        if (busy0 >= 0 && busy1 >= 0) cpu.put("other_processes", Math.max(0, busy1 - busy0 - (cpu1 - cpu0) / 1e9));
        ObjectNode l = j.putObject("loss");
        l.put("first", losses.get(0));
        l.put("last", losses.get(losses.size() - 1));
        if (profile != null) j.set("profile", JSON.valueToTree(profile));
        if (group.active()) {
            ObjectNode d = j.putObject("distributed");
            d.put("rank", group.rank());
            d.put("world_size", group.worldSize());
            d.put("backend", group.kind());
            d.put("gradient_buckets", dp.bucketCount());
            d.put("zero_stage", dp.zero() != null ? 1 : 0);
            d.put("optimizer_state_bytes_rank", step.optimizer().stateBytes());
            d.put("optimizer_state_bytes_all_ranks", (long) group.allReduceSum(new double[] {step.optimizer().stateBytes()},
                    "all-reduce of the optimizer state's bytes")[0]);
            d.put("tokens_per_s_rank", tokensPerS);
            d.put("tokens_per_s_global", group.allReduceSum(new double[] {tokensPerS}, "all-reduce of the bench's rates")[0]);
            double comm = Arrays.stream(commTimes).sum() / o.steps();
            d.put("allreduce_s_per_step", comm);
            d.put("allreduce_share", comm / Arrays.stream(times).average().orElse(Double.NaN));
            double exposed = Arrays.stream(exposedTimes).sum() / o.steps();
            d.put("allreduce_exposed_s_per_step", exposed);
            d.put("allreduce_exposed_share", exposed / Arrays.stream(times).average().orElse(Double.NaN));
            d.put("buckets_started_during_backward", (double) startedEarly / o.steps());
            d.put("tokens_per_s_alone", aloneTokensPerS);
            d.put("scaling_efficiency", tokensPerS / aloneTokensPerS);
            d.put("note", "tokens_per_s_alone: the same steps on this rank without the all-reduce, all ranks running at once "
                    + "(the 1-rank rate when each rank has a device of its own; on a shared CPU the ranks also share the cores); "
                    + "scaling_efficiency = tokens_per_s_rank / tokens_per_s_alone; allreduce time runs from the first bucket's "
                    + "packing to the last one's unpacking, partly during the backward; allreduce_exposed is the part the step "
                    + "waits for after the backward returned; both include the token-count and loss all-reduces, and under ZeRO "
                    + "stage 1 the broadcast of the updated weights from their owners (under ZeRO the alone steps too update only "
                    + "this rank's shard)");
            dp.close();
        }
        return j;
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

    /** The result as a table for people. */
    public static String table(ObjectNode j) {
        StringBuilder b = new StringBuilder();
        var c = j.get("config");
        row(b, "model", c.get("source").asText() + ": " + c.get("model_type").asText() + ", "
                + String.format(Locale.ROOT, "%,d", c.get("parameters").asLong()) + " parameters ("
                + String.format(Locale.ROOT, "%,d", c.get("matmul_parameters").asLong()) + " in matrix products)");
        row(b, "training", c.get("mode").asText() + (c.has("lora_r") ? " r=" + c.get("lora_r").asInt() + " on " + c.get("lora_modules").asInt() + " modules" : "")
                + ", " + String.format(Locale.ROOT, "%,d", c.get("trainable_parameters").asLong()) + " trainable, " + c.get("precision").asText());
        if (c.has("frozen_base_bytes")) {
            row(b, "frozen base", String.format(Locale.ROOT, "%.1f MiB (%.3f B/parameter)%s", c.get("frozen_base_bytes").asLong() / 1048576.0,
                    c.get("frozen_base_bytes_per_parameter").asDouble(), !c.has("quantization") ? ""
                            : String.format(Locale.ROOT, ", %s%s on %d linear layers (%.4f B/quantized parameter, compute %s)",
                            c.get("quantization").get("type").asText(), c.get("quantization").get("double_quant").asBoolean() ? " + double quant" : "",
                            c.get("quantization").get("quantized_linear_layers").asInt(),
                            c.get("quantization").get("quantized_bytes_per_parameter").asDouble(), c.get("quantization").get("compute_dtype").asText())));
        }
        if (c.has("quantization")) {
            var q = c.get("quantization");
            row(b, "dequantization", String.format(Locale.ROOT, "%.4f s per pass × %d passes per step = %.1f%% of the median step",
                    q.get("dequantize_seconds_per_pass").asDouble(), q.get("dequantize_passes_per_step").asInt(),
                    100 * q.get("dequantize_share_of_step").asDouble()));
        }
        row(b, "batch", String.format(Locale.ROOT, "%d × %d tokens × %d accumulation = %,d tokens/step",
                c.get("micro_batch").asInt(), c.get("seq_len").asInt(), c.get("grad_accum").asInt(), c.get("tokens_per_step").asLong()));
        row(b, "device", c.get("device_name").asText() + " (" + c.get("device").asText() + ", " + c.get("intra_op_threads").asInt() + " intra-op threads)");
        var kernels = c.get("kernels");
        if (kernels != null) {
            var paths = new java.util.ArrayList<String>();
            kernels.fields().forEachRemaining(e -> { if (!e.getKey().equals("mode")) paths.add(e.getKey() + ": " + e.getValue().asText()); });
            row(b, "kernels", kernels.get("mode").asText() + "; " + String.join("; ", paths));
        }
        var st = j.get("step_time_s");
        row(b, "step time", String.format(Locale.ROOT, "median %.4f s (p10 %.4f, p90 %.4f) over %d steps after %d warm-up",
                st.get("median").asDouble(), st.get("p10").asDouble(), st.get("p90").asDouble(),
                j.get("steps").get("timed").asInt(), j.get("steps").get("warmup").asInt()));
        row(b, "tokens/s", String.format(Locale.ROOT, "%,.0f per device", j.get("tokens_per_s").asDouble()));
        var f = j.get("flops_per_token");
        row(b, "FLOPs/token", String.format(Locale.ROOT, "%s (6N + attention)%s", sci(f.get("full_6n_attn").asDouble()),
                f.get("lora_adjusted").isNull() ? "" : ", " + sci(f.get("lora_adjusted").asDouble()) + " (LoRA-adjusted: 4N + adapters + attention)"));
        var mf = j.get("model_tflops");
        row(b, "model FLOP/s", String.format(Locale.ROOT, "%.4f TFLOP/s (6N)%s", mf.get("full_6n_attn").asDouble(),
                mf.get("lora_adjusted").isNull() ? "" : String.format(Locale.ROOT, ", %.4f TFLOP/s (LoRA-adjusted)", mf.get("lora_adjusted").asDouble())));
        var g = j.get("gemm");
        row(b, "measured GEMM", String.format(Locale.ROOT, "%d³: fp32 %.3f TFLOP/s, bf16 %.3f TFLOP/s", g.get("size").asInt(),
                g.get("fp32_tflops").asDouble(), g.get("bf16_tflops").asDouble()));
        var pk = j.get("peak");
        row(b, "datasheet peak", pk.get("datasheet_bf16_dense_tflops").isNull() ? "none (" + pk.get("note").asText() + ")"
                : pk.get("datasheet_bf16_dense_tflops").asDouble() + " TFLOP/s bf16 dense");
        var mfu = j.get("mfu");
        row(b, "MFU", String.format(Locale.ROOT, "%.1f%% of the %s GEMM, %.1f%% of the best GEMM%s (%s FLOPs)",
                100 * mfu.get("vs_gemm_same_dtype").asDouble(), g.get("same_dtype").asText(), 100 * mfu.get("vs_gemm_best").asDouble(),
                mfu.get("vs_datasheet").isNull() ? "" : String.format(Locale.ROOT, ", %.1f%% of the datasheet", 100 * mfu.get("vs_datasheet").asDouble()),
                mfu.get("flops").asText()));
        var m = j.get("memory");
        row(b, "load memory", m.get("peak_bytes").isNull() ? "unknown (" + m.get("note").asText() + ")"
                : String.format(Locale.ROOT, "%.1f MiB peak, load and warm-up, %s%s", m.get("peak_bytes").asLong() / 1048576.0, m.get("kind").asText(),
                m.get("peak_reserved_bytes").isNull() ? "" : String.format(Locale.ROOT, " (%.1f MiB reserved)", m.get("peak_reserved_bytes").asLong() / 1048576.0)));
        row(b, "step memory", m.path("step_peak_bytes").isNull() ? "unknown (" + m.path("step_note").asText() + ")"
                : String.format(Locale.ROOT, "%.1f MiB peak over the timed steps (%.1f MiB in use when they started)",
                m.get("step_peak_bytes").asLong() / 1048576.0, m.path("step_start_bytes").asLong() / 1048576.0));
        var cpu = j.get("cpu_time_s");
        row(b, "CPU time", String.format(Locale.ROOT, "process %.2f s, bench thread %.2f s, other processes %.2f s, over %.2f s wall on %d cores",
                cpu.get("process").asDouble(), cpu.get("bench_thread").asDouble(), cpu.path("other_processes").asDouble(Double.NaN),
                cpu.get("wall").asDouble(), cpu.get("cores").asInt()));
        row(b, "loss", String.format(Locale.ROOT, "%.4f -> %.4f", j.get("loss").get("first").asDouble(), j.get("loss").get("last").asDouble()));
        if (j.has("distributed")) {
            var d = j.get("distributed");
            row(b, "data parallel", String.format(Locale.ROOT, "rank %d of %d (%s, %d gradient buckets, %.1f started during the backward): "
                            + "%,.0f tokens/s on this rank, %,.0f all ranks; all-reduce %.2f ms/step (%.1f%% of the step), exposed after "
                            + "the backward %.2f ms/step (%.1f%%); alone %,.0f tokens/s: scaling efficiency %.1f%%",
                    d.get("rank").asInt(), d.get("world_size").asInt(), d.get("backend").asText(), d.get("gradient_buckets").asInt(),
                    d.path("buckets_started_during_backward").asDouble(Double.NaN),
                    d.get("tokens_per_s_rank").asDouble(), d.get("tokens_per_s_global").asDouble(), 1e3 * d.get("allreduce_s_per_step").asDouble(),
                    100 * d.get("allreduce_share").asDouble(), 1e3 * d.path("allreduce_exposed_s_per_step").asDouble(Double.NaN),
                    100 * d.path("allreduce_exposed_share").asDouble(Double.NaN), d.get("tokens_per_s_alone").asDouble(),
                    100 * d.get("scaling_efficiency").asDouble()));
            long rank = d.get("optimizer_state_bytes_rank").asLong(), all = d.get("optimizer_state_bytes_all_ranks").asLong();
            row(b, "optimizer state", d.get("zero_stage").asInt() == 1
                    ? String.format(Locale.ROOT, "%.1f MiB on this rank, %.1f MiB on all %d ranks together (ZeRO stage 1: sharded, %.1f%% here)",
                            rank / 1048576.0, all / 1048576.0, d.get("world_size").asInt(), 100.0 * rank / all)
                    : String.format(Locale.ROOT, "%.1f MiB on this rank, the whole state (plain data parallel: every rank keeps all of it)", rank / 1048576.0));
        } else if (j.path("memory").has("optimizer_state_bytes")) {
            row(b, "optimizer state", String.format(Locale.ROOT, "%.1f MiB (AdamW's two moments)", j.get("memory").get("optimizer_state_bytes").asLong() / 1048576.0));
        }
        if (j.has("profile")) {
            var p = j.get("profile");
            row(b, "profile", String.format(Locale.ROOT, "%d samples of the bench thread: LibTorch ops %d, freeing tensors %d, Java %d, "
                    + "JavaCPP %d, other native %d; Java-side %.1f%% (%.1f%% counting the frees) (%s)",
                    p.get("samples").asLong(), p.get("libtorch").asLong(), p.get("free").asLong(), p.get("java").asLong(), p.get("javacpp").asLong(),
                    p.get("otherNative").asLong(), 100 * p.get("javaSideFraction").asDouble(), 100 * p.get("javaSideFractionWithFree").asDouble(),
                    p.get("file").asText()));
            for (String k : new String[] {"topLibtorch", "topJava", "topOther"}) {
                p.get(k).fields().forEachRemaining(e -> b.append(String.format(Locale.ROOT, "  %6d  %s%n", e.getValue().asLong(), e.getKey())));
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
