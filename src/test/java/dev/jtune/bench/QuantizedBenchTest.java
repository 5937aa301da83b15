package dev.jtune.bench;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import dev.jtune.cli.CliTest;
import dev.jtune.model.ModelConfig;
import dev.jtune.model.ParameterSpec;
import org.junit.jupiter.api.Test;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

/** jtune bench --quantization nf4: a 4-bit base of the tiny shape, its bytes counted from bitsandbytes' layout by hand. */
class QuantizedBenchTest {
    @Test
    void tinyShapeFourBitBase() throws Exception {
        CliTest.Run r = CliTest.run("bench", "--shape", "tiny", "--lora-r", "4", "--quantization", "nf4", "--seq-len", "16",
                "--steps", "2", "--warmup", "1", "--gemm-size", "128", "--json");
        assertEquals(0, r.code(), r.err());
        JsonNode c = new ObjectMapper().readTree(r.out()).get("config");
        JsonNode q = c.get("quantization");
        assertEquals("nf4", q.get("type").asText());
        assertTrue(q.get("double_quant").asBoolean());
        assertEquals("float32", q.get("compute_dtype").asText());   // fp32 on the CPU by default
        // every linear weight but the head: packed codes ceil(n/2), one 8-bit absmax per 64, one fp32 nested absmax per
        // 256 blocks, the 16-entry code map and the 256-entry nested map (fp32); everything else fp32 (the base's dtype)
        ModelConfig cfg = Shapes.config("tiny", null);
        long want = 0, quantized = 0, layers = 0;
        for (ParameterSpec.Entry e : ParameterSpec.of(cfg).values()) {
            long n = 1;
            for (long d : e.shape()) n *= d;
            boolean q4 = e.kind() == ParameterSpec.Kind.LINEAR && e.name().endsWith(".weight") && !e.name().startsWith("lm_head");
            if (q4) {
                long blocks = (n + 63) / 64;
                want += (n + 1) / 2 + blocks + 4 * ((blocks + 255) / 256) + 16 * 4 + 256 * 4;
                quantized += n;
                layers++;
            } else {
                want += 4 * n;
            }
        }
        assertEquals(layers, q.get("quantized_linear_layers").asLong());
        assertEquals(quantized, q.get("quantized_parameters").asLong());
        assertEquals(want, c.get("frozen_base_bytes").asLong());
        assertTrue(q.get("dequantize_seconds_per_pass").asDouble() > 0);
        assertEquals(2, q.get("dequantize_passes_per_step").asInt());
        CliTest.Run table = CliTest.run("bench", "--shape", "tiny", "--lora-r", "4", "--quantization", "fp4", "--seq-len", "16",
                "--steps", "1", "--warmup", "0", "--gemm-size", "128");
        assertEquals(0, table.code(), table.err());
        assertTrue(table.out().contains("frozen base") && table.out().contains("fp4 + double quant") && table.out().contains("dequantization"), table.out());
        CliTest.Run bad = CliTest.run("bench", "--shape", "tiny", "--quantization", "nf4", "--steps", "1");
        assertEquals(2, bad.code());
        assertTrue(bad.err().contains("needs --lora-r"), bad.err());
    }
}
