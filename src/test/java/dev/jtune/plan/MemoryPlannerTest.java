package dev.jtune.plan;

import dev.jtune.bench.Shapes;
import dev.jtune.model.ModelConfig;
import dev.jtune.config.Precision;
import dev.jtune.util.UserError;
import dev.jtune.model.ModelInit;
import dev.jtune.peft.Lora;
import dev.jtune.peft.LoraSpec;
import dev.jtune.train.optim.AdamW;
import org.bytedeco.javacpp.PointerScope;
import org.bytedeco.pytorch.Device;
import org.bytedeco.pytorch.Tensor;
import org.bytedeco.pytorch.global.torch.ScalarType;
import org.junit.jupiter.api.Test;

import java.util.List;
import java.util.Map;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * The planner against the tiny shape: weights, gradients and optimizer state against real tensors; activations and the
 * loss against hand-counted tensors (hidden 64, 2 blocks, 4 heads of 16,
 * 2 KV heads, MLP 176, vocabulary 50,257, untied head). Accuracy against measurement is a benchmark
 * (bench/plan/, bench/RESULTS.md), not a unit test.
 */
class MemoryPlannerTest {
    static final ModelConfig TINY = Shapes.config("tiny", null);
    static final long D = 64, Q = 64, KV = 32, I = 176, V = 50257, LAYERS = 2;

    static PlanRequest tiny(int seq, int micro, int loraR, Precision p) {
        return new PlanRequest(TINY, seq, micro, 1, loraR, List.of("all-linear"), p, PlanRequest.defaultBaseBytes(p), false, false);
    }

    /**
     * Weights, gradients and optimizer state against real tensors of the tiny shape: the bytes of the parameters
     * ModelInit draws (fp32 and bf16), of the LoRA adapters Lora.create makes, and the state AdamW allocates for them.
     */
    @Test
    void weightsGradientsOptimizerMatchRealTensors() {
        try (PointerScope scope = new PointerScope()) {
            Map<String, Tensor> fp32Params = ModelInit.randomParameters(TINY, 0, ScalarType.Float);
            long fp32Bytes = bytes(fp32Params.values());
            MemoryPlanner.Plan fp32 = MemoryPlanner.plan(tiny(128, 8, 0, Precision.FP32));
            assertEquals(0, fp32.bytes("frozen_weights"));
            assertEquals(fp32Bytes, fp32.bytes("trainable_weights"));
            assertEquals(0, fp32.bytes("master_copies"), "fp32: the trainable weights are the masters");
            assertEquals(fp32Bytes, fp32.bytes("gradients"), "one fp32 gradient per trained weight");
            assertEquals(new AdamW(fp32Params, n -> true, 0.0, 0.9, 0.999, 1e-8).stateBytes(), fp32.bytes("optimizer_state"));
            // bf16: autocast's working copy of each block's matrix weights (the head's is the loss's)
            long blockMatrices = 0;
            for (Map.Entry<String, Tensor> e : fp32Params.entrySet()) {
                if (e.getKey().startsWith("model.layers.") && e.getValue().dim() == 2) blockMatrices += e.getValue().numel() * 2;
            }
            MemoryPlanner.Plan bf16 = MemoryPlanner.plan(tiny(128, 8, 0, Precision.BF16));
            assertEquals(blockMatrices, bf16.bytes("master_copies"));
            assertEquals(fp32.bytes("optimizer_state"), bf16.bytes("optimizer_state"));

            // LoRA r = 8 on all linear modules, on a bf16 (and an fp32) base
            Map<String, Tensor> adapters = Lora.tensors(Lora.create(TINY, new LoraSpec(8, 16, 0, List.of("all-linear"), false, true), 1,
                    new Device("cpu"), "test"));
            long adapterBytes = bytes(adapters.values());
            MemoryPlanner.Plan lora = MemoryPlanner.plan(tiny(128, 8, 8, Precision.BF16));
            assertEquals(bytes(ModelInit.randomParameters(TINY, 0, ScalarType.BFloat16).values()), lora.bytes("frozen_weights"), "bf16 base");
            assertEquals(adapterBytes, lora.bytes("trainable_weights"));
            assertEquals(adapterBytes / 2, lora.bytes("master_copies"), "bf16 autocast copies of the fp32 adapters");
            assertEquals(adapterBytes, lora.bytes("gradients"));
            assertEquals(new AdamW(adapters, n -> true, 0.0, 0.9, 0.999, 1e-8).stateBytes(), lora.bytes("optimizer_state"));
            assertEquals(fp32Bytes, MemoryPlanner.plan(tiny(128, 8, 8, Precision.FP32)).bytes("frozen_weights"), "fp32 base");
        }
    }

    static long bytes(java.util.Collection<Tensor> tensors) {
        long b = 0;
        for (Tensor t : tensors) b += t.numel() * t.element_size();
        return b;
    }

    /** The tensors LlamaModel.hidden names per block, fp32 full fine-tuning, bytes per token, one by one. */
    @Test
    void activationsByHandFp32() {
        long perToken = 0;
        perToken += 2 * (D + D) * 4;                 // 2 RMSNorms: rms_norm's output, · weight
        perToken += (Q + KV + KV) * 4;               // q, k, v projections
        perToken += (Q / 2 + Q + 3 * Q) * 4;         // RoPE on q: neg(half), cat, x·cos, rot·sin, sum
        perToken += (KV / 2 + KV + 3 * KV) * 4;      // RoPE on k
        perToken += Q * 4 + 4 * 4;                   // attention output + log-sum-exp (one fp32 per head)
        perToken += Q * 4;                           // transpose(1, 2).reshape copy
        perToken += (D + D) * 4;                     // o_proj, residual add
        perToken += (I + I) * 4 + (I + I) * 4;       // gate, up; silu, · up
        perToken += (D + D) * 4;                     // down_proj, residual add
        assertEquals(7632, perToken);
        assertEquals(perToken, ActivationModel.perTokenPerBlock(tiny(128, 8, 0, Precision.FP32)), 1e-9);

        long tokens = 8 * 128;
        MemoryPlanner.Plan p = MemoryPlanner.plan(tiny(128, 8, 0, Precision.FP32));
        long block = perToken * tokens;
        assertEquals(block * LAYERS + block, p.bytes("activations"), "all blocks + one block's gradients in backward");
        // LoRA adds per adapted module x·Aᵀ (r), ·Bᵀ, · scaling and the add (3 × out)
        long lora = 4 * (7 * 8 + 3 * (Q + KV + KV + D + I + I + D));
        assertEquals(perToken + lora, ActivationModel.perTokenPerBlock(tiny(128, 8, 8, Precision.FP32)), 1e-9);
    }

    /** The loss as Ops.crossEntropySum holds it on the CPU: 83-row chunks (4M logits / 50,257), full fine-tuning's dw buffers. */
    @Test
    void lossChunkByHand() {
        long n = 8 * 127, rows = (4L << 20) / V;
        assertEquals(83, rows);
        long expected = n * 8 * 3                     // int64 targets, kept indices, selected targets
                + n * D * 4 * 2                        // narrowed hidden states copied (B > 1), then index_select
                + n * D * 4 * 3                        // dh, hidden·dh, autograd's dh·scale
                + rows * V * 4                         // the logits chunk, log-softmax in place (fp32)
                + 3 * V * D * 4;                       // dw, weight·dw, autograd's dw·scale
        assertEquals(expected, MemoryPlanner.loss(tiny(128, 8, 0, Precision.FP32))[0]);
        assertEquals(expected, MemoryPlanner.plan(tiny(128, 8, 0, Precision.FP32)).bytes("loss"));
        // LoRA: the head is frozen, no dw buffers; bf16 base: hidden states in bf16, logits bf16 + an fp32 log-softmax buffer
        long lora = n * 8 * 3 + n * D * 2 * 2 + n * D * 2 * 3 + rows * V * 2 + rows * V * 4;
        assertEquals(lora, MemoryPlanner.loss(tiny(128, 8, 8, Precision.BF16))[0]);
    }

    @Test
    void totalIsThePartsPlusHeadroomAndFitting() {
        MemoryPlanner.Plan p = MemoryPlanner.plan(tiny(128, 8, 0, Precision.FP32));
        long tensors = 0;
        for (MemoryPlanner.Part part : p.parts()) if (!part.key().equals("workspace")) tensors += part.bytes();
        assertEquals(MemoryPlanner.CPU_RUNTIME_BYTES + (long) (MemoryPlanner.HEADROOM * tensors), p.bytes("workspace"));
        assertEquals(tensors + p.bytes("workspace"), p.totalBytes());
        assertTrue(MemoryPlanner.fits(p, p.totalBytes()));
        assertFalse(MemoryPlanner.fits(p, p.totalBytes() - 1));

        long budget = p.totalBytes();
        int seq = MemoryPlanner.longestSeqLen(tiny(128, 8, 0, Precision.FP32), budget);
        assertTrue(seq >= 128 && seq < 512, "128 fits exactly, the model's 512 does not: " + seq);
        assertTrue(MemoryPlanner.fits(MemoryPlanner.plan(tiny(seq, 8, 0, Precision.FP32)), budget));
        assertEquals(8, MemoryPlanner.largestMicroBatch(tiny(128, 8, 0, Precision.FP32), budget));
        assertTrue(MemoryPlanner.suggestions(p, budget).isEmpty());

        List<String> s = MemoryPlanner.suggestions(MemoryPlanner.plan(tiny(512, 8, 0, Precision.FP32)), budget);
        assertTrue(s.stream().anyMatch(x -> x.startsWith("training.gradient_checkpointing: true")), s.toString());
        assertTrue(s.stream().anyMatch(x -> x.startsWith("LoRA")), s.toString());
        assertTrue(s.stream().anyMatch(x -> x.startsWith("per_device_train_batch_size: ")), s.toString());
        assertTrue(s.stream().anyMatch(x -> x.startsWith("data.max_seq_length: ")), s.toString());
    }

    @Test
    void checkpointingKeepsBlockInputsAndOneBlock() {
        PlanRequest r = tiny(512, 8, 0, Precision.FP32).withCheckpointing(true);
        long tokens = 8 * 512, block = 7632 * tokens;
        assertEquals(LAYERS * tokens * 4 + block + block, MemoryPlanner.plan(r).bytes("activations"));
    }

    @Test
    void memorySizes() {
        assertEquals(24L << 30, DeviceMemory.parse("24GiB", "--memory"));
        assertEquals(24L << 30, DeviceMemory.parse("24G", "--memory"));
        assertEquals(80_000_000_000L, DeviceMemory.parse("80GB", "--memory"));
        assertEquals(512L << 20, DeviceMemory.parse("512 MiB", "--memory"));
        assertEquals(1536L << 20, DeviceMemory.parse("1.5GiB", "--memory"));
        assertEquals(12345, DeviceMemory.parse("12345", "--memory"));
        UserError e = assertThrows(UserError.class, () -> DeviceMemory.parse("lots", "--memory"));
        assertTrue(e.getMessage().contains("--memory: cannot read 'lots'"), e.getMessage());
        assertThrows(UserError.class, () -> DeviceMemory.parse("0GiB", "--memory"));
        assertTrue(DeviceMemory.cpu().bytes() > 0);
    }
}
