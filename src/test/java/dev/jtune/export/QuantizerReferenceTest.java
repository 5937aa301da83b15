package dev.jtune.export;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;

import java.io.IOException;
import java.io.InputStream;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.util.HexFormat;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * jtune's ggml quantizers against an independent numpy transcription of ggml-quants.c's reference functions
 * (src/test/resources/gguf/ggml_quants_reference.py, which wrote ggml_quants_vectors.json): the same bytes for
 * every block, and bit-identical dequantized values. Rows: Gaussian, heavy-tailed, all-positive, and edge blocks
 * (all zero, constant, a ramp).
 */
class QuantizerReferenceTest {
    private static final JsonNode VECTORS = load();

    private static JsonNode load() {
        try (InputStream in = QuantizerReferenceTest.class.getResourceAsStream("/gguf/ggml_quants_vectors.json")) {
            return new ObjectMapper().readTree(in);
        } catch (IOException e) {
            throw new IllegalStateException(e);
        }
    }

    @ParameterizedTest
    @ValueSource(strings = {"Q8_0", "Q4_0", "Q5_0", "Q4_K", "Q6_K"})
    void bytesAndDequantizedValuesEqualTheReference(String type) {
        BlockQuantizer q = BlockQuantizer.of(GgmlType.valueOf(type));
        JsonNode ref = VECTORS.get(type);
        JsonNode inputs = VECTORS.get("inputs");
        for (int r = 0; r < inputs.size(); r++) {
            float[] x = new float[inputs.get(r).size()];
            for (int i = 0; i < x.length; i++) x[i] = (float) inputs.get(r).get(i).asDouble();
            ByteBuffer out = ByteBuffer.allocate((int) q.type().rowBytes(x.length)).order(ByteOrder.LITTLE_ENDIAN);
            q.quantizeRow(x, 0, x.length, out);
            assertEquals(0, out.remaining(), type + " row " + r + ": bytes written");
            assertEquals(ref.get("bytes").get(r).asText(), HexFormat.of().formatHex(out.array()), type + " row " + r + ": quantized bytes");

            float[] y = new float[x.length];
            out.flip();
            q.dequantizeRow(out, y, 0, x.length);
            double maxErr = 0, maxAbs = 0;
            for (int i = 0; i < y.length; i++) {
                float want = (float) ref.get("dequantized").get(r).get(i).asDouble();
                assertEquals(Float.floatToIntBits(want), Float.floatToIntBits(y[i]), type + " row " + r + " element " + i + ": " + want + " vs " + y[i]);
                maxErr = Math.max(maxErr, Math.abs(y[i] - x[i]));
                maxAbs = Math.max(maxAbs, Math.abs(x[i]));
            }
            // the format does what it is for: a reconstruction error well below the data's range
            assertTrue(maxErr <= 0.2 * maxAbs + 1e-12, type + " row " + r + ": max error " + maxErr + " for max |x| " + maxAbs);
        }
    }

    @ParameterizedTest
    @ValueSource(floats = {0f, 1f, -2.5f, 65504f, 1e-8f, 6.1e-5f, 3.0e-6f, 1.0009766f, 0.33333334f})
    void fp16RoundsToNearestEvenAndBack(float f) {
        short h = Fp16.fromFloat(f);
        float back = Fp16.toFloat(h);
        // the nearest half: no other half value is closer (ties go to the even mantissa)
        int mag = h & 0x7FFF;   // neighbours by magnitude (zero has none below)
        float below = mag == 0 ? back : Fp16.toFloat((short) (h - 1)), above = Fp16.toFloat((short) (h + 1));
        if (f != 0) {
            assertTrue(Math.abs(back - f) <= Math.abs(below - f) && Math.abs(back - f) <= Math.abs(above - f), f + " -> " + back);
        }
        assertEquals(back, Fp16.toFloat(Fp16.fromFloat(back)), "a half value survives the round trip");
    }
}
