package dev.jtune.export;

import java.nio.ByteBuffer;

import static dev.jtune.export.KQuants.QK_K;
import static dev.jtune.export.KQuants.nearestInt;

/**
 * ggml's Q4_K (quantize_row_q4_K_ref, no importance matrix): super-blocks of 256 in 8 sub-blocks of 32, each with
 * a 6-bit scale and a 6-bit min found by make_qkx2_quants' weighted search; the super-block's fp16 d and dmin
 * scale those. Layout (144 bytes): d, dmin (fp16), scales[12] (6-bit scales and mins packed as get_scale_min_k4
 * reads them), qs[128] (sub-blocks 2i and 2i+1 share 32 bytes: low nibbles, then high).
 */
final class Q4_K implements BlockQuantizer {
    @Override
    public GgmlType type() {
        return GgmlType.Q4_K;
    }

    @Override
    public void quantizeRow(float[] xs, int off, int n, ByteBuffer out) {
        int[] L = new int[QK_K];
        int[] laux = new int[32];
        float[] weights = new float[32];
        float[] mins = new float[8];
        float[] scales = new float[8];
        float[] theMin = new float[1];
        for (int x = off; x < off + n; x += QK_K) {
            float maxScale = 0, maxMin = 0;
            for (int j = 0; j < 8; j++) {
                float sumX2 = 0;
                for (int l = 0; l < 32; l++) sumX2 += xs[x + 32 * j + l] * xs[x + 32 * j + l];
                float avX = (float) Math.sqrt(sumX2 / 32);
                for (int l = 0; l < 32; l++) weights[l] = avX + Math.abs(xs[x + 32 * j + l]);
                scales[j] = makeQkx2Quants(32, 15, xs, x + 32 * j, weights, L, 32 * j, theMin, laux, -1.f, 0.1f, 20);
                mins[j] = theMin[0];
                if (scales[j] > maxScale) maxScale = scales[j];
                if (mins[j] > maxMin) maxMin = mins[j];
            }
            float invScale = maxScale > 0 ? 63.f / maxScale : 0.f;
            float invMin = maxMin > 0 ? 63.f / maxMin : 0.f;
            int[] sc = new int[12];
            for (int j = 0; j < 8; j++) {
                int ls = Math.min(63, nearestInt(invScale * scales[j]) & 0xFF);   // C stores nearest_int in a uint8_t first
                int lm = Math.min(63, nearestInt(invMin * mins[j]) & 0xFF);
                if (j < 4) {
                    sc[j] = ls;
                    sc[j + 4] = lm;
                } else {
                    sc[j + 4] = (ls & 0xF) | ((lm & 0xF) << 4);
                    sc[j - 4] |= (ls >> 4) << 6;
                    sc[j] |= (lm >> 4) << 6;
                }
            }
            short dh = Fp16.fromFloat(maxScale / 63.f), dminh = Fp16.fromFloat(maxMin / 63.f);
            float dd = Fp16.toFloat(dh), dmin = Fp16.toFloat(dminh);
            for (int j = 0; j < 8; j++) {
                float d = dd * scale(sc, j);
                if (d == 0) continue;
                float dm = dmin * min(sc, j);
                for (int ii = 0; ii < 32; ii++) {
                    int l = nearestInt((xs[x + 32 * j + ii] + dm) / d);
                    L[32 * j + ii] = Math.max(0, Math.min(15, l));
                }
            }
            out.putShort(dh);
            out.putShort(dminh);
            for (int v : sc) out.put((byte) v);
            for (int j = 0; j < QK_K; j += 64) {
                for (int l = 0; l < 32; l++) out.put((byte) (L[j + l] | (L[j + l + 32] << 4)));
            }
        }
    }

    /** get_scale_min_k4: the 6-bit scale of sub-block j. */
    static int scale(int[] q, int j) {
        return j < 4 ? q[j] & 63 : (q[j + 4] & 0xF) | ((q[j - 4] >> 6) << 4);
    }

    /** get_scale_min_k4: the 6-bit min of sub-block j. */
    static int min(int[] q, int j) {
        return j < 4 ? q[j + 4] & 63 : (q[j + 4] >> 4) | ((q[j] >> 6) << 4);
    }

    /**
     * make_qkx2_quants: codes in [0, nmax] and (scale, min) minimising the weighted squared error over a grid of
     * nstep + 1 trial scales. Writes the codes to L[lOff ..], -min to theMin[0]; returns the scale.
     */
    static float makeQkx2Quants(int n, int nmax, float[] x, int xOff, float[] weights, int[] L, int lOff, float[] theMin,
                                int[] laux, float rmin, float rdelta, int nstep) {
        float min = x[xOff], max = x[xOff];
        float sumW = weights[0];
        float sumX = sumW * x[xOff];
        for (int i = 1; i < n; i++) {
            if (x[xOff + i] < min) min = x[xOff + i];
            if (x[xOff + i] > max) max = x[xOff + i];
            float w = weights[i];
            sumW += w;
            sumX += w * x[xOff + i];
        }
        if (min > 0) min = 0;
        if (max == min) {
            for (int i = 0; i < n; i++) L[lOff + i] = 0;
            theMin[0] = -min;
            return 0.f;
        }
        float iscale = nmax / (max - min);
        float scale = 1 / iscale;
        float bestError = 0;
        for (int i = 0; i < n; i++) {
            int l = nearestInt(iscale * (x[xOff + i] - min));
            L[lOff + i] = Math.max(0, Math.min(nmax, l));
            float diff = scale * L[lOff + i] + min - x[xOff + i];
            diff = diff * diff;
            bestError += weights[i] * diff;
        }
        for (int is = 0; is <= nstep; is++) {
            iscale = (rmin + rdelta * is + nmax) / (max - min);
            float sumL = 0, sumL2 = 0, sumXl = 0;
            for (int i = 0; i < n; i++) {
                int l = nearestInt(iscale * (x[xOff + i] - min));
                l = Math.max(0, Math.min(nmax, l));
                laux[i] = l;
                float w = weights[i];
                sumL += w * l;
                sumL2 += w * l * l;
                sumXl += w * l * x[xOff + i];
            }
            float D = sumW * sumL2 - sumL * sumL;
            if (D > 0) {
                float thisScale = (sumW * sumXl - sumX * sumL) / D;
                float thisMin = (sumL2 * sumX - sumL * sumXl) / D;
                if (thisMin > 0) {
                    thisMin = 0;
                    thisScale = sumXl / sumL2;
                }
                float curError = 0;
                for (int i = 0; i < n; i++) {
                    float diff = thisScale * laux[i] + thisMin - x[xOff + i];
                    diff = diff * diff;
                    curError += weights[i] * diff;
                }
                if (curError < bestError) {
                    for (int i = 0; i < n; i++) L[lOff + i] = laux[i];
                    bestError = curError;
                    scale = thisScale;
                    min = thisMin;
                }
            }
        }
        theMin[0] = -min;
        return scale;
    }

    @Override
    public void dequantizeRow(ByteBuffer in, float[] y, int off, int n) {
        int[] sc = new int[12];
        for (int x = off; x < off + n; x += QK_K) {
            float d = Fp16.toFloat(in.getShort());
            float min = Fp16.toFloat(in.getShort());
            for (int i = 0; i < 12; i++) sc[i] = in.get() & 0xFF;
            int is = 0;
            int yi = x;
            for (int j = 0; j < QK_K; j += 64) {
                float d1 = d * scale(sc, is), m1 = min * min(sc, is);
                float d2 = d * scale(sc, is + 1), m2 = min * min(sc, is + 1);
                int base = in.position();
                for (int l = 0; l < 32; l++) y[yi++] = d1 * (in.get(base + l) & 0xF) - m1;
                for (int l = 0; l < 32; l++) y[yi++] = d2 * ((in.get(base + l) & 0xFF) >> 4) - m2;
                in.position(base + 32);
                is += 2;
            }
        }
    }
}
