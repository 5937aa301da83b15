package dev.jtune.export;

/** Helpers shared by ggml's quantizers, as in ggml-quants.c. */
final class KQuants {
    static final int QK_K = 256;
    static final float GROUP_MAX_EPS = 1e-15f;

    private KQuants() {}

    /** The element of largest magnitude, sign kept (the first of equals), as Q4_0/Q5_0 scale by it. */
    static float signedAbsMax(float[] x, int off, int n) {
        float amax = 0, max = 0;
        for (int j = 0; j < n; j++) {
            float v = x[off + j];
            if (amax < Math.abs(v)) {
                amax = Math.abs(v);
                max = v;
            }
        }
        return max;
    }

    /** ggml's nearest_int: round to nearest, ties to even, through the 1.5·2^23 float trick (|f| <= 4194303). */
    static int nearestInt(float f) {
        float val = f + 12582912.f;
        int i = Float.floatToRawIntBits(val);
        return (i & 0x007fffff) - 0x00400000;
    }
}
