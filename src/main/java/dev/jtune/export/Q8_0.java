package dev.jtune.export;

import java.nio.ByteBuffer;

/**
 * ggml's Q8_0 (quantize_row_q8_0_ref): blocks of 32, {@code d = amax / 127} as fp16, then 32 int8
 * {@code round(x / d)} (half away from zero). 34 bytes a block.
 */
final class Q8_0 implements BlockQuantizer {
    static final int QK = 32;

    @Override
    public GgmlType type() {
        return GgmlType.Q8_0;
    }

    @Override
    public void quantizeRow(float[] x, int off, int n, ByteBuffer out) {
        for (int b = off; b < off + n; b += QK) {
            float amax = 0;
            for (int j = 0; j < QK; j++) amax = Math.max(amax, Math.abs(x[b + j]));
            float d = amax / 127;
            float id = d != 0 ? 1.0f / d : 0.0f;
            out.putShort(Fp16.fromFloat(d));
            for (int j = 0; j < QK; j++) out.put(roundf(x[b + j] * id));
        }
    }

    /** C's roundf: halfway cases away from zero (Java's Math.round rounds them up). */
    static byte roundf(float v) {
        float a = Math.abs(v);
        float r = (float) Math.floor(a);
        if (a - r >= 0.5f) r += 1;   // a - r is exact here (|v| <= 127)
        return (byte) (int) Math.copySign(r, v);
    }

    @Override
    public void dequantizeRow(ByteBuffer in, float[] y, int off, int n) {
        for (int b = off; b < off + n; b += QK) {
            float d = Fp16.toFloat(in.getShort());
            for (int j = 0; j < QK; j++) y[b + j] = in.get() * d;
        }
    }
}
