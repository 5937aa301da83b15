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
 */
public record PlanRequest(ModelConfig config, int seqLen, int microBatch, int gradAccum, int loraR, List<String> loraTargets,
                          Precision precision, int baseBytes, boolean gradientCheckpointing, boolean cuda) {
    public boolean lora() {
        return loraR > 0;
    }

    public PlanRequest withSeqLen(int n) {
        return new PlanRequest(config, n, microBatch, gradAccum, loraR, loraTargets, precision, baseBytes, gradientCheckpointing, cuda);
    }

    public PlanRequest withMicroBatch(int n) {
        return new PlanRequest(config, seqLen, n, gradAccum, loraR, loraTargets, precision, baseBytes, gradientCheckpointing, cuda);
    }

    public PlanRequest withCheckpointing(boolean on) {
        return new PlanRequest(config, seqLen, microBatch, gradAccum, loraR, loraTargets, precision, baseBytes, on, cuda);
    }

    public PlanRequest withLora(int r, List<String> targets, int base) {
        return new PlanRequest(config, seqLen, microBatch, gradAccum, r, targets, precision, base, gradientCheckpointing, cuda);
    }

    /** The frozen base's default element size for a precision: that of the autocast, else fp32 (as Trainable does). */
    public static int defaultBaseBytes(Precision precision) {
        return precision == Precision.FP32 ? 4 : 2;
    }
}
