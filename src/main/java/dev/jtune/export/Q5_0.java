package dev.jtune.export;

import java.nio.ByteBuffer;

/**
 * ggml's Q5_0 (quantize_row_q5_0_ref): blocks of 32; {@code d = max / -16} (max: the element of largest magnitude,
 * sign kept) as fp16; 5-bit codes {@code min(31, trunc(x / d + 16.5))}: low 4 bits as Q4_0's nibbles, the fifth bits
 * of elements j and j + 16 in bits j and j + 16 of a little-endian uint32. 22 bytes a block: d, qh[4], qs[16].
 * llama.cpp's q4_k_m uses it for tensors whose rows do not split into 256-element k-quant blocks.
 */
final class Q5_0 implements BlockQuantizer {
    static final int QK = 32;

    @Override
    public GgmlType type() {
        return GgmlType.Q5_0;
    }

    @Override
    public void quantizeRow(float[] x, int off, int n, ByteBuffer out) {
        for (int b = off; b < off + n; b += QK) {
            float d = KQuants.signedAbsMax(x, b, QK) / -16;
            float id = d != 0 ? 1.0f / d : 0.0f;
            out.putShort(Fp16.fromFloat(d));
            int qh = 0;
            byte[] qs = new byte[QK / 2];
            for (int j = 0; j < QK / 2; j++) {
                int q0 = Math.min(31, (int) (x[b + j] * id + 16.5f));            // C's (int8_t) cast truncates
                int q1 = Math.min(31, (int) (x[b + QK / 2 + j] * id + 16.5f));
                qs[j] = (byte) ((q0 & 0x0F) | ((q1 & 0x0F) << 4));
                qh |= ((q0 & 0x10) >>> 4) << j;
                qh |= ((q1 & 0x10) >>> 4) << (j + QK / 2);
            }
            out.putInt(qh);   // little endian, as memcpy of a uint32 on x86
            out.put(qs);
        }
    }

    @Override
    public void dequantizeRow(ByteBuffer in, float[] y, int off, int n) {
        for (int b = off; b < off + n; b += QK) {
            float d = Fp16.toFloat(in.getShort());
            int qh = in.getInt();
            for (int j = 0; j < QK / 2; j++) {
                int q = in.get() & 0xFF;
                int h0 = ((qh >>> j) << 4) & 0x10;
                int h1 = (qh >>> (j + 12)) & 0x10;
                y[b + j] = (((q & 0x0F) | h0) - 16) * d;
                y[b + QK / 2 + j] = (((q >>> 4) | h1) - 16) * d;
            }
        }
    }
}
