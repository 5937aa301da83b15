package dev.jtune.quant;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import dev.jtune.util.Tensors;
import org.bytedeco.javacpp.BytePointer;
import org.bytedeco.javacpp.PointerScope;
import org.bytedeco.pytorch.Tensor;
import org.bytedeco.pytorch.global.torch;
import org.bytedeco.pytorch.global.torch.ScalarType;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.DynamicTest;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.TestFactory;

import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.charset.StandardCharsets;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Base64;
import java.util.List;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assertions.fail;

/**
 * jtune's 4-bit codec against the independent Python implementation
 * ({@code src/test/python/quant/bnb4bit_reference.py}, outputs in
 * {@code src/test/resources/quant/bnb4bit_reference.json.gz}): packed bytes, absmax, double-quantized absmax
 * and nested absmax bit for bit, and dequantized values element by element, for odd sizes (1, 63, 65,
 * 4097, 3x67, 17000), a zero block, an all-zero tensor, extreme values (±3e38, subnormals, values on the
 * decision boundaries), bf16 and fp16 inputs, nf4 and fp4, with and without double quantization.
 */
@SuppressWarnings("try")
class FourBitReferenceTest {
    static JsonNode doc;

    @BeforeAll
    static void load() throws IOException {
        try (var in = new java.util.zip.GZIPInputStream(java.nio.file.Files.newInputStream(Path.of("src/test/resources/quant/bnb4bit_reference.json.gz")))) {
            doc = new ObjectMapper().readTree(in);
        }
    }

    @Test
    void codeTablesAndDynamicMapMatch() {
        assertArrayEquals(floats(doc.get("nf4")), QuantType.NF4.codeValues());
        assertArrayEquals(floats(doc.get("fp4")), QuantType.FP4.codeValues());
        float[] expected = floats(doc.get("dynamic_map"));
        float[] actual = DynamicMap.values();
        assertEquals(256, actual.length);
        for (int i = 0; i < 256; i++) {
            assertEquals(Float.floatToIntBits(expected[i]), Float.floatToIntBits(actual[i]),
                    "dynamic map[" + i + "]: expected " + expected[i] + ", got " + actual[i]);
        }
    }

    @TestFactory
    List<DynamicTest> everyCaseMatchesTheReference() {
        List<DynamicTest> tests = new ArrayList<>();
        for (JsonNode c : doc.get("cases")) {
            tests.add(DynamicTest.dynamicTest(c.get("name").asText(), () -> check(c)));
        }
        assertTrue(tests.size() >= 40, "cases: " + tests.size());
        return tests;
    }

    private static void check(JsonNode c) {
        try (PointerScope scope = new PointerScope()) {
            String name = c.get("name").asText();
            QuantType type = QuantType.parse(c.get("quant_type").asText(), name);
            boolean dq = c.get("double_quant").asBoolean();
            ScalarType dtype = Tensors.parseDtype(c.get("dtype").asText(), name);
            long[] shape = longs(c.get("shape"));
            Tensor input = Tensors.floats(f32(c.get("input_f32").asText())).to(dtype).view(shape);

            QuantizedTensor q = FourBitCodec.quantize(input, type, dq, name);
            byte[] packed = Base64.getDecoder().decode(c.get("packed").asText());
            assertArrayEquals(new long[] {packed.length, 1}, Tensors.shape(q.packed()), name + ": packed shape");
            assertBytes(packed, dev.jtune.util.Tensors.toBytes(q.packed()), name + ": packed codes");
            if (dq) {
                assertBytes(Base64.getDecoder().decode(c.get("qabsmax").asText()), dev.jtune.util.Tensors.toBytes(q.absmax()),
                        name + ": quantized absmax");
                assertBits(f32(c.get("nested_absmax").asText()), Tensors.toFloats(q.nestedAbsmax()), name + ": nested absmax");
                assertEquals(Float.floatToIntBits((float) c.get("nested_offset").asDouble()),
                        Float.floatToIntBits(q.state().nestedOffset()), name + ": nested offset");
            } else {
                assertBits(f32(c.get("absmax").asText()), Tensors.toFloats(q.absmax()), name + ": absmax");
            }
            QuantState expectedState = QuantState.parse(c.get("quant_state").toString().getBytes(StandardCharsets.UTF_8), name);
            assertEquals(expectedState, q.state(), name + ": quant state");
            assertEquals(expectedState, QuantState.parse(q.state().toJsonBytes(), name), name + ": quant state JSON round trip");

            float[] expected = f32(c.get("dequantized_f32").asText());
            Tensor deq = FourBitCodec.dequantize(q);
            assertEquals(dtype, deq.scalar_type().intern(), name + ": dequantized dtype comes from the quant state");
            assertArrayEquals(shape, Tensors.shape(deq), name + ": dequantized shape");
            assertValues(expected, Tensors.toFloats(deq), name + ": dequantized");

            // The reference's own tensors (not jtune's quantizer output) dequantize to the same values.
            Tensor refAbsmax = dq ? bytesTensor(Base64.getDecoder().decode(c.get("qabsmax").asText()))
                    : Tensors.floats(f32(c.get("absmax").asText()));
            QuantizedTensor ref = new QuantizedTensor(expectedState, bytesTensor(packed).view(packed.length, 1), refAbsmax,
                    Tensors.floats(floats(doc.get(type.bnbName()))),
                    dq ? Tensors.floats(f32(c.get("nested_absmax").asText())) : null,
                    dq ? Tensors.floats(floats(doc.get("dynamic_map"))) : null);
            assertValues(expected, Tensors.toFloats(FourBitCodec.dequantize(ref)), name + ": dequantized from the reference's tensors");
        }
    }

    /** Element-wise, dtype-aware: both sides compute quant_map * absmax in float32 and round once, so exact. */
    static void assertValues(float[] expected, float[] actual, String what) {
        assertEquals(expected.length, actual.length, what + ": count");
        for (int i = 0; i < expected.length; i++) {
            if (Float.floatToIntBits(expected[i]) != Float.floatToIntBits(actual[i])
                    && !(expected[i] == 0f && actual[i] == 0f)) {
                fail(what + "[" + i + "]: expected " + expected[i] + ", got " + actual[i]);
            }
        }
    }

    static void assertBits(float[] expected, float[] actual, String what) {
        assertEquals(expected.length, actual.length, what + ": count");
        for (int i = 0; i < expected.length; i++) {
            assertEquals(Float.floatToIntBits(expected[i]), Float.floatToIntBits(actual[i]),
                    what + "[" + i + "]: expected " + expected[i] + ", got " + actual[i]);
        }
    }

    static void assertBytes(byte[] expected, byte[] actual, String what) {
        assertEquals(expected.length, actual.length, what + ": length");
        for (int i = 0; i < expected.length; i++) {
            if (expected[i] != actual[i]) {
                fail(String.format("%s: byte %d: expected 0x%02x, got 0x%02x", what, i, expected[i] & 0xff, actual[i] & 0xff));
            }
        }
    }

    static Tensor bytesTensor(byte[] b) {
        try (BytePointer p = new BytePointer(b)) {
            return torch.from_blob(p, new long[] {b.length}, Tensors.options(ScalarType.Byte)).clone();
        }
    }

    static float[] f32(String b64) {
        ByteBuffer bb = ByteBuffer.wrap(Base64.getDecoder().decode(b64)).order(ByteOrder.LITTLE_ENDIAN);
        float[] out = new float[bb.remaining() / 4];
        bb.asFloatBuffer().get(out);
        return out;
    }

    static float[] floats(JsonNode a) {
        float[] out = new float[a.size()];
        for (int i = 0; i < out.length; i++) out[i] = (float) a.get(i).asDouble();
        return out;
    }

    static long[] longs(JsonNode a) {
        long[] out = new long[a.size()];
        for (int i = 0; i < out.length; i++) out[i] = a.get(i).asLong();
        return out;
    }
}
