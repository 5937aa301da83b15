package dev.jtune.export;

import java.nio.ByteBuffer;

/**
 * ggml's Q4_0 (quantize_row_q4_0_ref): blocks of 32; {@code d = max / -8} where max is the element of largest
 * magnitude (sign kept), as fp16; codes {@code min(15, trunc(x / d + 8.5))}, element j in the low nibble of byte j
 * and element j + 16 in its high nibble. 18 bytes a block.
 */
final class Q4_0 implements BlockQuantizer {
    static final int QK = 32;

    @Override
    public GgmlType type() {
        return GgmlType.Q4_0;
    }

    @Override
    public void quantizeRow(float[] x, int off, int n, ByteBuffer out) {
        for (int b = off; b < off + n; b += QK) {
            float d = KQuants.signedAbsMax(x, b, QK) / -8;
            float id = d != 0 ? 1.0f / d : 0.0f;
            out.putShort(Fp16.fromFloat(d));
            for (int j = 0; j < QK / 2; j++) {
                int q0 = Math.min(15, (int) (x[b + j] * id + 8.5f));            // C's (int8_t) cast truncates
                int q1 = Math.min(15, (int) (x[b + QK / 2 + j] * id + 8.5f));
                out.put((byte) (q0 | (q1 << 4)));
            }
        }
    }

    @Override
    public void dequantizeRow(ByteBuffer in, float[] y, int off, int n) {
        for (int b = off; b < off + n; b += QK) {
            float d = Fp16.toFloat(in.getShort());
            for (int j = 0; j < QK / 2; j++) {
                int q = in.get() & 0xFF;
                y[b + j] = ((q & 0x0F) - 8) * d;
                y[b + QK / 2 + j] = ((q >>> 4) - 8) * d;
            }
        }
    }
}
