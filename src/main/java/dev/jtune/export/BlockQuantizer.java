package dev.jtune.export;

import java.nio.ByteBuffer;

/**
 * One of ggml's block quantization formats: a row of floats to blocks of bytes and back, as ggml's reference
 * {@code quantize_row_*_ref} / {@code dequantize_row_*} in ggml-quants.c do.
 */
interface BlockQuantizer {
    GgmlType type();

    /** Quantizes {@code x[off .. off+n)} (n a multiple of the block size) into {@code out}, advancing its position. */
    void quantizeRow(float[] x, int off, int n, ByteBuffer out);

    /** Dequantizes {@code n} elements from {@code in} (advancing its position) into {@code y[off ..)}. */
    void dequantizeRow(ByteBuffer in, float[] y, int off, int n);

    static BlockQuantizer of(GgmlType type) {
        return switch (type) {
            case Q8_0 -> new Q8_0();
            case Q4_0 -> new Q4_0();
            case Q5_0 -> new Q5_0();
            case Q4_K -> new Q4_K();
            case Q6_K -> new Q6_K();
            default -> throw new IllegalArgumentException(type + " is not a block-quantized type");
        };
    }
}
