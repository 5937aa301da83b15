package dev.jtune.export;

/**
 * IEEE half precision as ggml stores its block scales: float → half rounds to nearest even (what
 * {@code GGML_FP32_TO_FP16} does through F16C's {@code _cvtss_sh(x, 0)}), half → float is exact.
 * (Java 17 has no Float.floatToFloat16.)
 */
final class Fp16 {
    private Fp16() {}

    static short fromFloat(float f) {
        int bits = Float.floatToRawIntBits(f);
        int sign = (bits >>> 16) & 0x8000;
        int exp = (bits >>> 23) & 0xFF;
        int mant = bits & 0x7FFFFF;
        if (exp == 0xFF) return (short) (sign | 0x7C00 | (mant != 0 ? 0x200 | (mant >>> 13) : 0));   // inf / nan
        int e = exp - 127 + 15;
        if (e >= 0x1F) return (short) (sign | 0x7C00);                                                 // overflow: inf
        if (e <= 0) {                                                                                   // subnormal or zero
            if (e < -10) return (short) sign;
            int m = mant | 0x800000;
            int shift = 14 - e;
            int half = m >>> shift;
            int rem = m & ((1 << shift) - 1);
            int mid = 1 << (shift - 1);
            if (rem > mid || (rem == mid && (half & 1) != 0)) half++;
            return (short) (sign | half);
        }
        int half = (e << 10) | (mant >>> 13);
        int rem = mant & 0x1FFF;
        if (rem > 0x1000 || (rem == 0x1000 && (half & 1) != 0)) half++;   // may carry into the exponent: still right
        return (short) (sign | half);
    }

    static float toFloat(short h) {
        int sign = (h & 0x8000) << 16;
        int exp = (h >>> 10) & 0x1F;
        int mant = h & 0x3FF;
        if (exp == 0x1F) return Float.intBitsToFloat(sign | 0x7F800000 | (mant << 13));
        if (exp == 0) {
            if (mant == 0) return Float.intBitsToFloat(sign);
            float v = mant * 0x1p-24f;   // subnormal: mant · 2^-24, exact
            return sign != 0 ? -v : v;
        }
        return Float.intBitsToFloat(sign | ((exp - 15 + 127) << 23) | (mant << 13));
    }

    /** float → half → float: the value a stored scale has when ggml reads it back. */
    static float round(float f) {
        return toFloat(fromFloat(f));
    }
}
