package dev.jtune.quant;

import com.fasterxml.jackson.core.JsonParser;
import com.fasterxml.jackson.databind.DeserializationFeature;
import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import dev.jtune.util.UserError;
import org.bytedeco.pytorch.global.torch.ScalarType;

import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.util.Arrays;
import java.util.Iterator;
import java.util.List;
import java.util.Set;

/**
 * The non-tensor part of a bitsandbytes 4-bit quant state, as {@code QuantState.as_dict(packed=True)}
 * stores it in {@code <module>.weight.quant_state.bitsandbytes__nf4} (or {@code __fp4}): the UTF-8 bytes of
 * {@code {"quant_type": "nf4", "blocksize": 64, "dtype": "bfloat16", "shape": [out, in],
 * "nested_blocksize": 256, "nested_dtype": "float32", "nested_offset": 0.031}} (the nested keys only with
 * double quantization).
 *
 * @param type            nf4 or fp4
 * @param blocksize       elements per absmax (64 for jtune's files)
 * @param dtype           the dtype dequantized values come back in: {@code float32}, {@code float16}, {@code bfloat16}
 * @param shape           the original tensor's shape
 * @param nestedBlocksize absmax values per nested absmax (256), or 0 without double quantization
 * @param nestedOffset    the mean subtracted from the absmax before quantizing them (float32), 0 without
 */
public record QuantState(QuantType type, int blocksize, String dtype, long[] shape, int nestedBlocksize,
                         float nestedOffset) {

    public static final int BLOCKSIZE = 64;
    public static final int NESTED_BLOCKSIZE = 256;
    /** The block sizes bitsandbytes' kernels accept. */
    static final Set<Integer> BLOCKSIZES = Set.of(64, 128, 256, 512, 1024, 2048, 4096);
    private static final List<String> DTYPES = List.of("float32", "float16", "bfloat16");
    private static final Set<String> KEYS = Set.of("quant_type", "blocksize", "dtype", "shape", "nested_blocksize",
            "nested_dtype", "nested_offset");
    private static final ObjectMapper JSON = new ObjectMapper()
            .enable(JsonParser.Feature.STRICT_DUPLICATE_DETECTION)
            .enable(DeserializationFeature.FAIL_ON_TRAILING_TOKENS);

    public QuantState {
        shape = shape.clone();
    }

    /** Whether the absmax values are themselves quantized (double quantization). */
    public boolean nested() {
        return nestedBlocksize > 0;
    }

    /** Elements of the original tensor. */
    public long numel() {
        long n = 1;
        for (long d : shape) n = Math.multiplyExact(n, d);
        return n;
    }

    /** Absmax values: one per block of {@link #blocksize} elements, the last block possibly partial. */
    public long blocks() {
        return (numel() + blocksize - 1) / blocksize;
    }

    /** Nested absmax values (double quantization): one per {@link #nestedBlocksize} absmax values. */
    public long nestedBlocks() {
        return nested() ? (blocks() + nestedBlocksize - 1) / nestedBlocksize : 0;
    }

    /** Bytes of packed codes: two per byte, an odd count padded. */
    public long packedBytes() {
        return (numel() + 1) / 2;
    }

    /** The dequantized dtype as a LibTorch scalar type. */
    public ScalarType scalarType() {
        return switch (dtype) {
            case "float32" -> ScalarType.Float;
            case "float16" -> ScalarType.Half;
            default -> ScalarType.BFloat16;
        };
    }

    /** The JSON bitsandbytes writes ({@code json.dumps}' separators and key order), as UTF-8 bytes. */
    public byte[] toJsonBytes() {
        StringBuilder b = new StringBuilder();
        b.append("{\"quant_type\": \"").append(type.bnbName()).append("\", \"blocksize\": ").append(blocksize)
                .append(", \"dtype\": \"").append(dtype).append("\", \"shape\": [");
        for (int i = 0; i < shape.length; i++) b.append(i == 0 ? "" : ", ").append(shape[i]);
        b.append(']');
        if (nested()) {
            // Python writes offset.item(): the float32 widened to a double, printed to round-trip.
            b.append(", \"nested_blocksize\": ").append(nestedBlocksize).append(", \"nested_dtype\": \"float32\"")
                    .append(", \"nested_offset\": ").append(Double.toString(nestedOffset));
        }
        return b.append('}').toString().getBytes(StandardCharsets.UTF_8);
    }

    /**
     * Parses and checks the JSON of a stored quant state.
     *
     * @param where the tensor it came from, for messages
     * @throws UserError if it is not JSON, has unknown or missing keys, an unknown quant type or dtype, an
     *                   unsupported block size, or a shape that is not a list of positive integers
     */
    public static QuantState parse(byte[] json, String where) {
        JsonNode root;
        try {
            root = JSON.readTree(new String(json, StandardCharsets.UTF_8));
        } catch (IOException e) {
            throw new UserError(where + ": the quant state is not valid JSON: " + e.getMessage().lines().findFirst().orElse(""));
        }
        if (root == null || !root.isObject()) {
            throw new UserError(where + ": the quant state must be a JSON object {\"quant_type\": ..., \"blocksize\": ..., ...}");
        }
        for (Iterator<String> it = root.fieldNames(); it.hasNext(); ) {
            String k = it.next();
            if (!KEYS.contains(k)) {
                throw new UserError(where + ": unknown quant state key '" + k + "'; expected " + KEYS);
            }
        }
        QuantType type = QuantType.parse(text(root, "quant_type", where), where);
        int blocksize = blocksize(root, "blocksize", where);
        String dtype = text(root, "dtype", where);
        if (!DTYPES.contains(dtype)) {
            throw new UserError(where + ": quant state dtype '" + dtype + "' is not one of " + DTYPES);
        }
        JsonNode s = root.get("shape");
        if (s == null || !s.isArray() || s.isEmpty()) {
            throw new UserError(where + ": quant state 'shape' must be a non-empty list of positive integers");
        }
        long[] shape = new long[s.size()];
        for (int i = 0; i < shape.length; i++) {
            if (!s.get(i).canConvertToLong() || !s.get(i).isIntegralNumber() || s.get(i).longValue() <= 0) {
                throw new UserError(where + ": quant state 'shape' must be a list of positive integers, found " + s);
            }
            shape[i] = s.get(i).longValue();
        }
        boolean anyNested = root.has("nested_blocksize") || root.has("nested_dtype") || root.has("nested_offset");
        if (!anyNested) {
            return new QuantState(type, blocksize, dtype, shape, 0, 0f);
        }
        int nestedBlocksize = blocksize(root, "nested_blocksize", where);
        String nestedDtype = text(root, "nested_dtype", where);
        if (!nestedDtype.equals("float32")) {
            throw new UserError(where + ": quant state nested_dtype '" + nestedDtype + "' is not float32");
        }
        JsonNode off = root.get("nested_offset");
        if (off == null || !off.isNumber() || !Double.isFinite(off.doubleValue())) {
            throw new UserError(where + ": quant state 'nested_offset' must be a finite number");
        }
        return new QuantState(type, blocksize, dtype, shape, nestedBlocksize, (float) off.doubleValue());
    }

    private static String text(JsonNode root, String key, String where) {
        JsonNode v = root.get(key);
        if (v == null || !v.isTextual()) {
            throw new UserError(where + ": quant state '" + key + "' must be a string" + (v == null ? " (missing)" : ", found " + v));
        }
        return v.textValue();
    }

    private static int blocksize(JsonNode root, String key, String where) {
        JsonNode v = root.get(key);
        if (v == null || !v.isIntegralNumber() || !BLOCKSIZES.contains(v.asInt()) || !v.canConvertToInt()) {
            throw new UserError(where + ": quant state '" + key + "' must be one of " + BLOCKSIZES.stream().sorted().toList()
                    + (v == null ? " (missing)" : ", found " + v));
        }
        return v.intValue();
    }

    @Override
    public boolean equals(Object o) {
        return o instanceof QuantState q && type == q.type && blocksize == q.blocksize && dtype.equals(q.dtype)
                && Arrays.equals(shape, q.shape) && nestedBlocksize == q.nestedBlocksize
                && Float.floatToIntBits(nestedOffset) == Float.floatToIntBits(q.nestedOffset);
    }

    @Override
    public int hashCode() {
        return (type.hashCode() * 31 + Arrays.hashCode(shape)) * 31 + Float.hashCode(nestedOffset);
    }

    @Override
    public String toString() {
        return new String(toJsonBytes(), StandardCharsets.UTF_8);
    }
}
