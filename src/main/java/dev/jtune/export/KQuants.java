package dev.jtune.export;

/** Helpers shared by the k-quants, as in ggml-quants.c. */
final class KQuants {
    static final int QK_K = 256;
    static final float GROUP_MAX_EPS = 1e-15f;

    private KQuants() {}

    /** ggml's nearest_int: round to nearest, ties to even, through the 1.5·2^23 float trick (|f| <= 4194303). */
    static int nearestInt(float f) {
        float val = f + 12582912.f;
        int i = Float.floatToRawIntBits(val);
        return (i & 0x007fffff) - 0x00400000;
    }
}
