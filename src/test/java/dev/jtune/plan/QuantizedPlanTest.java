package dev.jtune.plan;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import dev.jtune.bench.Flops;
import dev.jtune.bench.Shapes;
import dev.jtune.cli.CliTest;
import dev.jtune.config.Precision;
import dev.jtune.model.ModelConfig;
import org.junit.jupiter.api.Test;

import java.util.List;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

/** jtune plan --quantization nf4: the frozen 4-bit base, counted from llama3-8b's published shape by hand. */
class QuantizedPlanTest {
    @Test
    void llama3_8bFourBitBaseFromItsShape() throws Exception {
        ModelConfig c = Shapes.config("llama3-8b", null);
        // Llama-3-8B: hidden 4096, MLP 14336, 32 layers, 8 KV heads of 128, vocabulary 128256 (untied head)
        long perLayer = 4096L * 4096 * 2 + 4096L * 1024 * 2 + 3L * 4096 * 14336;   // q, o; k, v; gate, up, down
        long quantized = 32 * perLayer;
        long all = Flops.parameters(c);
        double perQuantized = 0.5 + 1.0 / 64 + 4.0 / (64 * 256);                     // codes, 8-bit absmax, fp32 nested absmax
        long want = (long) Math.ceil(quantized * perQuantized) + (all - quantized) * 2 + 14336L * 4096 * 2 * 2;

        PlanRequest bf16 = new PlanRequest(c, 512, 1, 1, 16, List.of("all-linear"), Precision.BF16, 2, false, true);
        MemoryPlanner.Plan q = MemoryPlanner.plan(bf16.withFourBit(new PlanRequest.FourBit(true, 2, List.of())));
        assertEquals(want, q.bytes("frozen_weights"));
        MemoryPlanner.Plan plain = MemoryPlanner.plan(bf16);
        assertEquals(all * 2, plain.bytes("frozen_weights"));
        assertEquals(plain.totalBytes() - plain.bytes("frozen_weights"), q.totalBytes() - q.bytes("frozen_weights")
                - (long) (MemoryPlanner.HEADROOM * (q.bytes("frozen_weights") - plain.bytes("frozen_weights"))), 1024);

        CliTest.Run r = CliTest.run("plan", "--shape", "llama3-8b", "--lora-r", "16", "--precision", "bf16", "--device", "cuda",
                "--seq-len", "4096", "--gradient-checkpointing", "--quantization", "nf4", "--memory", "24GiB", "--json");
        assertEquals(0, r.code(), r.err());
        JsonNode j = new ObjectMapper().readTree(r.out());
        assertEquals(want, j.get("breakdown").get("frozen_weights").get("bytes").asLong(), r.out());
        assertTrue(j.get("fits").asBoolean(), r.out());
        CliTest.Run bad = CliTest.run("plan", "--shape", "tiny", "--quantization", "nf4");
        assertEquals(2, bad.code());
        assertTrue(bad.err().contains("needs --lora-r"), bad.err());
        bad = CliTest.run("plan", "--shape", "tiny", "--lora-r", "4", "--quantization", "int8");
        assertEquals(2, bad.code());
        assertTrue(bad.err().contains("expected nf4, fp4 or none"), bad.err());
    }
}
