package dev.jtune.export;

import java.util.Collections;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

/**
 * The typed key/value pairs of a GGUF header, in insertion order. Value types are GGUF's
 * ({@code gguf_type}: UINT32 4, INT32 5, FLOAT32 6, BOOL 7, STRING 8, ARRAY 9, UINT64 10).
 */
final class GgufMetadata {
    /** One value; {@code value} is Integer/Long/Float/Boolean/String, or a String[]/float[]/int[] for arrays. */
    public record Value(int type, int elementType, Object value) {}

    static final int UINT32 = 4, INT32 = 5, FLOAT32 = 6, BOOL = 7, STRING = 8, ARRAY = 9, UINT64 = 10;

    private final Map<String, Value> entries = new LinkedHashMap<>();

    public GgufMetadata putString(String key, String v) {
        return put(key, new Value(STRING, 0, v));
    }

    public GgufMetadata putU32(String key, long v) {
        if (v < 0 || v > 0xFFFF_FFFFL) throw new IllegalArgumentException(key + ": " + v + " does not fit uint32");
        return put(key, new Value(UINT32, 0, (int) v));
    }

    public GgufMetadata putF32(String key, double v) {
        return put(key, new Value(FLOAT32, 0, (float) v));
    }

    public GgufMetadata putBool(String key, boolean v) {
        return put(key, new Value(BOOL, 0, v));
    }

    public GgufMetadata putStrings(String key, List<String> v) {
        return put(key, new Value(ARRAY, STRING, v.toArray(new String[0])));
    }

    public GgufMetadata putF32s(String key, float[] v) {
        return put(key, new Value(ARRAY, FLOAT32, v));
    }

    public GgufMetadata putI32s(String key, int[] v) {
        return put(key, new Value(ARRAY, INT32, v));
    }

    private GgufMetadata put(String key, Value v) {
        if (entries.containsKey(key)) throw new IllegalStateException("GGUF key written twice: " + key);
        entries.put(key, v);
        return this;
    }

    public Map<String, Value> entries() {
        return Collections.unmodifiableMap(entries);
    }

    public Value get(String key) {
        return entries.get(key);
    }
}
