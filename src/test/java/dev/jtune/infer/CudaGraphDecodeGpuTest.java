package dev.jtune.infer;

import dev.jtune.model.CausalLM;
import dev.jtune.model.KvCache;
import dev.jtune.model.ModelLoader;
import dev.jtune.util.Devices;
import dev.jtune.util.Tensors;
import org.bytedeco.javacpp.PointerScope;
import org.bytedeco.pytorch.Device;
import org.bytedeco.pytorch.NoGradGuard;
import org.bytedeco.pytorch.Tensor;
import org.bytedeco.pytorch.global.torch;
import org.bytedeco.pytorch.global.torch.ScalarType;
import org.junit.jupiter.api.Tag;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;

import java.nio.file.Path;
import java.util.Set;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assumptions.assumeTrue;

/**
 * The captured decode step on CUDA: it is captured (no fallback), replayed for every step after the first, and its
 * logits equal the eager decode's step by step (fp32, 1e-4), over 40 steps, so a temporary the graph reuses is not
 * clobbered between replays; greedy text with graphs equals greedy text without. Skips without CUDA.
 */
@Tag("gpu")
class CudaGraphDecodeGpuTest {
    @ParameterizedTest
    @ValueSource(strings = {"llama-tiny", "qwen2-tiny", "qwen3-tiny", "gpt2-tiny"})
    void replayedStepsEqualEagerOnes(String name) {
        assumeTrue(Devices.cudaAvailable(), "CUDA not available");
        try (CausalLM m = ModelLoader.load(Path.of("src/test/resources/models", name), ScalarType.Float, new Device("cuda"));
             NoGradGuard ng = new NoGradGuard(); PointerScope scope = new PointerScope()) {
            long[] prompt = {30, 116, 107, 121, 66, 60};
            int p = prompt.length, steps = 40, capacity = p + steps;
            try (KvCache eager = m.newCache(1, capacity); KvCache fixed = m.newCache(1, capacity)) {
                Tensor ids = Tensors.longs(new long[][] {prompt}).to(m.device(), ScalarType.Long);
                Tensor first = m.forward(ids, null, null, eager).select(1, p - 1);
                m.forward(ids, null, null, fixed);
                long[] valid = new long[capacity];
                for (int i = 0; i < p; i++) valid[i] = 1;
                try (StaticDecodeStep step = new StaticDecodeStep(m, fixed, Tensors.longs(valid).view(1, capacity).ne(new org.bytedeco.pytorch.Scalar(0)), true)) {
                    long next = torch.argmax(first).item_long();
                    for (int s = 0; s < steps; s++) {
                        Tensor want = m.forward(Tensors.longs(new long[][] {{next}}).to(m.device(), ScalarType.Long), null, null, eager).select(1, 0);
                        Tensor got = step.step(new long[] {next}, new long[] {p + s}, new long[] {p + s});
                        assertNull(step.fallbackReason(), name + ": " + step.fallbackReason());
                        double diff = got.sub(want).abs().max().item_double();
                        assertTrue(diff < 1e-4, name + " step " + s + ": graph logits differ from eager by " + diff);
                        next = torch.argmax(want).item_long();
                    }
                    assertEquals(steps - 1, step.replays(), "every step after the capture is a replay");
                }
            }
            long[] plain = new TextGenerator(m, false).generate(prompt, new TextGenerator.Settings(24, 0, 1, 0), Set.of(), null);
            long[] graphed = new TextGenerator(m, true).generate(prompt, new TextGenerator.Settings(24, 0, 1, 0), Set.of(), null);
            assertArrayEquals(plain, graphed, name + ": greedy text with CUDA graphs");
        }
    }
}
