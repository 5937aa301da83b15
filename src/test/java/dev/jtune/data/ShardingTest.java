package dev.jtune.data;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;
import org.junit.jupiter.api.Test;

import java.io.IOException;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Set;
import java.util.TreeSet;

import static org.junit.jupiter.api.Assertions.assertEquals;

/** The data-parallel shards of {@link Batcher}: PyTorch's DistributedSampler's rule, and the global batches of one process. */
class ShardingTest {
    /**
     * Against DistributedSampler itself (src/test/resources/distributed/distributed_sampler.py and its committed output): the
     * tail padded with the first rows, then every world-size-th row from the rank on.
     */
    @Test
    void shardsAreDistributedSamplers() throws IOException {
        JsonNode cases = new ObjectMapper().readTree(Path.of("src/test/resources/distributed/distributed_sampler.json").toFile());
        for (JsonNode c : cases) {
            int n = c.get("rows").asInt(), w = c.get("world_size").asInt();
            for (int r = 0; r < w; r++) {
                Batcher b = new Batcher(BatcherTest.examples(n), 1, false, 0, false, 64, 0, r, w);
                List<Integer> got = new ArrayList<>();
                Batcher.Rows rows = b.rows(0);
                for (int i = 0; i < rows.size(); i++) got.add(rows.row(i)[0]);
                List<Integer> want = new ArrayList<>();
                c.get("shards").get(r).forEach(x -> want.add(x.asInt()));
                assertEquals(want, got, n + " rows, rank " + r + " of " + w);
                assertEquals((n + w - 1) / w, b.batchesInEpoch(0), "every rank has the same number of batches");
            }
        }
    }

    /**
     * Step k of all ranks together is step k of one process whose batch is the world size times larger: the same
     * examples (shuffled, packed or not), in every epoch, as long as no padding is needed.
     */
    @ParameterizedTest(name = "packing={0}")
    @ValueSource(booleans = {false, true})
    void ranksTogetherTakeTheGlobalBatchOfOneProcess(boolean packing) {
        List<Example> ex = BatcherTest.examples(60);
        int world = 3, perDevice = 2;
        Batcher one = new Batcher(ex, perDevice * world, true, 7, packing, 24, 0);
        for (int epoch = 0; epoch < 2; epoch++) {
            Batcher.Rows all = one.rows(epoch);
            int steps = all.size() / (perDevice * world);   // whole global batches: the padded tail is the sampler test's
            for (int k = 0; k < steps; k++) {
                Set<Integer> want = new TreeSet<>(), got = new TreeSet<>();
                for (int i = k * perDevice * world; i < (k + 1) * perDevice * world; i++) for (int e : all.row(i)) want.add(e);
                for (int r = 0; r < world; r++) {
                    Batcher mine = new Batcher(ex, perDevice, true, 7, packing, 24, 0, r, world);
                    Batcher.Rows rows = mine.rows(epoch);
                    for (int i = k * perDevice; i < (k + 1) * perDevice; i++) for (int e : rows.row(i)) assertEquals(true, got.add(e), "example " + e + " twice");
                }
                assertEquals(want, got, "epoch " + epoch + ", step " + k);
            }
        }
    }
}
