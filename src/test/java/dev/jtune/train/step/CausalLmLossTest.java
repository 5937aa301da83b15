package dev.jtune.train.step;

import dev.jtune.model.CausalLM;
import dev.jtune.model.ModelLoader;
import dev.jtune.util.Tensors;
import org.bytedeco.javacpp.PointerScope;
import org.bytedeco.pytorch.Device;
import org.bytedeco.pytorch.Tensor;
import org.bytedeco.pytorch.global.torch.ScalarType;
import org.junit.jupiter.api.Test;

import java.nio.file.Path;

import static org.junit.jupiter.api.Assertions.assertEquals;

class CausalLmLossTest {
    /** Gathering target positions before the output head changes nothing but the cost; both equal a Java log-softmax. */
    @Test
    void targetOnlyLogitsGiveTheSameLossAndGradients() {
        try (CausalLM m = ModelLoader.load(Path.of("src/test/resources/models/qwen2-tiny"), ScalarType.Float, new Device("cpu"));
             PointerScope s = new PointerScope()) {
            long[][] ids = {{5, 9, 17, 33, 2, 8, 90, 1}, {7, 7, 64, 3, 120, 44, 0, 0}};
            long[][] labels = {{-100, -100, -100, 33, 2, 8, 90, 1}, {-100, 7, 64, 3, 120, 44, -100, -100}};
            Tensor x = Tensors.longs(ids), y = Tensors.longs(labels);
            // reference: full logits (B, T, V), hand-checked against a log-softmax computed in Java
            Tensor full = CausalLmLoss.sum(m.forward(x), y);
            Tensor gathered = CausalLmLoss.sumAtTargets(m, m.hidden(x, null, null, null), y);
            assertEquals(full.item_double(), gathered.item_double(), 1e-5 * Math.abs(full.item_double()));
            float[] logits = Tensors.toFloats(m.forward(x));
            int v = m.config().vocabSize(), t = ids[0].length;
            double want = 0;
            for (int b = 0; b < 2; b++) {
                for (int i = 0; i + 1 < t; i++) {
                    if (labels[b][i + 1] == -100) continue;
                    int off = (b * t + i) * v;
                    double max = Double.NEGATIVE_INFINITY, z = 0;
                    for (int k = 0; k < v; k++) max = Math.max(max, logits[off + k]);
                    for (int k = 0; k < v; k++) z += Math.exp(logits[off + k] - max);
                    want += -(logits[off + (int) labels[b][i + 1]] - max - Math.log(z));
                }
            }
            assertEquals(want, full.item_double(), 1e-4);
        }
    }

    /** Chunk sizes: Liger's rule on CUDA (logits per chunk about the size of the hidden states, at least 16M), 4M logits on the CPU. */
    @Test
    void chunkRows() {
        // Llama-3-8B at 8192 tokens: ceil(128256 / 4096) = 32, 8192 / 32 = 256 rows; 256 x 128256 logits = 4 x 8192 x 4096 hidden
        assertEquals(256, CausalLmLoss.chunkRows(8192, 128256, 4096, true));
        assertEquals(512, CausalLmLoss.chunkRows(8193, 128256, 4096, true), "rounded up to a power of two");
        // Qwen2.5-0.5B at 4096 tokens: Liger's rule gives 32 rows; the 16M-logit floor gives 128 (ceil(16M / 151936) = 111)
        assertEquals(128, CausalLmLoss.chunkRows(4096, 151936, 896, true));
        assertEquals(100, CausalLmLoss.chunkRows(100, 4096, 4096, true), "never more rows than there are");
        assertEquals(1, CausalLmLoss.chunkRows(1, 128256, 4096, true));
        assertEquals(1, CausalLmLoss.chunkRows(0, 128256, 4096, true));
        // CPU: 4M logits per chunk, at least 16 rows
        assertEquals((4L << 20) / 50257, CausalLmLoss.chunkRows(100000, 50257, 64, false));
        assertEquals(16, CausalLmLoss.chunkRows(100000, 1L << 20, 64, false));
        assertEquals(10, CausalLmLoss.chunkRows(10, 50257, 64, false));
    }
}
