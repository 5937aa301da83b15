package dev.jtune.export;

import java.nio.ByteBuffer;

/**
 * One of ggml's block quantization formats: a row of floats to blocks of bytes and back, as ggml's reference
 * {@code quantize_row_*_ref} / {@code dequantize_row_*} in ggml-quants.c do.
 */
public interface BlockQuantizer {
    GgmlType type();

    /** Quantizes {@code x[off .. off+n)} (n a multiple of the block size) into {@code out}, advancing its position. */
    void quantizeRow(float[] x, int off, int n, ByteBuffer out);

    /** Dequantizes {@code n} elements from {@code in} (advancing its position) into {@code y[off ..)}. */
    void dequantizeRow(ByteBuffer in, float[] y, int off, int n);

    static BlockQuantizer of(GgmlType type) {
        throw new dev.jtune.util.UserError("--type: " + type + " quantization is not available yet; use f32, f16 or bf16");
    }
}
