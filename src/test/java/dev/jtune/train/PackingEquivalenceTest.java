package dev.jtune.train;

import dev.jtune.train.step.CausalLmLoss;
import dev.jtune.data.Batch;
import dev.jtune.data.Batcher;
import dev.jtune.data.Example;
import dev.jtune.data.TensorBatch;
import dev.jtune.model.CausalLM;
import dev.jtune.model.ModelLoader;
import org.bytedeco.javacpp.PointerScope;
import org.bytedeco.pytorch.Device;
import org.bytedeco.pytorch.NoGradGuard;
import org.bytedeco.pytorch.global.torch.ScalarType;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;

import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Iterator;
import java.util.List;
import java.util.Random;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * Packing several examples into one row must not change what the model sees: with the block-diagonal
 * causal mask and positions restarting per example, the summed loss of packed rows equals the summed
 * loss of the same examples batched one per row (the model runs on real reference checkpoints).
 */
class PackingEquivalenceTest {
    @ParameterizedTest
    @ValueSource(strings = {"llama-tiny", "qwen3-tiny", "gpt2-tiny"})
    void packedLossEqualsUnpackedLoss(String name) {
        Random r = new Random(3);
        List<Example> examples = new ArrayList<>();
        for (int i = 0; i < 9; i++) {
            int len = 4 + r.nextInt(9);
            long[] ids = new long[len], labels = new long[len];
            for (int k = 0; k < len; k++) {
                ids[k] = r.nextInt(128);
                labels[k] = k < len / 3 ? -100 : ids[k];   // a "prompt" without loss, then a "response"
            }
            examples.add(new Example(ids, labels));
        }
        try (CausalLM m = ModelLoader.load(Path.of("src/test/resources/models", name), ScalarType.Float, new Device("cpu"));
             NoGradGuard ng = new NoGradGuard()) {
            double[] packed = lossAndTargets(m, new Batcher(examples, 2, false, 0, true, 32, 0));
            double[] plain = lossAndTargets(m, new Batcher(examples, 3, false, 0, false, 32, 0));
            assertEquals(plain[1], packed[1], "the same target tokens are scored");
            assertTrue(packed[2] < plain[2], "packing used fewer rows: " + packed[2] + " vs " + plain[2]);
            assertEquals(plain[0], packed[0], 1e-4 * Math.abs(plain[0]), name + ": summed loss");
        }
    }

    /** {sum of token NLLs, target tokens, rows} over one epoch. */
    private static double[] lossAndTargets(CausalLM m, Batcher b) {
        double sum = 0, targets = 0, rows = 0;
        Iterator<Batch> it = b.epoch(0, 0);
        while (it.hasNext()) {
            Batch batch = it.next();
            try (PointerScope s = new PointerScope()) {
                TensorBatch t = batch.toTensors(m.device());
                sum += CausalLmLoss.sumAtTargets(m, m.hidden(t.inputIds(), t.positionIds(), t.attentionMask(), null), t.labels()).item_double();
            }
            targets += batch.targetTokens();
            rows += batch.inputIds().length;
        }
        return new double[] {sum, targets, rows};
    }
}
