package dev.jtune.plan;

import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ArrayNode;
import com.fasterxml.jackson.databind.node.ObjectNode;
import dev.jtune.config.Experiment;
import dev.jtune.model.ModelConfig;
import dev.jtune.config.Precision;
import dev.jtune.util.Devices;
import dev.jtune.util.Tensors;
import org.bytedeco.pytorch.Device;

import java.util.List;
import java.util.Locale;

/** A plan against a memory budget: the breakdown, whether it fits, the limits, the suggestions; as text or JSON. */
public record PlanReport(String source, MemoryPlanner.Plan plan, DeviceMemory.Budget budget, boolean fits,
                         int longestSeqLen, int largestMicroBatch, List<String> suggestions) {
    private static final ObjectMapper JSON = new ObjectMapper();

    public static PlanReport of(String source, PlanRequest r, DeviceMemory.Budget budget) {
        MemoryPlanner.Plan p = MemoryPlanner.plan(r);
        return new PlanReport(source, p, budget, MemoryPlanner.fits(p, budget.bytes()), MemoryPlanner.longestSeqLen(r, budget.bytes()),
                MemoryPlanner.largestMicroBatch(r, budget.bytes()), MemoryPlanner.suggestions(p, budget.bytes()));
    }

    /** The request an experiment makes: its model's config, max_seq_length, batch, LoRA and precision on its device. */
    public static PlanRequest request(Experiment exp) {
        return request(exp, 1);
    }

    /**
     * As above, as one rank of {@code worldSize}: each rank holds the weights and gradients, and the gradient buckets
     * of the all-reduce; with {@code training.zero_stage: 1} the optimizer state is that rank's shard.
     */
    public static PlanRequest request(Experiment exp, int worldSize) {
        int shards = exp.training().zeroStage() == 1 ? worldSize : 1;
        return request1(exp).withOptimizerShards(shards).withWorldSize(worldSize);
    }

    private static PlanRequest request1(Experiment exp) {
        ModelConfig config = ModelConfig.read(exp.model().path());
        Device device = Devices.parse(exp.training().device(), "training.device");
        Precision precision = exp.training().precision().resolve(device.is_cuda());
        boolean lora = exp.lora().enabled();
        int base = exp.model().dtype() != null ? Tensors.elementSize(Tensors.parseDtype(exp.model().dtype(), "model.dtype"))
                : PlanRequest.defaultBaseBytes(precision);
        return new PlanRequest(config, exp.data().maxSeqLength(), exp.training().perDeviceTrainBatchSize(),
                exp.training().gradientAccumulationSteps(), lora ? exp.lora().r() : 0, lora ? exp.lora().targetModules() : List.of(),
                precision, base, exp.training().gradientCheckpointing(), device.is_cuda(), fourBit(exp)).withPreference(preference(exp, config, precision));
    }

    /**
     * Preference tuning's share: pairs of rows, and the reference TRL would hold: a frozen copy of the base in the
     * autocast's dtype under full fine-tuning (unless reference-free, a method without one, or precomputed log-probs);
     * nothing extra with LoRA (the base with the adapters off). Null for supervised fine-tuning.
     */
    static PlanRequest.Preference preference(Experiment exp, ModelConfig config, Precision precision) {
        var t = exp.training();
        if (!t.method().preference()) return null;
        var p = exp.preference();
        boolean needsReference = t.method() == dev.jtune.config.TrainingSection.Method.KTO
                || (t.method() == dev.jtune.config.TrainingSection.Method.DPO && !Boolean.TRUE.equals(p.referenceFree()));
        if (!needsReference) return new PlanRequest.Preference(2, 0, "none (" + t.method().name().toLowerCase(Locale.ROOT) + " has no reference model)");
        if (exp.lora().enabled()) return new PlanRequest.Preference(2, 0, "none extra: the base with the LoRA adapters switched off");
        if (Boolean.TRUE.equals(p.precomputeRefLogProbs())) {
            return new PlanRequest.Preference(2, 0, "none during training: reference log-probs precomputed (a frozen copy is loaded before training, then freed)");
        }
        long params = dev.jtune.bench.Flops.parameters(config);
        int bytes = PlanRequest.defaultBaseBytes(precision);
        return new PlanRequest.Preference(2, params * bytes, String.format(Locale.ROOT,
                "a frozen copy of the base: %,d parameters × %d B", params, bytes));
    }

    /** The experiment's 4-bit base (model.quantization, or a pre-quantized model.path), or null. */
    static PlanRequest.FourBit fourBit(Experiment exp) {
        if (!exp.model().fourBit()) return null;
        var q = exp.model().quantization();
        return new PlanRequest.FourBit(q.bnb_4bitUseDoubleQuant(),
                Tensors.elementSize(Tensors.parseDtype(q.bnb_4bitComputeDtype(), "model.quantization.bnb_4bit_compute_dtype")),
                q.llmInt8SkipModules() == null ? List.of() : q.llmInt8SkipModules());
    }

    public ObjectNode json() {
        PlanRequest r = plan.request();
        ObjectNode j = JSON.createObjectNode();
        j.put("source", source);
        ObjectNode c = j.putObject("config");
        c.put("model_type", r.config().modelType());
        c.put("blocks", r.config().numLayers());
        c.put("mode", r.lora() ? "lora" : "full");
        if (r.fourBit() != null) {
            c.put("quantization", r.fourBit().doubleQuant() ? "4-bit, double quant" : "4-bit");
            c.put("quantized_bytes_per_parameter", r.fourBit().bytesPerParameter());
        }
        if (r.lora()) {
            c.put("lora_r", r.loraR());
            c.put("base_bytes_per_parameter", r.baseBytes());
        }
        c.put("precision", r.precision().name().toLowerCase(Locale.ROOT));
        c.put("seq_len", r.seqLen());
        c.put("micro_batch", r.microBatch());
        if (r.preference() != null) c.put("sequences_per_micro_batch", r.rows());
        c.put("grad_accum", r.gradAccum());
        c.put("gradient_checkpointing", r.gradientCheckpointing());
        c.put("device", r.cuda() ? "cuda" : "cpu");
        c.put("optimizer_shards", r.optimizerShards());
        c.put("world_size", r.worldSize());
        ObjectNode parts = j.putObject("breakdown");
        for (MemoryPlanner.Part p : plan.parts()) {
            ObjectNode o = parts.putObject(p.key());
            o.put("bytes", p.bytes());
            o.put("detail", p.detail());
        }
        j.put("total_bytes", plan.totalBytes());
        j.put("memory_bytes", budget.bytes());
        j.put("memory_source", budget.source());
        j.put("fits", fits);
        j.put("longest_seq_len", longestSeqLen);
        j.put("largest_micro_batch", largestMicroBatch);
        ArrayNode s = j.putArray("suggestions");
        suggestions.forEach(s::add);
        return j;
    }

    public String table() {
        PlanRequest r = plan.request();
        StringBuilder b = new StringBuilder();
        b.append(String.format(Locale.ROOT, "%s: %s, %d blocks; %s, %s; %d × %d tokens per micro-batch%s; %s%n", source,
                r.config().modelType(), r.config().numLayers(), r.lora() ? "LoRA r=" + r.loraR() : "full fine-tuning",
                r.precision().name().toLowerCase(Locale.ROOT), r.microBatch(), r.seqLen(),
                r.gradientCheckpointing() ? ", gradient checkpointing" : "", r.cuda() ? "CUDA" : "CPU"));
        if (r.preference() != null) {
            b.append(String.format(Locale.ROOT, "preference tuning: %d pairs = %d sequences per micro-batch%n", r.microBatch(), r.rows()));
        }
        if (r.optimizerShards() > 1) {
            b.append(String.format(Locale.ROOT, "per rank of %d, ZeRO stage 1: the optimizer state is sharded across the ranks%n", r.optimizerShards()));
        } else if (r.worldSize() > 1) {
            b.append(String.format(Locale.ROOT, "per rank of %d, plain data parallel: every rank holds the whole optimizer state%n", r.worldSize()));
        }
        for (MemoryPlanner.Part p : plan.parts()) {
            b.append(String.format(Locale.ROOT, "  %-24s %12s  %s%n", p.label(), MemoryPlanner.human(p.bytes()), p.detail()));
        }
        b.append(String.format(Locale.ROOT, "  %-24s %12s%n", "predicted peak", MemoryPlanner.human(plan.totalBytes())));
        b.append(String.format(Locale.ROOT, "  %-24s %12s  %s%n", "memory", MemoryPlanner.human(budget.bytes()), budget.source()));
        b.append(fits ? String.format(Locale.ROOT, "fits (%s to spare)%n", MemoryPlanner.human(budget.bytes() - plan.totalBytes()))
                : String.format(Locale.ROOT, "does NOT fit: %s short%n", MemoryPlanner.human(plan.totalBytes() - budget.bytes())));
        b.append(String.format(Locale.ROOT, "longest sequence that fits: %s; largest micro-batch that fits at %d tokens: %s%n",
                longestSeqLen == 0 ? "none" : String.valueOf(longestSeqLen), r.seqLen(),
                largestMicroBatch == 0 ? "none" : String.valueOf(largestMicroBatch)));
        if (!suggestions.isEmpty()) {
            b.append("to make it fit:\n");
            for (String s : suggestions) b.append("  - ").append(s).append('\n');
        }
        return b.toString();
    }
}
