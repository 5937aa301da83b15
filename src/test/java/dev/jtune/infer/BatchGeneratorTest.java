package dev.jtune.infer;

import dev.jtune.model.CausalLM;
import dev.jtune.model.ModelLoader;
import org.bytedeco.pytorch.Device;
import org.bytedeco.pytorch.global.torch.ScalarType;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;

import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Random;
import java.util.Set;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * Batched greedy decoding must give, for every prompt, exactly what decoding that prompt alone gives
 * ({@link TextGenerator}, one prompt, no padding): left padding, per-row positions and masks must be invisible.
 * Covers RoPE (Llama, Qwen3), a sliding window smaller than the prompts (Mistral, window 4) and GPT-2's learned
 * positions.
 */
class BatchGeneratorTest {
    static final Path MODELS = Path.of("src/test/resources/models");

    static List<long[]> prompts(long seed, int... lengths) {
        Random r = new Random(seed);
        List<long[]> out = new ArrayList<>();
        for (int len : lengths) {
            long[] p = new long[len];
            for (int i = 0; i < len; i++) p[i] = 1 + r.nextInt(120);
            out.add(p);
        }
        return out;
    }

    static long[] alone(CausalLM model, long[] prompt, int maxNew, Set<Long> eos) {
        return new TextGenerator(model).generate(prompt, new TextGenerator.Settings(maxNew, 0, 1, 0), eos, null);
    }

    @ParameterizedTest
    @ValueSource(strings = {"llama-tiny", "qwen3-tiny", "mistral-window-tiny", "gpt2-tiny"})
    void batchedGreedyEqualsOneAtATime(String name) {
        try (CausalLM model = ModelLoader.load(MODELS.resolve(name), ScalarType.Float, new Device("cpu"))) {
            List<long[]> ps = prompts(7, 9, 3, 14, 1, 6);
            List<long[]> batched = new BatchGenerator(model).greedy(ps, 10, Set.of(), 0);
            assertEquals(ps.size(), batched.size());
            for (int i = 0; i < ps.size(); i++) {
                long[] want = alone(model, ps.get(i), 10, Set.of());
                assertEquals(10, want.length);
                assertArrayEquals(want, batched.get(i), name + " prompt " + i + " (length " + ps.get(i).length + ")");
            }
        }
    }

    @Test
    void eachRowStopsAtItsOwnEos() {
        try (CausalLM model = ModelLoader.load(MODELS.resolve("llama-tiny"), ScalarType.Float, new Device("cpu"))) {
            List<long[]> ps = prompts(11, 5, 8, 2, 12);
            // an EOS id that one-at-a-time decoding of the first prompt produces mid-way
            long[] free = alone(model, ps.get(0), 12, Set.of());
            Set<Long> eos = Set.of(free[4]);
            List<long[]> batched = new BatchGenerator(model).greedy(ps, 12, eos, 0);
            int stoppedEarly = 0;
            for (int i = 0; i < ps.size(); i++) {
                long[] want = alone(model, ps.get(i), 12, eos);
                assertArrayEquals(want, batched.get(i), "prompt " + i);
                if (want.length < 12) stoppedEarly++;
            }
            assertTrue(stoppedEarly >= 1 && batched.get(0).length <= 4, "the EOS must stop the first row early");
        }
    }

    @Test
    void newTokensStopAtTheModelsLastPosition() {
        // gpt2-tiny has 64 positions: a 60-token prompt in the batch leaves room for 4 new tokens
        try (CausalLM model = ModelLoader.load(MODELS.resolve("gpt2-tiny"), ScalarType.Float, new Device("cpu"))) {
            List<long[]> ps = prompts(3, 60, 5);
            List<long[]> batched = new BatchGenerator(model).greedy(ps, 10, Set.of(), 0);
            assertEquals(4, batched.get(0).length);
            assertArrayEquals(alone(model, ps.get(0), 10, Set.of()), batched.get(0));
            assertEquals(4, batched.get(1).length);
        }
    }
}
