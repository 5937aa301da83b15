package dev.jtune.cli;

import dev.jtune.bench.BenchRunner;
import picocli.CommandLine;
import picocli.CommandLine.Command;
import picocli.CommandLine.Option;
import picocli.CommandLine.Parameters;

import java.nio.file.Path;
import java.util.List;

@Command(name = "bench", mixinStandardHelpOptions = true,
        description = {"Measure training throughput: optimizer steps on synthetic token batches, timed after warm-up with device "
                + "synchronisation; tokens/s, step time, model FLOPs per token (6N + attention, and LoRA-adjusted), MFU against the "
                + "datasheet peak and a matrix product measured in the same run, and peak memory.",
                "Either an experiment file (its model, precision, LoRA and batch settings; sequences of data.max_seq_length) or "
                        + "--shape for random weights of a real model's shape (no files needed)."})
final class BenchCommand implements Runnable, CommandLine.IExitCodeGenerator {
    @Parameters(index = "0", arity = "0..1", paramLabel = "EXPERIMENT", description = "An experiment YAML file (or use --shape).")
    Path experiment;

    @Option(names = "--shape", description = "Random weights of a model shape: tiny, gpt2-124m, qwen2.5-0.5b, llama3.2-1b, llama3-8b.")
    String shape;

    @Option(names = "--arch", description = "The architecture family the shape must be (llama or gpt2); default: the shape's own.")
    String arch;

    @Option(names = "--precision", description = "fp32 or bf16 (autocast). Default: bf16 on CUDA, fp32 on CPU.")
    String precision;

    @Option(names = "--lora-r", paramLabel = "N", description = "LoRA rank (alpha 2N, no dropout); 0 or absent = full fine-tuning.")
    Integer loraR;

    @Option(names = "--lora-targets", split = ",", paramLabel = "MODULES", description = "Modules to adapt (default all-linear), e.g. q_proj,v_proj.")
    List<String> loraTargets;

    @Option(names = "--seq-len", paramLabel = "N", description = "Tokens per row (default: data.max_seq_length, or 512 with --shape).")
    Integer seqLen;

    @Option(names = "--micro-batch", paramLabel = "N", description = "Rows per micro-batch (default: per_device_train_batch_size, or 1).")
    Integer microBatch;

    @Option(names = "--grad-accum", paramLabel = "N", description = "Micro-batches per optimizer step (default: the experiment's, or 1).")
    Integer gradAccum;

    @Option(names = "--device", description = "cpu or cuda (with --shape; default cpu).")
    String device;

    @Option(names = "--steps", defaultValue = "10", description = "Timed optimizer steps. Default: ${DEFAULT-VALUE}.")
    int steps;

    @Option(names = "--warmup", defaultValue = "3", description = "Untimed optimizer steps first. Default: ${DEFAULT-VALUE}.")
    int warmup;

    @Option(names = "--gemm-size", paramLabel = "N", description = "Side of the reference matrix product (default 8192 on CUDA, 2048 on CPU).")
    Integer gemmSize;

    @Option(names = "--profile", paramLabel = "FILE.jfr", description = "Record the timed steps with JFR (execution and native-method samples) and report where the bench thread's time goes.")
    Path profile;

    @Option(names = "--profile-period-ms", defaultValue = "10", description = "JFR sampling period. Default: ${DEFAULT-VALUE}.")
    int profilePeriodMs;

    @Option(names = "--seed", defaultValue = "0", description = "Seed for weights and tokens. Default: ${DEFAULT-VALUE}.")
    long seed;

    @Option(names = "--kernels", paramLabel = "auto|off", description = "jtune's fused CUDA kernels where they apply (auto) or LibTorch only (off). Default: the experiment's training.kernels, or auto.")
    String kernels;

    @Option(names = "--gradient-checkpointing", description = "Activation checkpointing (training.gradient_checkpointing) on; default: the experiment's, or off.")
    boolean gradientCheckpointing;

    @Option(names = "--quantization", paramLabel = "nf4|fp4|none", description = "A 4-bit frozen base (QLoRA, with --lora-r): "
            + "bitsandbytes NF4 or FP4 with double quantization, compute in bf16 under bf16 autocast (else fp32); random weights are "
            + "drawn and quantized tensor by tensor. Reports the base's bytes and the dequantization's share of the step. Default: none.")
    String quantization;

    @Option(names = "--zero-stage", paramLabel = "0|1", description = "With --nproc-per-node (or under torchrun): 1 = ZeRO stage 1, "
            + "each rank keeps and steps only its shard of the optimizer state (reported per rank); 0 = plain data parallel. "
            + "Default: the experiment's training.zero_stage, or 0.")
    Integer zeroStage;

    @Option(names = "--method", paramLabel = "sft|dpo|orpo|simpo", description = "The loss timed: sft (default) or a preference "
            + "method on synthetic pairs (--micro-batch counts pairs, each two sequences; dpo's reference is the LoRA base with "
            + "the adapters off, so dpo needs --lora-r).")
    String method;

    @Option(names = "--generate", description = "Measure greedy decoding instead of training (fp32, CPU): tokens/s and weight GB/s for "
            + "each --batch, of --model DIR or --shape (--device cuda too); see bench/decode/ for the run beside llama.cpp.")
    boolean generate;

    @Option(names = "--model", paramLabel = "DIR", description = "With --generate: a model directory (config.json + safetensors).")
    Path model;

    @Option(names = "--batch", split = ",", defaultValue = "1,8", paramLabel = "N[,N...]", description = "With --generate: batch sizes. Default: ${DEFAULT-VALUE}.")
    List<Integer> batches;

    @Option(names = "--prompt-tokens", defaultValue = "16", description = "With --generate: prompt length of each row. Default: ${DEFAULT-VALUE}.")
    int promptTokens;

    @Option(names = "--new-tokens", defaultValue = "64", description = "With --generate: new tokens per row. Default: ${DEFAULT-VALUE}.")
    int newTokens;

    @Option(names = "--repeats", defaultValue = "1", description = "With --generate: timed runs per batch size (the best is reported). Default: ${DEFAULT-VALUE}.")
    int repeats;

    @Option(names = "--json", description = "Print one JSON document instead of the table.")
    boolean json;

    @CommandLine.Mixin
    LaunchOptions launch = new LaunchOptions();
    private int exitCode;

    @Override
    public void run() {
        if (launch.requested()) {   // this process only starts and watches the ranks; their logs go to a fresh temporary directory
            try {
                exitCode = launch.launch(java.nio.file.Files.createTempDirectory("jtune-bench-logs-"));
            } catch (java.io.IOException e) {
                throw new dev.jtune.util.UserError("cannot create a temporary directory for the ranks' logs: " + e.getMessage(), e);
            }
            return;
        }
        if (generate) {
            var r = dev.jtune.bench.DecodeBench.run(new dev.jtune.bench.DecodeBench.Options(model, shape, batches, promptTokens, newTokens,
                    repeats, seed, kernels, device));
            if (json) JsonOut.print(r);
            else System.out.print(dev.jtune.bench.DecodeBench.table(r));
            return;
        }
        var result = BenchRunner.run(new BenchRunner.Options(experiment, shape, arch, precision, loraR, loraTargets, seqLen, microBatch,
                gradAccum, device, steps, warmup, gemmSize, profile, profilePeriodMs, seed, kernels, gradientCheckpointing, quantization, zeroStage,
                method, dev.jtune.distributed.LaunchEnv.fromEnvironment(System.getenv())));
        if (json) JsonOut.print(result);
        else System.out.print(BenchRunner.table(result));
    }

    @Override
    public int getExitCode() {
        return exitCode;
    }
}
