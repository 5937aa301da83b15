package dev.jtune.train.step;

import dev.jtune.config.Precision;
import dev.jtune.data.Batch;
import dev.jtune.data.Batcher;
import dev.jtune.data.Example;
import dev.jtune.data.TensorBatch;
import dev.jtune.kernels.EmulatedOps;
import dev.jtune.kernels.Ops;
import dev.jtune.model.CausalLM;
import dev.jtune.model.ModelLoader;
import dev.jtune.peft.Lora;
import dev.jtune.peft.LoraAdapter;
import dev.jtune.peft.LoraSpec;
import dev.jtune.util.Tensors;
import org.bytedeco.javacpp.PointerScope;
import org.bytedeco.pytorch.Device;
import org.bytedeco.pytorch.Scalar;
import org.bytedeco.pytorch.Tensor;
import org.bytedeco.pytorch.global.torch;
import org.bytedeco.pytorch.global.torch.ScalarType;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.CsvSource;

import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Iterator;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Random;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * Activation checkpointing changes memory, not numbers: with and without it, the loss and every gradient of the
 * reference checkpoints (Llama, Qwen3, GPT-2) are equal, for full fine-tuning and for LoRA with dropout (the recompute
 * must draw the same dropout masks; GPT-2 also runs with its config.json's attn_pdrop, resid_pdrop and embd_pdrop of 0.1), on packed rows (block-diagonal masks), on both kernel paths, in fp32 and bf16.
 *
 * <p>Measured on the CPU: bit-identical in fp32 and in bf16 (the recompute runs the same ops on the same inputs), so
 * the comparison is exact. A whole training run (several steps, accumulation, AdamW) is compared step by step too.
 */
class ActivationCheckpointingTest {
    private static final Device CPU = new Device("cpu");

    /** Trainable copies of a reference model (full: every weight in fp32; LoRA: random A and B, dropout 0.2). */
    record Setup(CausalLM model, Map<String, Tensor> trainable) {}

    /** A setup as what a step trains: its tensors, all decayed; it cannot be saved (these tests never save). */
    static Trainable trainable(Setup s) {
        return new Trainable(s.model()) {
            @Override
            public Map<String, Tensor> parameters() {
                return s.trainable();
            }

            @Override
            public java.util.function.Predicate<String> decayed() {
                return n -> true;
            }

            @Override
            public dev.jtune.io.WrittenFiles save(Path dir, Path baseModelDir, Path tokenizerDir, String chatTemplate) {
                throw new UnsupportedOperationException("test setup");
            }

            @Override
            public void restore(Path dir) {
                throw new UnsupportedOperationException("test setup");
            }

            @Override
            public String what() {
                return "test setup";
            }
        };
    }

    static Setup setup(String name, boolean lora, Ops ops) {
        return setup(name, lora, ops, CPU);
    }

    static Setup setup(String name, boolean lora, Ops ops, Device device) {
        Map<String, Tensor> params = new LinkedHashMap<>();
        CausalLM loaded = ModelLoader.load(Path.of("src/test/resources/models", name), ScalarType.Float, device);
        try (PointerScope scope = new PointerScope()) {
            loaded.parameters().forEach((k, v) -> {
                Tensor c = v.clone();
                if (!lora) c.requires_grad_(true);
                params.put(k, c.retainReference());
            });
        }
        CausalLM model = ModelLoader.create(loaded.config(), params, ScalarType.Float, device, loaded, ops);
        if (!lora) return new Setup(model, model.parameters());
        Map<String, LoraAdapter> adapters;
        try (PointerScope scope = new PointerScope()) {
            adapters = Lora.create(loaded.config(), new LoraSpec(4, 8, 0.2, List.of("all-linear"), false, false), 5, device, "test");
        }
        model.setAdapters(adapters);
        return new Setup(model, Lora.tensors(adapters));
    }

    /** Examples of 4..12 tokens whose first third is prompt (label -100), packed into rows of 32. */
    static List<Batch> packedBatches(int count, long seed) {
        Random r = new Random(seed);
        List<Example> examples = new ArrayList<>();
        for (int i = 0; i < count; i++) {
            int len = 4 + r.nextInt(9);
            long[] ids = new long[len], labels = new long[len];
            for (int k = 0; k < len; k++) {
                ids[k] = r.nextInt(128);
                labels[k] = k < len / 3 ? -100 : ids[k];
            }
            examples.add(new Example(ids, labels));
        }
        List<Batch> out = new ArrayList<>();
        Iterator<Batch> it = new Batcher(examples, 2, false, 0, true, 32, 0).epoch(0, 0);
        while (it.hasNext()) out.add(it.next());
        return out;
    }

    /** Loss of one packed batch and every trainable gradient (copied out, then zeroed), with or without checkpointing. */
    static Map<String, float[]> lossAndGradients(Setup s, Batch batch, Precision precision, boolean checkpointing, double[] lossOut) {
        CausalLM m = s.model();
        Device device = m.device();
        torch.manual_seed(11);
        m.setTraining(true);
        Map<String, float[]> grads = new LinkedHashMap<>();
        try (PointerScope scope = new PointerScope()) {
            TensorBatch tb = batch.toTensors(device);
            double targets = batch.targetTokens();
            Tensor loss;
            if (checkpointing) {
                loss = ActivationCheckpointing.lossAndBackward(m, tb, precision, true,
                        last -> CausalLmLoss.sumAtTargets(m, m.finalNorm(last), tb.labels()),
                        l -> l.div(new Scalar(targets)));
            } else {
                try (Autocast ac = Autocast.enter(precision, device)) {
                    loss = CausalLmLoss.sumAtTargets(m, m.hidden(tb.inputIds(), tb.positionIds(), tb.attentionMask(), null), tb.labels());
                }
                loss.div(new Scalar(targets)).backward();
            }
            lossOut[0] = loss.item_double();
            lossOut[1] = torch.rand(new long[] {1}, Tensors.options(ScalarType.Float, device)).item_double();   // the generator after the step: where the plain step leaves it
            s.trainable().forEach((k, p) -> {
                grads.put(k, Tensors.toFloats(Tensors.gradOf(p).to(new Device("cpu"), ScalarType.Float).contiguous()));
                p.grad().zero_();
            });
        } finally {
            m.setTraining(false);
        }
        return grads;
    }

    @ParameterizedTest(name = "{0} lora={1} kernels={2} {3}")
    @CsvSource({
            "llama-tiny, false, off, FP32", "llama-tiny, true, off, FP32", "llama-tiny, true, emulated, FP32", "llama-tiny, false, emulated, BF16",
            "qwen3-tiny, false, off, FP32", "qwen3-tiny, true, off, FP32", "qwen3-tiny, true, emulated, BF16",
            "gpt2-tiny, false, off, FP32", "gpt2-tiny, true, off, FP32", "gpt2-tiny, true, off, BF16"})
    void lossAndEveryGradientEqualWithAndWithoutCheckpointing(String name, boolean lora, String kernels, Precision precision) {
        Ops ops = kernels.equals("off") ? Ops.OFF : EmulatedOps.policy();
        Setup s = setup(name, lora, ops);
        try (CausalLM m = s.model()) {
            Batch batch = packedBatches(9, 3).get(0);
            assertTrue(batch.segmentIds() != null, "a packed row (block-diagonal mask)");
            double[] plainLoss = new double[2], ckptLoss = new double[2];
            Map<String, float[]> plain = lossAndGradients(s, batch, precision, false, plainLoss);
            Map<String, float[]> ckpt = lossAndGradients(s, batch, precision, true, ckptLoss);
            assertEquals(plainLoss[0], ckptLoss[0], 0.0, "loss");
            assertEquals(plainLoss[1], ckptLoss[1], 0.0, "the random generator ends where the plain step leaves it");
            assertEquals(plain.keySet(), ckpt.keySet());
            int nonZero = 0;
            for (String k : plain.keySet()) {
                assertArrayEquals(plain.get(k), ckpt.get(k), 0f, k + ": gradient");
                for (float v : plain.get(k)) if (v != 0) { nonZero++; break; }
            }
            assertTrue(nonZero >= plain.size() - 2, "gradients reach (nearly) every trainable tensor: " + nonZero + "/" + plain.size());
        }
    }

    /** Three optimizer steps of two accumulated packed micro-batches each: the same losses and weights, step by step. */
    @ParameterizedTest(name = "{0} lora={1} {2}")
    @CsvSource({"llama-tiny, true, FP32", "qwen3-tiny, false, BF16", "gpt2-tiny, true, BF16", "llama-tiny, false, FP32", "qwen3-tiny, true, FP16"})
    void trainingWithAccumulationMatchesStepByStep(String name, boolean lora, Precision precision) {
        List<Batch> batches = packedBatches(80, 9);
        assertTrue(batches.size() >= 6, "six micro-batches: " + batches.size());
        double[][] losses = new double[2][];
        List<Map<String, float[]>> weights = new ArrayList<>();
        for (int c = 0; c < 2; c++) {
            boolean ckpt = c == 1;
            Setup s = setup(name, lora, Ops.OFF);
            TrainStep.Settings settings = new TrainStep.Settings(precision, 0.01, 0.9, 0.999, 1e-8, 1.0,
                    new ActivationCheckpointing.Settings(ckpt, false), 0.0, 0, dev.jtune.distributed.DataParallel.DEFAULT_BUCKET_CAP_MB, null);
            try (TrainStep st = TrainStep.assemble(trainable(s), settings, dev.jtune.distributed.DistGroup.single())) {
                torch.manual_seed(5);
                losses[c] = new double[3];
                for (int step = 0; step < 3; step++) {
                    List<Batch> micro = batches.subList(2 * step, 2 * step + 2);
                    losses[c][step] = st.step(micro, 1e-3).loss();
                }
                Map<String, float[]> w = new LinkedHashMap<>();
                try (PointerScope scope = new PointerScope()) {
                    s.trainable().forEach((k, p) -> w.put(k, Tensors.toFloats(p.detach().to(ScalarType.Float).contiguous())));
                }
                weights.add(w);
            }
        }
        for (double l : losses[0]) assertTrue(Double.isFinite(l) && l > 0, "a finite loss: " + java.util.Arrays.toString(losses[0]));
        assertArrayEquals(losses[0], losses[1], 0.0, "losses per step");
        for (String k : weights.get(0).keySet()) assertArrayEquals(weights.get(0).get(k), weights.get(1).get(k), 0f, k);
    }
}
