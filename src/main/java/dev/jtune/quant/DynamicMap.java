package dev.jtune.quant;

import dev.jtune.util.Tensors;
import org.bytedeco.pytorch.Tensor;

import java.util.Arrays;

/**
 * bitsandbytes' signed 8-bit "dynamic" map ({@code create_dynamic_map(signed=True, max_exponent_bits=7)}),
 * which double quantization uses for the absmax values: for each decade i = 0..6, the midpoints of
 * {@code linspace(0.1, 1, 2^i + 1)} times ±10^(i-6) in float32, plus 0 and 1; 256 sorted values.
 *
 * <p>The linspace follows torch's scalar float32 rule (from the start for the first half, from the end
 * for the second). torch's vectorised CPU kernel rounds some entries differently, and differently across
 * versions and CPUs (torch 1.13 and LibTorch 2.10 on this machine disagree with each other by an ulp in
 * some entries), so bitsandbytes has no single map. Every file carries its own ({@code nested_quant_map});
 * readers, jtune's included, dequantize with that, so this choice never affects compatibility.
 */
final class DynamicMap {
    private static final float[] DECADES = {1e-6f, 1e-5f, 1e-4f, 1e-3f, 1e-2f, 1e-1f, 1.0f};
    private static final float[] VALUES = build();

    private DynamicMap() {}

    /** The 256 values, ascending (a copy). */
    static float[] values() {
        return VALUES.clone();
    }

    /** The map as a float32 CPU tensor [256]. */
    static Tensor tensor() {
        return Tensors.floats(VALUES);
    }

    /** torch.linspace's scalar rule, in float32 (Java float arithmetic rounds every step, no fused multiply-add). */
    static float[] linspace(float start, float end, int steps) {
        float step = (end - start) / (float) (steps - 1);
        float[] out = new float[steps];
        for (int i = 0; i < steps; i++) {
            out[i] = i < steps / 2 ? start + step * (float) i : end - step * (float) (steps - i - 1);
        }
        return out;
    }

    private static float[] build() {
        float[] data = new float[256];
        int k = 0;
        for (int i = 0; i < DECADES.length; i++) {
            float[] b = linspace(0.1f, 1.0f, (1 << i) + 1);
            for (int j = 0; j + 1 < b.length; j++) {
                float mean = (b[j] + b[j + 1]) / 2f;
                data[k++] = DECADES[i] * mean;
                data[k++] = -(DECADES[i] * mean);
            }
        }
        data[k++] = 0f;
        data[k++] = 1f;
        if (k != 256) throw new IllegalStateException("dynamic map has " + k + " values");
        Arrays.sort(data);
        return data;
    }
}
