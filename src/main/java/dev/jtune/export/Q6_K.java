package dev.jtune.export;

import java.nio.ByteBuffer;

import static dev.jtune.export.KQuants.GROUP_MAX_EPS;
import static dev.jtune.export.KQuants.QK_K;
import static dev.jtune.export.KQuants.nearestInt;

/**
 * ggml's Q6_K (quantize_row_q6_K_ref): super-blocks of 256 in 16 sub-blocks of 16, each with an int8 scale found
 * by make_qx_quants' weighted search (weights x²), the super-block's fp16 d scaling those; 6-bit codes split into
 * low nibbles (ql) and high 2 bits (qh). Layout (210 bytes): ql[128], qh[64], scales[16], d.
 */
final class Q6_K implements BlockQuantizer {
    @Override
    public GgmlType type() {
        return GgmlType.Q6_K;
    }

    @Override
    public void quantizeRow(float[] xs, int off, int n, ByteBuffer out) {
        int[] L = new int[QK_K];
        float[] scales = new float[16];
        for (int x = off; x < off + n; x += QK_K) {
            float maxScale = 0, maxAbsScale = 0;
            for (int ib = 0; ib < 16; ib++) {
                float scale = makeQxQuants(16, 32, xs, x + 16 * ib, L, 16 * ib);
                scales[ib] = scale;
                float abs = Math.abs(scale);
                if (abs > maxAbsScale) {
                    maxAbsScale = abs;
                    maxScale = scale;
                }
            }
            if (maxAbsScale < GROUP_MAX_EPS) {
                for (int i = 0; i < GgmlType.Q6_K.typeSize; i++) out.put((byte) 0);   // an all-zero block, d = 0
                continue;
            }
            float iscale = -128.f / maxScale;
            short dh = Fp16.fromFloat(1 / iscale);
            byte[] sc = new byte[16];
            for (int ib = 0; ib < 16; ib++) sc[ib] = (byte) Math.min(127, nearestInt(iscale * scales[ib]));
            float dd = Fp16.toFloat(dh);
            for (int j = 0; j < 16; j++) {
                float d = dd * sc[j];
                if (d == 0) continue;
                for (int ii = 0; ii < 16; ii++) {
                    int l = nearestInt(xs[x + 16 * j + ii] / d);
                    L[16 * j + ii] = Math.max(-32, Math.min(31, l)) + 32;
                }
            }
            byte[] ql = new byte[128], qh = new byte[64];
            for (int j = 0, qlo = 0, qho = 0; j < QK_K; j += 128, qlo += 64, qho += 32) {
                for (int l = 0; l < 32; l++) {
                    int q1 = L[j + l] & 0xF, q2 = L[j + l + 32] & 0xF, q3 = L[j + l + 64] & 0xF, q4 = L[j + l + 96] & 0xF;
                    ql[qlo + l] = (byte) (q1 | (q3 << 4));
                    ql[qlo + l + 32] = (byte) (q2 | (q4 << 4));
                    qh[qho + l] = (byte) ((L[j + l] >> 4) | ((L[j + l + 32] >> 4) << 2) | ((L[j + l + 64] >> 4) << 4) | ((L[j + l + 96] >> 4) << 6));
                }
            }
            out.put(ql);
            out.put(qh);
            out.put(sc);
            out.putShort(dh);
        }
    }

    /**
     * make_qx_quants with rmse_type 1 and no importance weights: signed codes in [-nmax, nmax) stored + nmax in
     * L[lOff ..], the scale chosen among 19 trial values by the x²-weighted error; returns the scale.
     */
    static float makeQxQuants(int n, int nmax, float[] x, int xOff, int[] L, int lOff) {
        float max = 0, amax = 0;
        for (int i = 0; i < n; i++) {
            float ax = Math.abs(x[xOff + i]);
            if (ax > amax) {
                amax = ax;
                max = x[xOff + i];
            }
        }
        if (amax < GROUP_MAX_EPS) {
            for (int i = 0; i < n; i++) L[lOff + i] = 0;
            return 0.f;
        }
        float iscale = -nmax / max;
        float sumlx = 0, suml2 = 0;
        for (int i = 0; i < n; i++) {
            int l = nearestInt(iscale * x[xOff + i]);
            l = Math.max(-nmax, Math.min(nmax - 1, l));
            L[lOff + i] = l + nmax;
            float w = x[xOff + i] * x[xOff + i];
            sumlx += w * x[xOff + i] * l;
            suml2 += w * l * l;
        }
        float scale = suml2 != 0 ? sumlx / suml2 : 0.0f;
        float best = scale * sumlx;
        for (int is = -9; is <= 9; is++) {
            if (is == 0) continue;
            iscale = -(nmax + 0.1f * is) / max;
            sumlx = suml2 = 0;
            for (int i = 0; i < n; i++) {
                int l = nearestInt(iscale * x[xOff + i]);
                l = Math.max(-nmax, Math.min(nmax - 1, l));
                float w = x[xOff + i] * x[xOff + i];
                sumlx += w * x[xOff + i] * l;
                suml2 += w * l * l;
            }
            if (suml2 > 0 && sumlx * sumlx > best * suml2) {
                for (int i = 0; i < n; i++) {
                    int l = nearestInt(iscale * x[xOff + i]);
                    L[lOff + i] = nmax + Math.max(-nmax, Math.min(nmax - 1, l));
                }
                scale = sumlx / suml2;
                best = scale * sumlx;
            }
        }
        return scale;
    }

    @Override
    public void dequantizeRow(ByteBuffer in, float[] y, int off, int n) {
        for (int x = off; x < off + n; x += QK_K) {
            int base = in.position();
            float d = Fp16.toFloat(in.getShort(base + 208));
            for (int half = 0; half < 2; half++) {
                int ql = base + 64 * half, qh = base + 128 + 32 * half, sc = base + 192 + 8 * half;
                int yo = x + 128 * half;
                for (int l = 0; l < 32; l++) {
                    int is = l / 16;
                    int h = in.get(qh + l) & 0xFF;
                    int q1 = ((in.get(ql + l) & 0xF) | (((h >> 0) & 3) << 4)) - 32;
                    int q2 = ((in.get(ql + l + 32) & 0xF) | (((h >> 2) & 3) << 4)) - 32;
                    int q3 = (((in.get(ql + l) & 0xFF) >> 4) | (((h >> 4) & 3) << 4)) - 32;
                    int q4 = (((in.get(ql + l + 32) & 0xFF) >> 4) | (((h >> 6) & 3) << 4)) - 32;
                    y[yo + l] = d * in.get(sc + is) * q1;
                    y[yo + l + 32] = d * in.get(sc + is + 2) * q2;
                    y[yo + l + 64] = d * in.get(sc + is + 4) * q3;
                    y[yo + l + 96] = d * in.get(sc + is + 6) * q4;
                }
            }
            in.position(base + GgmlType.Q6_K.typeSize);
        }
    }
}
