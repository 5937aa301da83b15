package dev.jtune.plan;

import dev.jtune.bench.Flops;
import dev.jtune.distributed.ZeroPartition;
import dev.jtune.model.ModelConfig;
import dev.jtune.peft.LoraTargets;
import dev.jtune.config.Precision;
import dev.jtune.train.step.CausalLmLoss;

import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

/**
 * Predicts the peak memory of one training step before anything is loaded: what {@code jtune plan} prints and what
 * {@code jtune train} checks. The peak is at the end of a micro-batch's backward (TrainStep.run), where the step holds:
 * <ul>
 * <li>weights: the fp32 trainable weights (full fine-tuning; they are the master copies, there is no second one), or
 *     the frozen base in its dtype plus the fp32 adapters (LoRA);</li>
 * <li>autocast's working copies: under bf16/fp16, each fp32 weight of a matrix product is cast once per forward and
 *     saved for backward (full fine-tuning: 2 bytes per matrix weight);</li>
 * <li>gradients (fp32, one per trainable weight, kept zeroed between steps) and AdamW's two moments (fp32);</li>
 * <li>activations: {@link ActivationModel} per token per block × tokens × blocks, or with checkpointing each block's
 *     input plus one block's recompute;</li>
 * <li>the loss: Ops.crossEntropySum's chunk of logits and its gradient buffers (see {@link #loss});</li>
 * <li>the runtime: on the CPU the JVM and LibTorch themselves (the peak is the process's resident set), on CUDA the
 *     context and cuBLAS workspaces; plus a share of headroom for allocator fragmentation.</li>
 * </ul>
 * Gradient accumulation does not raise the peak: a micro-batch's activations are freed before the next starts.
 */
public final class MemoryPlanner {
    /** CPU: resident set of the JVM with LibTorch loaded and the step's Java objects (calibrated: bench/RESULTS.md). */
    static final long CPU_RUNTIME_BYTES = 275L << 20;
    /** CUDA: the context (not counted by the caching allocator, but on the device) and cuBLAS/cuDNN workspaces. */
    static final long CUDA_RUNTIME_BYTES = 1L << 30;
    /** Blocks' worth of activation-shaped gradients alive at once in backward (calibrated against bench, bench/RESULTS.md). */
    static final double BACKWARD_BLOCKS = 1.0;
    /** Share of the tensors' bytes kept as headroom: allocator rounding, fragmentation, transient op workspaces. */
    static final double HEADROOM = 0.05;

    private MemoryPlanner() {}

    /** One line of the breakdown. */
    public record Part(String key, String label, long bytes, String detail) {}

    /** The prediction: its parts (in the order printed) and their total. */
    public record Plan(PlanRequest request, List<Part> parts, long totalBytes) {
        public long bytes(String key) {
            for (Part p : parts) if (p.key().equals(key)) return p.bytes();
            return 0;
        }
    }

    public static Plan plan(PlanRequest r) {
        ModelConfig c = r.config();
        long all = Flops.parameters(c);
        long matmul = Flops.matmulParameters(c);
        long adapters = r.lora() ? Flops.adapterParameters(r.loraR(), LoraTargets.resolve(c, r.loraTargets(), "lora.target_modules")) : 0;
        long trainable = r.lora() ? adapters : all;
        boolean autocast = r.precision() != Precision.FP32;
        List<Part> parts = new ArrayList<>();

        long frozen = r.lora() ? all * r.baseBytes() : 0;
        String frozenDetail = r.lora() ? String.format("%,d parameters × %d B (the base, no gradients)", all, r.baseBytes()) : "none (every weight trains)";
        if (r.lora() && r.fourBit() != null) {
            long[] q = quantized(c, r.fourBit());
            long quantizedBytes = (long) Math.ceil(q[0] * r.fourBit().bytesPerParameter());
            long dequantized = q[1] * 2L * r.fourBit().computeBytes();   // the one weight being dequantized (and cast) for its product
            frozen = quantizedBytes + (all - q[0]) * r.baseBytes() + dequantized;
            frozenDetail = String.format("4-bit base: %,d quantized parameters × %.4f B + %,d others (embeddings, head, norms) × %d B "
                    + "+ one dequantized weight %s", q[0], r.fourBit().bytesPerParameter(), all - q[0], r.baseBytes(), human(dequantized));
        }
        parts.add(new Part("frozen_weights", "frozen weights", frozen, frozenDetail));
        parts.add(new Part("trainable_weights", "trainable weights", trainable * 4L,
                String.format("%,d parameters × 4 B (fp32: these are the master weights)", trainable)));
        // autocast casts each fp32 leaf weight of a matrix product once per forward and autograd saves the copy;
        // the output projection's copy is the loss's (Ops.crossEntropySum casts it itself)
        long castWeights = !autocast ? 0 : r.lora() ? adapters : matmul - (long) c.vocabSize() * c.hiddenSize();
        parts.add(new Part("master_copies", "autocast weight copies", castWeights * 2,
                autocast ? String.format("%,d %s weights × 2 B: %s working copies of the fp32 weights, saved for backward",
                        castWeights, r.lora() ? "adapter" : "block matrix", r.precision() == Precision.FP16 ? "fp16" : "bf16")
                        : "none (fp32: no separate master copy)"));
        parts.add(new Part("gradients", "gradients", trainable * 4L, String.format("%,d × 4 B (fp32)", trainable)));
        parts.add(optimizerState(r, trainable));
        if (r.worldSize() > 1) {
            // dist.GradientBuckets: flat buffers, allocated once, that the gradients are packed into for the all-reduce
            parts.add(new Part("gradient_buckets", "gradient buckets", trainable * 4L, String.format(
                    "data parallel over %d ranks: the %,d gradients packed into flat all-reduce buffers × 4 B", r.worldSize(), trainable)));
        }

        if (r.preference() != null) {
            parts.add(new Part("reference", "reference model", r.preference().referenceBytes(), r.preference().referenceDetail()));
        }
        long tokens = r.rows() * r.seqLen();   // preference pairs: chosen and rejected rows
        double perBlock = ActivationModel.perTokenPerBlock(r);
        long blockBytes = (long) Math.ceil(perBlock * tokens);
        // backward of a block makes gradients of the same shapes as its activations while all of them are still held
        // (the block's own are freed with the step's scope): one block's worth on top (calibrated, bench/RESULTS.md)
        long backward = (long) Math.ceil(BACKWARD_BLOCKS * blockBytes);
        if (r.gradientCheckpointing()) {
            long saved = (long) c.numLayers() * tokens * ActivationModel.residualBytes(r);
            parts.add(new Part("activations", "activations", saved + blockBytes + backward,
                    String.format("checkpointing: %d saved block inputs × %,d tokens × %d B + one block's recompute %s and its gradients %s",
                            c.numLayers(), tokens, ActivationModel.residualBytes(r), human(blockBytes), human(backward))));
        } else {
            parts.add(new Part("activations", "activations", blockBytes * c.numLayers() + backward,
                    String.format("%s per block (%,.0f B per token) × %d blocks + one block's gradients in backward %s",
                            human(blockBytes), perBlock, c.numLayers(), human(backward))));
        }
        long[] loss = loss(r);
        parts.add(new Part("loss", "loss chunk", loss[0], String.format("%,d rows × %,d vocabulary per chunk (%s rule)%s",
                loss[1], c.vocabSize(), r.cuda() ? "CUDA" : "CPU", loss[2] > 0 ? " + output-projection gradient buffers " + human(loss[2]) : "")));
        long tensors = 0;
        for (Part p : parts) tensors += p.bytes();
        long runtime = r.cuda() ? CUDA_RUNTIME_BYTES : CPU_RUNTIME_BYTES;
        long headroom = runtime + (long) (HEADROOM * tensors);
        parts.add(new Part("workspace", "workspace headroom", headroom, String.format("%s %s + %.0f%% of the tensors",
                human(runtime), r.cuda() ? "CUDA context and library workspaces" : "JVM and LibTorch (the process's own resident set)", 100 * HEADROOM)));
        return new Plan(r, List.copyOf(parts), tensors + headroom);
    }

    /**
     * AdamW's two fp32 moments of the trained parameters; under ZeRO stage 1 (optimizerShards N &gt; 1) those of the
     * largest rank's shard: full fine-tuning partitions the model's own tensors as the trainer does
     * ({@link ZeroPartition}), LoRA's adapters are counted as an even 1/N (their tensors are small and many).
     */
    static Part optimizerState(PlanRequest r, long trainable) {
        int n = r.optimizerShards();
        if (n == 1) return new Part("optimizer_state", "optimizer state", trainable * 8L, String.format("AdamW: 2 moments × %,d × 4 B", trainable));
        long shard;
        if (r.lora()) {
            shard = (trainable + n - 1) / n;
        } else {
            java.util.Map<String, Long> sizes = new LinkedHashMap<>();
            for (dev.jtune.model.ParameterSpec.Entry e : dev.jtune.model.ParameterSpec.of(r.config()).values()) {
                long k = 1;
                for (long d : e.shape()) k *= d;
                sizes.put(e.name(), k);
            }
            shard = ZeroPartition.of(sizes, n).largestShard();
        }
        return new Part("optimizer_state", "optimizer state", shard * 8L, String.format(
                "AdamW: 2 moments × %,d × 4 B: ZeRO stage 1, this rank's shard (the largest of %d; all ranks %,d parameters)%s",
                shard, n, trainable, r.lora() ? ", about 1/" + n : ""));
    }

    /** {quantized parameters, elements of the largest quantized weight} of a 4-bit base of {@code c}'s shape. */
    static long[] quantized(ModelConfig c, PlanRequest.FourBit q) {
        List<String> skip = q.skipModules().isEmpty() ? dev.jtune.quant.QuantizationConfig.DEFAULT_SKIP : q.skipModules();
        long n = 0, largest = 0;
        for (dev.jtune.model.ParameterSpec.Entry e : dev.jtune.model.ParameterSpec.of(c).values()) {
            if (!dev.jtune.quant.QuantizedModelLoader.quantizes(c, e.name(), skip)) continue;
            long k = 1;
            for (long d : e.shape()) k *= d;
            n += k;
            largest = Math.max(largest, k);
        }
        return new long[] {n, largest};
    }

    /**
     * The loss, as kernels/Ops.crossEntropySum runs it today: the target rows' hidden states gathered (N × D) with their
     * gradient (N × D), a reused chunk of logits (rows × V, plus an fp32 copy under autocast), and, when the output
     * projection trains (full fine-tuning), its gradient dw (V × D, fp32), the weight·dw product that hands dw to
     * autograd and autograd's dw·scale in backward (3 × V × D × 4 B), plus the weight's cast under autocast. The last
     * two go away with issue 14's part 3 (the weight gradient through the bridge).
     *
     * @return {bytes, rows per chunk, of which output-projection buffers}
     */
    static long[] loss(PlanRequest r) {
        ModelConfig c = r.config();
        long v = c.vocabSize(), d = c.hiddenSize();
        long n = (long) r.microBatch() * (r.seqLen() - 1);   // every position a target: the worst case
        long rows = CausalLmLoss.chunkRows(n, v, d, r.cuda());
        int s = ActivationModel.residualBytes(r), cb = ActivationModel.computeBytes(r);
        long b = 0;
        b += n * 8 * 3;                                       // targets, kept indices, selected targets (int64)
        b += n * d * s * (r.microBatch() > 1 ? 2 : 1);        // the target rows' hidden states (a copy of the narrowed view when B > 1)
        if (s != cb) b += n * d * cb;                          // their cast to the autocast dtype
        b += n * d * s * 3;                                   // dh, hidden·dh, and autograd's dh·scale
        b += rows * v * cb + (cb != 4 ? rows * v * 4L : 0);   // the logits chunk (+ its fp32 log-softmax buffer)
        long head = 0;
        if (!r.lora()) {
            head += 3 * v * d * 4;                            // dw, weight·dw, autograd's dw·scale
            if (cb != 4) head += 2 * v * d * cb;              // the cast weight, and each chunk's dw product before it is added
        }
        return new long[] {b + head, rows, head};
    }

    /** Whether the plan fits in {@code deviceBytes}. */
    public static boolean fits(Plan p, long deviceBytes) {
        return p.totalBytes() <= deviceBytes;
    }

    /** The longest sequence (a multiple of 64 where possible, at most the model's positions) that fits, or 0. */
    public static int longestSeqLen(PlanRequest r, long deviceBytes) {
        int max = r.config().maxPositions();
        if (!fits(plan(r.withSeqLen(2)), deviceBytes)) return 0;
        int lo = 2, hi = max;
        if (fits(plan(r.withSeqLen(hi)), deviceBytes)) return hi;
        while (hi - lo > 1) {                                  // fits(lo) && !fits(hi); activations grow with T
            int mid = lo + (hi - lo) / 2;
            if (fits(plan(r.withSeqLen(mid)), deviceBytes)) lo = mid;
            else hi = mid;
        }
        return lo >= 64 ? lo / 64 * 64 : lo;
    }

    /** The largest micro-batch (up to 4096) that fits at the request's sequence length, or 0. */
    public static int largestMicroBatch(PlanRequest r, long deviceBytes) {
        if (!fits(plan(r.withMicroBatch(1)), deviceBytes)) return 0;
        int lo = 1, hi = 2;
        while (hi <= 4096 && fits(plan(r.withMicroBatch(hi)), deviceBytes)) {
            lo = hi;
            hi *= 2;
        }
        if (hi > 4096) return lo;
        while (hi - lo > 1) {
            int mid = (lo + hi) / 2;
            if (fits(plan(r.withMicroBatch(mid)), deviceBytes)) lo = mid;
            else hi = mid;
        }
        return lo;
    }

    /** What to change when a run does not fit, each with the total it would need; empty when it fits. */
    public static List<String> suggestions(Plan p, long deviceBytes) {
        List<String> out = new ArrayList<>();
        if (fits(p, deviceBytes)) return out;
        PlanRequest r = p.request();
        if (!r.gradientCheckpointing()) {
            Plan ck = plan(r.withCheckpointing(true));
            out.add(String.format("training.gradient_checkpointing: true would need %s%s",
                    human(ck.totalBytes()), fits(ck, deviceBytes) ? ", which fits" : ""));
        }
        if (!r.lora()) {
            Plan lo = plan(r.withLora(16, List.of("all-linear"), PlanRequest.defaultBaseBytes(r.precision())));
            out.add(String.format("LoRA (lora.enabled: true, r: 16, all-linear) would need %s%s", human(lo.totalBytes()),
                    fits(lo, deviceBytes) ? ", which fits" : ""));
        }
        long frozen = p.bytes("frozen_weights");
        if (r.lora() && frozen > 0 && r.fourBit() == null) {
            Plan q = plan(r.withFourBit(new PlanRequest.FourBit(true, r.baseBytes(), List.of())));
            out.add(String.format("a 4-bit base (QLoRA: model.quantization.load_in_4bit: true, bnb_4bit_use_double_quant: true) would cut "
                    + "the frozen weights from %s to %s and need %s%s", human(frozen), human(q.bytes("frozen_weights")),
                    human(q.totalBytes()), fits(q, deviceBytes) ? ", which fits" : ""));
        }
        if (r.microBatch() > 1) {
            int mb = largestMicroBatch(r, deviceBytes);
            if (mb > 0) {
                int accum = (int) Math.ceil((double) r.microBatch() * r.gradAccum() / mb);
                out.add(String.format("per_device_train_batch_size: %d with gradient_accumulation_steps: %d keeps the effective batch "
                        + "(%d sequences) and fits", mb, accum, r.microBatch() * r.gradAccum()));
            }
        }
        int seq = longestSeqLen(r, deviceBytes);
        if (seq >= 2 && seq < r.seqLen()) out.add(String.format("data.max_seq_length: %d (or shorter) fits", seq));
        if (out.isEmpty() || seq < 2) out.add("even one short sequence does not fit: the weights and optimizer state alone are "
                + human(p.bytes("frozen_weights") + p.bytes("trainable_weights") + p.bytes("gradients") + p.bytes("optimizer_state")));
        return out;
    }

    /** Bytes as GiB / MiB with one decimal. */
    public static String human(long bytes) {
        if (Math.abs(bytes) >= 1L << 30) return String.format(java.util.Locale.ROOT, "%.2f GiB", bytes / (double) (1L << 30));
        return String.format(java.util.Locale.ROOT, "%.1f MiB", bytes / (double) (1L << 20));
    }

    /** The parts by key, for JSON. */
    public static Map<String, Long> byKey(Plan p) {
        Map<String, Long> m = new LinkedHashMap<>();
        for (Part part : p.parts()) m.put(part.key(), part.bytes());
        return m;
    }
}
