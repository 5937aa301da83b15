package dev.jtune.train.checkpoint;

import dev.jtune.io.SafetensorsWriter;
import org.bytedeco.pytorch.Device;
import org.bytedeco.pytorch.global.torch;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.io.ByteArrayOutputStream;
import java.io.PrintStream;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Map;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * Which checkpoint file each rank's generators come from: its own, else rank 0's (per-rank or single-process name),
 * and a warning only where an exact resume was expected (same world size) but the rank's own state is missing.
 * Each file holds a real CPU generator state, seeded differently, so the restored generator tells which was read.
 */
class RngStatesTest {
    @TempDir
    Path tmp;

    /** A checkpoint directory holding a generator state seeded with {@code seed} under each name in {@code files}. */
    private Path checkpoint(String name, Map<String, Long> files) throws Exception {
        Path ck = Files.createDirectories(tmp.resolve(name));
        for (var e : files.entrySet()) {
            torch.manual_seed(e.getValue());
            SafetensorsWriter.write(ck.resolve(e.getKey()), RngStates.capture("cpu"), Map.of());
        }
        return ck;
    }

    /** The first random number the CPU generator draws after restoring: tells which seed's state was loaded. */
    private static double draw() {
        return torch.rand(1).item_double();
    }

    private static double drawAfterSeed(long seed) {
        torch.manual_seed(seed);
        return draw();
    }

    private String restore(Path ck, int rank, int world, int ckWorld, double want) {
        ByteArrayOutputStream buf = new ByteArrayOutputStream();
        Path read = RngStates.restore(ck, rank, world, ckWorld, new Device("cpu"), new PrintStream(buf, true, StandardCharsets.UTF_8));
        assertEquals(want, draw(), 0.0, "rank " + rank + " restored " + read.getFileName());
        return buf.toString(StandardCharsets.UTF_8);
    }

    @Test
    void eachRankTakesItsOwnFileElseRankZeros() throws Exception {
        Path perRank = checkpoint("ddp", Map.of(RngStates.fileOf(0), 100L, RngStates.fileOf(1), 101L));
        assertEquals("", restore(perRank, 0, 2, 2, drawAfterSeed(100)));
        assertEquals("", restore(perRank, 1, 2, 2, drawAfterSeed(101)));
        // on 3 ranks: rank 2 has no file of its own and takes rank 0's; the world-size warning is the loop's, not this one
        assertEquals("", restore(perRank, 2, 3, 2, drawAfterSeed(100)));
        // on 1 rank: rank 0's
        assertEquals("", restore(perRank, 0, 1, 2, drawAfterSeed(100)));

        Path single = checkpoint("single", Map.of(RngStates.SINGLE, 7L));
        assertEquals("", restore(single, 0, 1, 1, drawAfterSeed(7)));
        assertEquals("", restore(single, 1, 2, 1, drawAfterSeed(7)));   // a single-process checkpoint on 2 ranks

        // a 2-rank checkpoint of an older jtune (rank 0's generators only, under the single-process name)
        String warned = restore(single, 1, 2, 2, drawAfterSeed(7));
        assertTrue(warned.contains("no random generator state of rank 1") && warned.contains(RngStates.SINGLE), warned);
        assertEquals("", restore(single, 0, 2, 2, drawAfterSeed(7)));
    }
}
