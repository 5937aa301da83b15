package dev.jtune.bench;

import com.fasterxml.jackson.annotation.JsonInclude;
import com.fasterxml.jackson.annotation.JsonProperty;
import com.fasterxml.jackson.databind.PropertyNamingStrategies;
import com.fasterxml.jackson.databind.annotation.JsonNaming;

import java.util.Map;

/**
 * What {@code jtune bench} measured for one training step, as records: {@code --json} is their Jackson serialisation
 * (snake_case names, the shape bench/peer/hf_peft_bench.py writes too, {@code schema} 1) and the table is drawn from
 * them ({@link BenchRunner#table}). A null member is written as JSON null, except those marked as absent when null
 * (what a run of that kind has no notion of: LoRA's rank in full fine-tuning, the distributed numbers of one process).
 */
@JsonNaming(PropertyNamingStrategies.SnakeCaseStrategy.class)
public record BenchResult(String tool, int schema, String time, Config config, Steps steps, StepTime stepTimeS, double tokensPerS,
                          FlopsPerToken flopsPerToken, ModelTflops modelTflops, Gemm gemm, Peak peak, Mfu mfu, Memory memory,
                          CpuTime cpuTimeS, Loss loss, @JsonInclude(JsonInclude.Include.NON_NULL) JfrProfile.Result profile,
                          @JsonInclude(JsonInclude.Include.NON_NULL) Distributed distributed) {

    /** What ran: the model, the training mode, the batch, the device and the kernels' paths ({@code mode} first). */
    @JsonNaming(PropertyNamingStrategies.SnakeCaseStrategy.class)
    public record Config(String source, String shape, String modelType, long parameters, long matmulParameters, long trainableParameters,
                         String mode, @JsonInclude(JsonInclude.Include.NON_NULL) Long loraR,
                         @JsonInclude(JsonInclude.Include.NON_NULL) Integer loraModules,
                         @JsonInclude(JsonInclude.Include.NON_NULL) Long frozenBaseBytes,
                         @JsonInclude(JsonInclude.Include.NON_NULL) Double frozenBaseBytesPerParameter,
                         @JsonInclude(JsonInclude.Include.NON_NULL) Quantization quantization,
                         String precision, int seqLen, int microBatch, int gradAccum, long tokensPerStep, boolean gradientCheckpointing,
                         String method, String device, String deviceName, int intraOpThreads, String attention, Map<String, String> kernels) {}

    /** A 4-bit base: its format and what dequantizing it costs per step. */
    @JsonNaming(PropertyNamingStrategies.SnakeCaseStrategy.class)
    public record Quantization(String type, boolean doubleQuant, String computeDtype, int quantizedLinearLayers, long quantizedParameters,
                               double quantizedBytesPerParameter, double dequantizeSecondsPerPass, int dequantizePassesPerStep,
                               double dequantizeShareOfStep, String note) {}

    @JsonNaming(PropertyNamingStrategies.SnakeCaseStrategy.class)
    public record Steps(int warmup, int timed, long skippedNonFinite) {}

    /** Seconds per timed step. */
    public record StepTime(double median, double p10, double p90, double mean, double min, double max) {}

    /** Model FLOPs per token: 6N + attention, and the LoRA-adjusted count (null in full fine-tuning). */
    public record FlopsPerToken(@JsonProperty("full_6n_attn") double full6nAttn, @JsonProperty("lora_adjusted") Double loraAdjusted,
                                @JsonProperty("attention") double attention, @JsonProperty("used_for_mfu") String usedForMfu) {}

    public record ModelTflops(@JsonProperty("full_6n_attn") double full6nAttn, @JsonProperty("lora_adjusted") Double loraAdjusted) {}

    /** A square matrix product measured in the same run, in both dtypes. */
    public record Gemm(@JsonProperty("size") int size, @JsonProperty("fp32_tflops") double fp32Tflops,
                       @JsonProperty("bf16_tflops") double bf16Tflops, @JsonProperty("same_dtype") String sameDtype,
                       @JsonProperty("faster") String faster) {}

    public record Peak(@JsonProperty("device") String device, @JsonProperty("datasheet_bf16_dense_tflops") Double datasheetBf16DenseTflops,
                       @JsonProperty("note") String note) {}

    /** Model FLOP/s over the peaks. */
    public record Mfu(@JsonProperty("flops") String flops, @JsonProperty("vs_datasheet") Double vsDatasheet,
                      @JsonProperty("vs_gemm_same_dtype") double vsGemmSameDtype, @JsonProperty("vs_gemm_best") double vsGemmBest,
                      @JsonProperty("full_6n_attn_vs_gemm_same_dtype") double full6nAttnVsGemmSameDtype) {}

    /** Peak memory of the load and warm-up, and of the timed steps alone. */
    @JsonNaming(PropertyNamingStrategies.SnakeCaseStrategy.class)
    public record Memory(String kind, Long peakBytes, Long peakReservedBytes, String note, Long stepPeakBytes, Long stepPeakReservedBytes,
                         Long stepStartBytes, String stepNote, long optimizerStateBytes) {}

    /** CPU seconds over the timed steps; {@code otherProcesses} absent where /proc/stat cannot be read. */
    @JsonNaming(PropertyNamingStrategies.SnakeCaseStrategy.class)
    public record CpuTime(double wall, double process, double benchThread, int cores,
                          @JsonInclude(JsonInclude.Include.NON_NULL) Double otherProcesses) {}

    public record Loss(double first, double last) {}

    /**
     * One rank of a data-parallel bench: its rate, the all-reduce's cost and the scaling against the rank alone. A
     * one-letter word ("s" for seconds) is named by hand: Jackson's snake case would glue it to the next ("sper").
     */
    @JsonNaming(PropertyNamingStrategies.SnakeCaseStrategy.class)
    public record Distributed(int rank, int worldSize, String backend, int gradientBuckets, int zeroStage, long optimizerStateBytesRank,
                              long optimizerStateBytesAllRanks, @JsonProperty("tokens_per_s_rank") double tokensPerSRank, @JsonProperty("tokens_per_s_global") double tokensPerSGlobal, @JsonProperty("allreduce_s_per_step") double allreduceSPerStep,
                              double allreduceShare, @JsonProperty("allreduce_exposed_s_per_step") double allreduceExposedSPerStep, double allreduceExposedShare,
                              double bucketsStartedDuringBackward, @JsonProperty("tokens_per_s_alone") double tokensPerSAlone, double scalingEfficiency, String note) {}
}
