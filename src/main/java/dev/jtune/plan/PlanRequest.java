package dev.jtune.plan;

import dev.jtune.model.ModelConfig;
import dev.jtune.config.Precision;

import java.util.List;

/**
 * What to plan: a model shape and the run's settings, as the trainer would run them.
 *
 * @param config                the model's config.json
 * @param seqLen                tokens per row (data.max_seq_length: the longest a batch can be)
 * @param microBatch            rows per micro-batch (per_device_train_batch_size)
 * @param gradAccum             micro-batches per optimizer step (does not change the peak: one micro-batch's
 *                              activations are freed before the next starts)
 * @param loraR                 LoRA rank, or 0 for full fine-tuning
 * @param loraTargets           the modules LoRA adapts (as lora.target_modules); ignored when loraR is 0
 * @param precision             fp32, or bf16/fp16 autocast
 * @param baseBytes             bytes per element of a frozen LoRA base (model.dtype; default: 2 under bf16/fp16, else 4)
 * @param gradientCheckpointing keep only each block's input and recompute one block at a time in backward
 * @param cuda                  on a CUDA device (else the CPU)
 * @param fourBit               a 4-bit frozen base (QLoRA), or null
 * @param optimizerShards       ranks the optimizer state is sharded over: the world size under ZeRO stage 1
 *                              ({@code training.zero_stage: 1}), else 1 (every rank keeps all of it)
 * @param worldSize             data-parallel ranks (1: one process); with more, each rank also holds the gradient buckets
 */
public record PlanRequest(ModelConfig config, int seqLen, int microBatch, int gradAccum, int loraR, List<String> loraTargets,
                          Precision precision, int baseBytes, boolean gradientCheckpointing, boolean cuda, FourBit fourBit,
                          int optimizerShards, int worldSize, Preference preference) {

    /**
     * Preference tuning: each item of the micro-batch is {@code rowsPerItem} sequences (a pair: chosen and rejected), and
     * the reference model holds {@code referenceBytes} (a frozen copy under full fine-tuning; 0 with LoRA's adapters-off
     * base, precomputed log-probabilities or no reference).
     */
    public record Preference(int rowsPerItem, long referenceBytes, String referenceDetail) {}

    /** Without preference tuning. */
    public PlanRequest(ModelConfig config, int seqLen, int microBatch, int gradAccum, int loraR, List<String> loraTargets,
                       Precision precision, int baseBytes, boolean gradientCheckpointing, boolean cuda, FourBit fourBit,
                       int optimizerShards, int worldSize) {
        this(config, seqLen, microBatch, gradAccum, loraR, loraTargets, precision, baseBytes, gradientCheckpointing, cuda, fourBit,
                optimizerShards, worldSize, null);
    }

    public PlanRequest {
        if (optimizerShards < 1) throw new IllegalArgumentException("optimizerShards " + optimizerShards);
        if (worldSize < 1) throw new IllegalArgumentException("worldSize " + worldSize);
    }

    /** The optimizer state unsharded. */
    public PlanRequest(ModelConfig config, int seqLen, int microBatch, int gradAccum, int loraR, List<String> loraTargets,
                       Precision precision, int baseBytes, boolean gradientCheckpointing, boolean cuda, FourBit fourBit) {
        this(config, seqLen, microBatch, gradAccum, loraR, loraTargets, precision, baseBytes, gradientCheckpointing, cuda, fourBit, 1, 1);
    }

    /**
     * A 4-bit base: bitsandbytes' layout, blocks of 64.
     *
     * @param doubleQuant  the absmax values in 8 bits (blocks of 256) instead of float32
     * @param computeBytes bytes per element of the dtype each weight dequantizes to (bnb_4bit_compute_dtype)
     * @param skipModules  modules kept unquantized (llm_int8_skip_modules); empty = the output head
     */
    public record FourBit(boolean doubleQuant, int computeBytes, List<String> skipModules) {
        /** Bytes per quantized parameter: packed codes, absmax (nested absmax with double quantization); maps are per tensor. */
        public double bytesPerParameter() {
            return 0.5 + (doubleQuant ? 1.0 / 64 + 4.0 / (64 * 256) : 4.0 / 64);
        }
    }

    /** Without a 4-bit base. */
    public PlanRequest(ModelConfig config, int seqLen, int microBatch, int gradAccum, int loraR, List<String> loraTargets,
                       Precision precision, int baseBytes, boolean gradientCheckpointing, boolean cuda) {
        this(config, seqLen, microBatch, gradAccum, loraR, loraTargets, precision, baseBytes, gradientCheckpointing, cuda, null);
    }

    /** As a preference run with {@code p} (null: supervised fine-tuning). */
    public PlanRequest withPreference(Preference p) {
        return new PlanRequest(config, seqLen, microBatch, gradAccum, loraR, loraTargets, precision, baseBytes, gradientCheckpointing, cuda,
                fourBit, optimizerShards, worldSize, p);
    }

    /** Sequences per micro-batch: the micro-batch's items times their rows (2 for preference pairs). */
    public long rows() {
        return (long) microBatch * (preference == null ? 1 : preference.rowsPerItem());
    }

    public boolean lora() {
        return loraR > 0;
    }

    public PlanRequest withFourBit(FourBit q) {
        return new PlanRequest(config, seqLen, microBatch, gradAccum, loraR, loraTargets, precision, baseBytes, gradientCheckpointing, cuda, q, optimizerShards, worldSize, preference);
    }

    /** The optimizer state sharded over {@code n} ranks (ZeRO stage 1), or 1. */
    public PlanRequest withOptimizerShards(int n) {
        return new PlanRequest(config, seqLen, microBatch, gradAccum, loraR, loraTargets, precision, baseBytes, gradientCheckpointing, cuda, fourBit, n, worldSize, preference);
    }

    /** One rank of {@code n} data-parallel ranks (each holds the gradient buckets too), or 1. */
    public PlanRequest withWorldSize(int n) {
        return new PlanRequest(config, seqLen, microBatch, gradAccum, loraR, loraTargets, precision, baseBytes, gradientCheckpointing, cuda, fourBit, optimizerShards, n, preference);
    }

    public PlanRequest withSeqLen(int n) {
        return new PlanRequest(config, n, microBatch, gradAccum, loraR, loraTargets, precision, baseBytes, gradientCheckpointing, cuda, fourBit, optimizerShards, worldSize, preference);
    }

    public PlanRequest withMicroBatch(int n) {
        return new PlanRequest(config, seqLen, n, gradAccum, loraR, loraTargets, precision, baseBytes, gradientCheckpointing, cuda, fourBit, optimizerShards, worldSize, preference);
    }

    public PlanRequest withCheckpointing(boolean on) {
        return new PlanRequest(config, seqLen, microBatch, gradAccum, loraR, loraTargets, precision, baseBytes, on, cuda, fourBit, optimizerShards, worldSize, preference);
    }

    public PlanRequest withLora(int r, List<String> targets, int base) {
        return new PlanRequest(config, seqLen, microBatch, gradAccum, r, targets, precision, base, gradientCheckpointing, cuda, fourBit, optimizerShards, worldSize, preference);
    }

    /** The frozen base's default element size for a precision: that of the autocast, else fp32 (as Trainable does). */
    public static int defaultBaseBytes(Precision precision) {
        return precision == Precision.FP32 ? 4 : 2;
    }
}
