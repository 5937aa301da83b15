package dev.jtune.cli;

import dev.jtune.bench.Shapes;
import dev.jtune.config.Experiment;
import dev.jtune.model.ModelConfig;
import dev.jtune.plan.DeviceMemory;
import dev.jtune.plan.PlanReport;
import dev.jtune.plan.PlanRequest;
import dev.jtune.config.Precision;
import dev.jtune.util.Devices;
import dev.jtune.util.UserError;
import org.bytedeco.pytorch.Device;
import picocli.CommandLine.Command;
import picocli.CommandLine.Option;
import picocli.CommandLine.Parameters;

import java.nio.file.Path;
import java.util.List;
import java.util.Locale;

@Command(name = "plan", mixinStandardHelpOptions = true,
        description = {"Predict the peak memory of a training step before loading anything: weights, autocast copies, gradients, "
                + "optimizer state, activations, the loss chunk and workspace headroom; whether the run fits, the longest sequence and "
                + "largest micro-batch that fit, and what to change when it does not.",
                "Either an experiment file (its model's config.json, max_seq_length, batch, LoRA and precision) or --shape. The memory is "
                        + "--memory, else $" + DeviceMemory.ENV + ", else detected (CUDA: total device memory; CPU: MemAvailable)."})
final class PlanCommand implements Runnable {
    @Parameters(index = "0", arity = "0..1", paramLabel = "EXPERIMENT", description = "An experiment YAML file (or use --shape).")
    Path experiment;

    @Option(names = "--shape", description = "A model shape, as jtune bench's: tiny, gpt2-124m, qwen2.5-0.5b, llama3.2-1b, llama3-8b.")
    String shape;

    @Option(names = "--seq-len", paramLabel = "N", description = "Tokens per row (with --shape; default 512).")
    Integer seqLen;

    @Option(names = "--micro-batch", paramLabel = "N", description = "Rows per micro-batch (with --shape; default 1).")
    Integer microBatch;

    @Option(names = "--lora-r", paramLabel = "N", description = "LoRA rank on all linear layers (with --shape); 0 or absent = full fine-tuning.")
    Integer loraR;

    @Option(names = "--precision", description = "fp32, bf16 or fp16 (with --shape). Default: bf16 on CUDA, fp32 on CPU.")
    String precision;

    @Option(names = "--device", description = "cpu or cuda (with --shape; default cpu). Only which kernels and memory; no device is needed.")
    String device;

    @Option(names = "--gradient-checkpointing", description = "Plan with activation checkpointing (with --shape; an experiment file says it with training.gradient_checkpointing).")
    boolean checkpointing;

    @Option(names = "--quantization", paramLabel = "nf4|fp4|none", description = "A 4-bit frozen base (QLoRA, with --shape and "
            + "--lora-r): bitsandbytes NF4/FP4 with double quantization (~0.52 B per quantized parameter; embeddings and head unquantized).")
    String quantization;

    @Option(names = "--world-size", paramLabel = "N", description = "Plan one rank of a data-parallel run of N ranks (nodes × "
            + "--nproc-per-node): each rank also holds the gradient buckets of the all-reduce (a flat copy of the gradients); with "
            + "ZeRO stage 1 (training.zero_stage: 1, or --zero-stage 1 with --shape) each rank keeps 1/N of the optimizer state. Default 1.")
    Integer worldSize;

    @Option(names = "--zero-stage", paramLabel = "0|1", description = "With --shape: 1 = ZeRO stage 1, the optimizer state sharded "
            + "across --world-size ranks; 0 (default) = plain data parallel (an experiment file says it with training.zero_stage).")
    Integer zeroStage;

    @Option(names = "--memory", paramLabel = "SIZE", description = "The memory to plan for, e.g. 24GiB or 80GB (default: detected).")
    String memory;

    @Option(names = "--json", description = "Print one JSON document instead of the table.")
    boolean json;

    @Override
    public void run() {
        if ((experiment == null) == (shape == null)) {
            throw new UserError("give either an experiment file or --shape (one of " + Shapes.names() + "), not " + (shape == null ? "neither" : "both"));
        }
        int world = worldSize == null ? 1 : worldSize;
        if (world < 1) throw new UserError("--world-size: must be at least 1, got " + world);
        if (zeroStage != null) checkZeroStage(zeroStage, "--zero-stage");
        PlanRequest r;
        String source;
        if (experiment != null) {
            if (seqLen != null || microBatch != null || loraR != null || precision != null || device != null || checkpointing
                    || quantization != null || zeroStage != null) {
                throw new UserError("--seq-len, --micro-batch, --lora-r, --precision, --device, --gradient-checkpointing, --quantization "
                        + "and --zero-stage go with --shape; with an experiment file, change it (or plan with --shape)");
            }
            r = PlanReport.request(Experiment.load(experiment, List.of()), world);
            source = experiment.toString();
        } else {
            ModelConfig config = Shapes.config(shape, null);
            int seq = seqLen == null ? 512 : seqLen;
            int micro = microBatch == null ? 1 : microBatch;
            if (seq < 2) throw new UserError("--seq-len: must be at least 2 (one next-token target), got " + seq);
            if (seq > config.maxPositions()) {
                throw new UserError("--seq-len " + seq + " is longer than the model supports (" + config.maxPositions() + " positions)");
            }
            if (micro < 1) throw new UserError("--micro-batch: must be at least 1, got " + micro);
            int r0 = loraR == null ? 0 : loraR;
            if (r0 < 0) throw new UserError("--lora-r: must be 0 (full fine-tuning) or more, got " + r0);
            String dev = device == null ? "cpu" : device.toLowerCase(Locale.ROOT);
            boolean cuda = switch (dev) {
                case "cpu" -> false;
                case "cuda" -> true;
                default -> {
                    if (dev.matches("cuda:\\d+")) yield true;
                    throw new UserError("--device: unknown device '" + device + "'; expected cpu or cuda");
                }
            };
            String p = precision == null ? (cuda ? "bf16" : "fp32") : precision.toLowerCase(Locale.ROOT);
            Precision mode = switch (p) {
                case "fp32" -> Precision.FP32;
                case "bf16" -> Precision.BF16;
                case "fp16" -> Precision.FP16;
                default -> throw new UserError("--precision: unknown value '" + precision + "'; expected fp32, bf16 or fp16");
            };
            r = new PlanRequest(config, seq, micro, 1, r0, List.of("all-linear"), mode, PlanRequest.defaultBaseBytes(mode), checkpointing, cuda);
            String qt = quantization == null ? "none" : quantization.toLowerCase(Locale.ROOT);
            if (!List.of("nf4", "fp4", "none").contains(qt)) {
                throw new UserError("--quantization: unknown value '" + quantization + "'; expected nf4, fp4 or none");
            }
            if (!qt.equals("none")) {
                if (r0 == 0) throw new UserError("--quantization " + qt + " needs --lora-r N: a 4-bit base is frozen (QLoRA trains adapters on it)");
                r = r.withFourBit(new PlanRequest.FourBit(true, PlanRequest.defaultBaseBytes(mode), List.of()));
            }
            if (zeroStage != null && zeroStage == 1) r = r.withOptimizerShards(world);
            r = r.withWorldSize(world);
            source = "shape " + shape;
        }
        int index = 0;
        if (r.cuda() && memory == null && System.getenv(DeviceMemory.ENV) == null) {
            Device d = Devices.parse(device != null ? device : "cuda", "--device");   // says so when CUDA is not available
            index = d.has_index() ? d.index() : 0;
        }
        PlanReport report = PlanReport.of(source, r, DeviceMemory.resolve(memory, r.cuda(), index));
        if (json) JsonOut.print(report.json());
        else System.out.print(report.table());
    }

    /** 0 or 1; ZeRO stages 2 and 3 are refused as training.zero_stage refuses them. */
    static void checkZeroStage(int stage, String flag) {
        if (stage == 0 || stage == 1) return;
        throw new UserError(flag + ": " + (stage == 2 || stage == 3 ? "ZeRO stage " + stage + " is not built in jtune; " : "")
                + "supported: 0 (plain data parallel) and 1 (optimizer state sharded across the ranks), got " + stage);
    }
}
