package dev.jtune.train.step;

import dev.jtune.train.step.ActivationCheckpointing;
import dev.jtune.train.step.BlockwiseForward;
import dev.jtune.train.step.CausalLmLoss;
import dev.jtune.config.Precision;
import dev.jtune.data.Batch;
import dev.jtune.data.TensorBatch;
import dev.jtune.distributed.BackwardOrder;
import dev.jtune.distributed.GradientsReady;
import dev.jtune.kernels.AutogradBridge;
import dev.jtune.kernels.Ops;
import dev.jtune.model.CausalLM;
import dev.jtune.util.Tensors;
import org.bytedeco.javacpp.PointerScope;
import org.bytedeco.pytorch.Scalar;
import org.bytedeco.pytorch.Tensor;
import org.bytedeco.pytorch.global.torch;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.CsvSource;

import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNotNull;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * What a data-parallel step relies on to start a bucket's all-reduce during the backward: when the step says a group's
 * gradients are final ({@link GradientsReady}: the head, then each block, last to first), they are. The gradients read
 * at each signal equal, bit for bit, those left after the backward returned; and the blocks below the signalled one have
 * no gradient yet (so the signal came early: the all-reduce can overlap the rest of the backward). Without
 * checkpointing the signals come from the hooks of {@link BlockwiseForward} (the claim about LibTorch's AccumulateGrad
 * priority); with it, from {@link ActivationCheckpointing} after each block's own backward.
 */
class GradientReadinessTest {

    /** A signal: which group, and the gradients of that group's tensors as they were then (null: none yet). */
    record Seen(int group, Map<String, float[]> grads, Map<String, Boolean> laterBlocksHaveGrad) {}

    @ParameterizedTest(name = "{0} lora={1} checkpointing={2}")
    @CsvSource({"llama-tiny, false, false", "llama-tiny, false, true", "llama-tiny, true, false", "llama-tiny, true, true",
            "gpt2-tiny, false, false", "gpt2-tiny, true, true"})
    void gradientsAreFinalWhenTheirGroupIsSignalled(String name, boolean lora, boolean checkpointing) {
        ActivationCheckpointingTest.Setup s = ActivationCheckpointingTest.setup(name, lora, Ops.OFF);
        try (CausalLM m = s.model()) {
            int blocks = m.numBlocks();
            BackwardOrder order = new BackwardOrder(blocks);
            Map<String, Integer> groupOf = new LinkedHashMap<>();
            s.trainable().keySet().forEach(k -> groupOf.put(k, order.groupOf(k)));
            for (int g = 0; g <= blocks; g++) {
                int group = g;
                assertTrue(groupOf.containsValue(group) || (lora && g == 0), "trained tensors in group " + g + ": " + groupOf);
            }
            List<Seen> seen = new ArrayList<>();
            GradientsReady ready = new GradientsReady() {
                @Override
                public void head() {
                    seen.add(snapshot(s.trainable(), groupOf, order.headGroup(), blocks));
                }

                @Override
                public void block(int i) {
                    seen.add(snapshot(s.trainable(), groupOf, order.blockGroup(i), blocks));
                }
            };
            Batch batch = ActivationCheckpointingTest.packedBatches(9, 3).get(0);
            m.setTraining(true);
            try (PointerScope scope = new PointerScope(); AutogradBridge.Step step = AutogradBridge.openStep()) {
                TensorBatch tb = batch.toTensors(m.device());
                double targets = batch.targetTokens();
                torch.manual_seed(3);
                if (checkpointing) {
                    ActivationCheckpointing.lossAndBackward(m, tb, Precision.FP32, false,
                            last -> CausalLmLoss.sumAtTargets(m, m.finalNorm(last), tb.labels()), l -> l.div(new Scalar(targets)), ready);
                } else {
                    Tensor loss = CausalLmLoss.sumAtTargets(m, BlockwiseForward.hidden(m, tb, ready), tb.labels());
                    loss.div(new Scalar(targets)).backward();
                }
            } finally {
                m.setTraining(false);
            }

            // the order: head, blocks last to first (block 0 unsignalled where its input needs no gradient: LoRA without
            // checkpointing, whose embedding is frozen)
            List<Integer> want = new ArrayList<>(List.of(order.headGroup()));
            for (int i = blocks - 1; i >= (lora && !checkpointing ? 1 : 0); i--) want.add(order.blockGroup(i));
            assertEquals(want, seen.stream().map(Seen::group).toList(), "signalled groups");
            for (Seen sn : seen) {
                sn.grads.forEach((k, g) -> {
                    assertNotNull(g, k + " has no gradient yet when group " + sn.group + " is signalled");
                    float[] fin = Tensors.toFloats(Tensors.gradOf(s.trainable().get(k)).contiguous());
                    assertArrayEquals(fin, g, 0f, k + ": the gradient at the signal of group " + sn.group + " is not the final one");
                });
                sn.laterBlocksHaveGrad.forEach((k, has) -> assertTrue(!has, k + " already has a gradient at the signal of group " + sn.group));
            }
            int checked = seen.stream().mapToInt(sn -> sn.grads.size()).sum();
            assertTrue(checked >= (lora ? 2 : 10), "gradients checked at their signal: " + checked);
        }
    }

    /** Copies (to Java) the gradients of group {@code g}; notes whether the blocks below it have gradients already. */
    private static Seen snapshot(Map<String, Tensor> trainable, Map<String, Integer> groupOf, int g, int blocks) {
        Map<String, float[]> grads = new LinkedHashMap<>();
        Map<String, Boolean> later = new LinkedHashMap<>();
        try (PointerScope scope = new PointerScope()) {
            trainable.forEach((k, p) -> {
                int kg = groupOf.get(k);
                Tensor grad = Tensors.gradOf(p);
                if (kg == g) grads.put(k, grad == null ? null : Tensors.toFloats(grad.contiguous()));
                else if (kg > g && kg <= blocks) later.put(k, grad != null);   // blocks below; not the embedding (a tied head's)
            });
        }
        return new Seen(g, grads, later);
    }
}
