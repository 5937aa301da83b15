package dev.jtune.bench;

import com.fasterxml.jackson.databind.JsonNode;
import dev.jtune.cli.CliTest;
import dev.jtune.infer.TextGenerator;
import dev.jtune.model.CausalLM;
import dev.jtune.model.ModelLoader;
import org.bytedeco.pytorch.Device;
import org.bytedeco.pytorch.global.torch.ScalarType;
import org.junit.jupiter.api.Test;

import java.nio.file.Path;
import java.util.Set;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * `jtune bench --generate` on a tiny model directory: rates for each batch size, the weight bytes read per step, and row
 * 0's greedy ids equal to what TextGenerator gives for the same seeded prompt (the ids the llama.cpp peer is checked
 * against); bad flags are user errors.
 */
class DecodeBenchTest {
    static final Path MODEL = Path.of("src/test/resources/models/llama-tiny");

    @Test
    void ratesAndGreedyIdsForEachBatch() throws Exception {
        CliTest.Run r = CliTest.run("bench", "--generate", "--model", MODEL.toString(), "--batch", "1,3", "--prompt-tokens", "5",
                "--new-tokens", "6", "--json");
        assertEquals(0, r.code(), r.err());
        JsonNode j = BenchCommandTest.JSON.readTree(r.out());
        assertEquals(2, j.get("batches").size());
        long[] want;
        try (CausalLM m = ModelLoader.load(MODEL, ScalarType.Float, new Device("cpu"))) {
            assertEquals(m.parameterCount() * 4 + (m.config().tied() ? (long) m.config().vocabSize() * m.config().hiddenSize() * 4 : 0),
                    j.get("weightBytes").asLong());
            long[] prompt = DecodeBench.prompts(1, 5, m.config().vocabSize(), 0).get(0);
            want = new TextGenerator(m).generate(prompt, new TextGenerator.Settings(6, 0, 1, 0), Set.of(), null);
        }
        for (JsonNode b : j.get("batches")) {
            assertTrue(b.get("tokensPerSecond").asDouble() > 0, b.toString());
            assertEquals(5, b.get("steps").asInt());
            long[] row0 = new long[b.get("row0").size()];
            for (int i = 0; i < row0.length; i++) row0[i] = b.get("row0").get(i).asLong();
            assertArrayEquals(want, row0, "batch " + b.get("batch") + ": row 0 decodes as alone");
        }
    }

    @Test
    void badFlagsAreUserErrors() {
        BenchCommandTest.assertUserError(CliTest.run("bench", "--generate", "--model", MODEL.toString(), "--new-tokens", "1"), "--new-tokens");
        BenchCommandTest.assertUserError(CliTest.run("bench", "--generate", "--model", "no/such/dir"), "--model");
        BenchCommandTest.assertUserError(CliTest.run("bench", "--generate"), "--model DIR or --shape");
    }
}
