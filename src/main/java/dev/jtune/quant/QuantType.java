package dev.jtune.quant;

import dev.jtune.util.Tensors;
import dev.jtune.util.UserError;
import org.bytedeco.pytorch.Scalar;
import org.bytedeco.pytorch.Tensor;
import org.bytedeco.pytorch.global.torch;
import org.bytedeco.pytorch.global.torch.ScalarType;

import java.util.Locale;

/**
 * The two 4-bit data types of bitsandbytes (and QLoRA): the 16 values a code stands for, as float32
 * (the {@code quant_map} a file carries), and how a normalised value in [-1, 1] picks its code.
 *
 * <p>Rounding is bitsandbytes' CUDA kernel's ({@code dQuantizeNF4} / {@code dQuantizeFP4}): the code is
 * decided by comparing with fixed boundaries, {@code x > boundary} going up, so a value exactly on a
 * boundary takes the lower code, and NaN (0 · ∞ in an all-zero block) takes code 0.
 */
public enum QuantType {
    /** NormalFloat4 (QLoRA appendix E): quantiles of N(0, 1) scaled to [-1, 1]; code 7 is exactly 0. */
    NF4("nf4", Tables.NF4),
    /**
     * bitsandbytes' FP4 (1 sign, 2 exponent, 1 mantissa bit, no infinities), divided by its largest value
     * 12: codes 0b000..0b111 are 0, 0.0625, 8, 12, 4, 6, 2, 3; bit 3 is the sign.
     */
    FP4("fp4", Tables.FP4);

    /** The code tables as bitsandbytes' get_4bit_type writes them (a holder: enum arguments cannot read enum statics). */
    private static final class Tables {
        static final double[] NF4 = {-1.0, -0.6961928009986877, -0.5250730514526367, -0.39491748809814453,
                -0.28444138169288635, -0.18477343022823334, -0.09105003625154495, 0.0,
                0.07958029955625534, 0.16093020141124725, 0.24611230194568634, 0.33791524171829224,
                0.44070982933044434, 0.5626170039176941, 0.7229568362236023, 1.0};
        static final double[] FP4 = {0.0, 0.0625, 8.0, 12.0, 4.0, 6.0, 2.0, 3.0,
                -0.0, -0.0625, -8.0, -12.0, -4.0, -6.0, -2.0, -3.0};
        /** NF4's decision boundaries: float32 of the double midpoints (the kernel's literals are those). */
        static final float[] NF4_BOUNDS = new float[15];

        static {
            for (int i = 0; i < 15; i++) NF4_BOUNDS[i] = (float) ((NF4[i] + NF4[i + 1]) / 2.0);
        }
    }

    /**
     * FP4's decision boundaries on |x|, as the kernel writes them (float literals that are not exactly the
     * float32 midpoints, e.g. 0.583333 rather than 7/12, so they are kept as written).
     */
    private static final float[] FP4_BOUNDS = {0.00260417f, 0.0859375f, 0.20833333f, 0.29166667f, 0.4166667f,
            0.583333f, 0.8333333f};
    /** The FP4 magnitude code of each rank in increasing value: 0, 0.0625, 2, 3, 4, 6, 8, 12. */
    private static final long[] FP4_CODE_OF_RANK = {0b000, 0b001, 0b110, 0b111, 0b100, 0b101, 0b010, 0b011};

    private final String bnbName;
    private final float[] values;

    QuantType(String bnbName, double[] raw) {
        this.bnbName = bnbName;
        float max = 0;
        for (double v : raw) max = Math.max(max, (float) Math.abs(v));
        values = new float[16];
        for (int i = 0; i < 16; i++) values[i] = (float) raw[i] / max; // float32 division, as bitsandbytes' data /= max
    }

    /** The name in files and configs: {@code nf4} or {@code fp4}. */
    public String bnbName() {
        return bnbName;
    }

    /** The value of each code (index = code), float32; a copy. */
    public float[] codeValues() {
        return values.clone();
    }

    /** The 16 values as a float32 tensor on the CPU: the {@code quant_map} bitsandbytes stores. */
    public Tensor quantMap() {
        return Tensors.floats(values);
    }

    /**
     * @param where what to blame, e.g. a tensor or a config key
     * @throws UserError for anything but nf4 / fp4 (case-insensitive)
     */
    public static QuantType parse(String name, String where) {
        if (name != null) {
            for (QuantType t : values()) {
                if (t.bnbName.equals(name.toLowerCase(Locale.ROOT))) return t;
            }
        }
        throw new UserError(where + ": unknown 4-bit quant type " + (name == null ? "null" : "'" + name + "'")
                + "; expected nf4 or fp4");
    }

    /**
     * The codes (int64) of a 1-D float32 tensor of normalised values {@code x} (x / absmax of its block).
     * NaN gives code 0, as in the kernel, where every comparison with NaN is false.
     */
    Tensor codes(Tensor x) {
        if (this == NF4) {
            Tensor clean = x.masked_fill(torch.isnan(x), new Scalar(Double.NEGATIVE_INFINITY));
            // bucketize(right=false): the number of boundaries strictly below x, i.e. how many 'x > b' hold
            return torch.bucketize(clean, Tensors.floats(Tables.NF4_BOUNDS).to(x.device(), ScalarType.Float), false, false);
        }
        Tensor a = x.abs();
        a = a.masked_fill(torch.isnan(a), new Scalar(0.0));
        Tensor rank = torch.bucketize(a, Tensors.floats(FP4_BOUNDS).to(x.device(), ScalarType.Float), false, false);
        Tensor magnitude = Tensors.longs(FP4_CODE_OF_RANK).to(x.device(), ScalarType.Long).index_select(0, rank);
        Tensor sign = x.lt(new Scalar(0.0)).to(ScalarType.Long).mul(new Scalar(8));
        return magnitude.add(sign);
    }
}
