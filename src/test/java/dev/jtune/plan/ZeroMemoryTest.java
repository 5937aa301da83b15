package dev.jtune.plan;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import dev.jtune.bench.Shapes;
import dev.jtune.cli.CliTest;
import dev.jtune.cli.Main;
import dev.jtune.config.Precision;
import dev.jtune.distributed.ZeroPartition;
import dev.jtune.model.ModelConfig;
import dev.jtune.model.ParameterSpec;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.concurrent.TimeUnit;

import static dev.jtune.plan.PlanCommandTest.assertUserError;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * ZeRO stage 1's memory as plan and bench show it: the optimizer state of one rank is its shard (about 1/N), every other
 * part of the plan unchanged; bench's ranks report the bytes they really hold.
 */
class ZeroMemoryTest {
    static final ObjectMapper JSON = new ObjectMapper();
    static final ModelConfig TINY = Shapes.config("tiny", null);

    static PlanRequest full(int shards) {
        return new PlanRequest(TINY, 128, 2, 1, 0, List.of("all-linear"), Precision.FP32, 4, false, false).withOptimizerShards(shards);
    }

    /** Elements of each of the model's tensors, in its order. */
    static Map<String, Long> sizes(ModelConfig c) {
        Map<String, Long> m = new LinkedHashMap<>();
        for (ParameterSpec.Entry e : ParameterSpec.of(c).values()) {
            long k = 1;
            for (long d : e.shape()) k *= d;
            m.put(e.name(), k);
        }
        return m;
    }

    @Test
    void plannerDividesTheOptimizerStateByTheRanks() {
        MemoryPlanner.Plan one = MemoryPlanner.plan(full(1));
        long whole = one.bytes("optimizer_state");
        long largestTensor = sizes(TINY).values().stream().mapToLong(Long::longValue).max().orElseThrow();
        assertEquals(8 * sizes(TINY).values().stream().mapToLong(Long::longValue).sum(), whole, "two fp32 moments per parameter");
        for (int n : new int[] {2, 3, 4}) {
            MemoryPlanner.Plan p = MemoryPlanner.plan(full(n));
            long shard = p.bytes("optimizer_state");
            // the largest rank's shard: at least 1/N, above it by less than one tensor (whole tensors are assigned)
            assertTrue(shard >= whole / n && shard <= whole / n + 8 * largestTensor, n + " ranks: " + shard + " of " + whole);
            assertEquals(8 * ZeroPartition.of(sizes(TINY), n).largestShard(), shard, "the trainer's own partition");
            for (MemoryPlanner.Part part : one.parts()) {
                if (part.key().equals("optimizer_state") || part.key().equals("workspace")) continue;
                assertEquals(part.bytes(), p.bytes(part.key()), part.key() + " is per rank already");
            }
            assertTrue(p.totalBytes() < one.totalBytes() - (whole - shard) * 0.9, "the peak falls with the state");
            assertTrue(p.parts().stream().anyMatch(x -> x.detail().contains("ZeRO stage 1, this rank's shard (the largest of " + n)));
        }
        // LoRA: the adapters' state, an even share
        PlanRequest lora = full(1).withLora(8, List.of("all-linear"), 4);
        long adapters = MemoryPlanner.plan(lora).bytes("optimizer_state");
        assertEquals((adapters / 8 + 3) / 4 * 8, MemoryPlanner.plan(lora.withOptimizerShards(4)).bytes("optimizer_state"));
    }

    @Test
    void planCommandShowsTheShardWithWorldSize(@TempDir Path tmp) throws Exception {
        CliTest.Run r = CliTest.run("plan", "--shape", "tiny", "--seq-len", "128", "--micro-batch", "2", "--zero-stage", "1",
                "--world-size", "4", "--memory", "24GiB", "--json");
        assertEquals(0, r.code(), r.err());
        JsonNode j = JSON.readTree(r.out());
        assertEquals(4, j.get("config").get("optimizer_shards").asInt());
        assertEquals(MemoryPlanner.plan(full(4)).bytes("optimizer_state"), j.get("breakdown").get("optimizer_state").get("bytes").asLong());
        CliTest.Run table = CliTest.run("plan", "--shape", "tiny", "--zero-stage", "1", "--world-size", "4", "--memory", "24GiB");
        assertTrue(table.out().contains("per rank of 4, ZeRO stage 1: the optimizer state is sharded across the ranks"), table.out());

        // the experiment's training.zero_stage, with --world-size
        Path yaml = PlanCommandTest.experiment(tmp);
        Files.writeString(yaml, Files.readString(yaml) + "  zero_stage: 1\n");
        JsonNode plain = JSON.readTree(CliTest.run("plan", yaml.toString(), "--memory", "24GiB", "--json").out());
        JsonNode two = JSON.readTree(CliTest.run("plan", yaml.toString(), "--world-size", "2", "--memory", "24GiB", "--json").out());
        long whole = plain.get("breakdown").get("optimizer_state").get("bytes").asLong();
        long half = two.get("breakdown").get("optimizer_state").get("bytes").asLong();
        assertTrue(half < whole && half >= whole / 2, half + " of " + whole);
        assertEquals(2, two.get("config").get("optimizer_shards").asInt());
        // data parallel: every rank also holds the gradient buckets (a flat fp32 copy of the gradients); one process none
        assertEquals(2, two.get("config").get("world_size").asInt());
        assertEquals(two.get("breakdown").get("gradients").get("bytes").asLong(), two.get("breakdown").get("gradient_buckets").get("bytes").asLong());
        assertTrue(!plain.get("breakdown").has("gradient_buckets"), "one process has no buckets");
        CliTest.Run dpTable = CliTest.run("plan", "--shape", "tiny", "--world-size", "2", "--memory", "24GiB");
        assertTrue(dpTable.out().contains("per rank of 2, plain data parallel") && dpTable.out().contains("gradient buckets"), dpTable.out());

        assertUserError(CliTest.run("plan", "--shape", "tiny", "--zero-stage", "2"), "--zero-stage: ZeRO stage 2 is not built in jtune; supported: 0");
        assertUserError(CliTest.run("plan", "--shape", "tiny", "--world-size", "0"), "--world-size: must be at least 1");
        assertUserError(CliTest.run("plan", yaml.toString(), "--zero-stage", "1"), "go with --shape");
        Files.writeString(yaml, Files.readString(yaml).replace("zero_stage: 1", "zero_stage: 3"));
        assertUserError(CliTest.run("plan", yaml.toString()), "training.zero_stage: ZeRO stage 3");
    }

    /** Two real ranks of bench with ZeRO stage 1: rank 0 reports the bytes of its shard, and the ranks' shards sum to the whole. */
    @Test
    void benchReportsTheOptimizerStateOfTheRank(@TempDir Path tmp) throws Exception {
        List<String> cmd = new ArrayList<>(List.of(Path.of(System.getProperty("java.home"), "bin", "java").toString(), "-cp",
                System.getProperty("java.class.path"), Main.class.getName(), "bench", "--shape", "tiny", "--seq-len", "16", "--micro-batch", "1",
                "--steps", "1", "--warmup", "0", "--gemm-size", "64", "--nproc-per-node", "2", "--zero-stage", "1", "--json"));
        ProcessBuilder pb = new ProcessBuilder(cmd).redirectOutput(tmp.resolve("out").toFile()).redirectError(tmp.resolve("err").toFile());
        pb.environment().keySet().removeIf(k -> k.equals("RANK") || k.equals("WORLD_SIZE") || k.startsWith("SLURM_") || k.startsWith("TORCHELASTIC_"));
        pb.environment().put("JTUNE_NUM_THREADS", "1");
        Process p = pb.start();
        assertTrue(p.waitFor(8, TimeUnit.MINUTES), "bench finishes");
        assertEquals(0, p.exitValue(), Files.readString(tmp.resolve("err")));
        JsonNode d = JSON.readTree(Files.readString(tmp.resolve("out"))).get("distributed");
        ZeroPartition part = ZeroPartition.of(sizes(TINY), 2);
        assertEquals(1, d.get("zero_stage").asInt());
        assertEquals(8 * part.rankElements()[0], d.get("optimizer_state_bytes_rank").asLong(), "rank 0's shard: two fp32 moments");
        assertEquals(8 * (part.rankElements()[0] + part.rankElements()[1]), d.get("optimizer_state_bytes_all_ranks").asLong());
        assertTrue(d.get("optimizer_state_bytes_rank").asLong() < 0.6 * d.get("optimizer_state_bytes_all_ranks").asLong(), "about half");
        assertEquals(d.get("optimizer_state_bytes_rank").asLong(),
                JSON.readTree(Files.readString(tmp.resolve("out"))).get("memory").get("optimizer_state_bytes").asLong());

        CliTest.Run bad = CliTest.run("bench", "--shape", "tiny", "--zero-stage", "2");
        assertUserError(bad, "--zero-stage: ZeRO stage 2 is not built in jtune");
    }
}
