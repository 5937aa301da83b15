package dev.jtune.model;

import dev.jtune.util.Tensors;
import org.bytedeco.pytorch.Tensor;
import org.bytedeco.pytorch.global.torch;
import org.bytedeco.pytorch.global.torch.ScalarType;

/**
 * Rotary position embeddings, Hugging Face's "rotate half" convention: a head vector's first half and
 * second half form the (real, imaginary) pairs, and cos/sin are {@code cat(freqs, freqs)}. This class
 * makes the tables; {@link dev.jtune.kernels.Ops#rope} applies them.
 */
public final class Rope {
    private final Tensor invFreq;   // (headDim/2,) float32, radians per position
    private Tensor invFreqOnDevice;  // invFreq on the last non-CPU device asked for: no host-to-device copy per step

    public Rope(ModelConfig c) {
        int half = c.headDim() / 2;
        double[] inv = new double[half];
        for (int i = 0; i < half; i++) inv[i] = 1.0 / Math.pow(c.ropeTheta(), (2.0 * i) / c.headDim());
        if (c.ropeScaling() != null) inv = c.ropeScaling().apply(inv);
        float[] f = new float[half];
        for (int i = 0; i < half; i++) f[i] = (float) inv[i];
        this.invFreq = Tensors.floats(f);
    }

    /** cos and sin for the given positions: each (B, 1, T, headDim) in {@code dtype}, on positions' device. */
    public Tensor[] cosSin(Tensor positions, ScalarType dtype) {
        // (B, T, 1) * (half,) -> (B, T, half), in float32 as transformers does
        Tensor freqs = positions.to(ScalarType.Float).unsqueeze(-1).mul(invFreqOn(positions.device()));
        Tensor emb = torch.cat(new org.bytedeco.pytorch.TensorVector(freqs, freqs), -1).unsqueeze(1);
        return new Tensor[] {emb.cos().to(dtype), emb.sin().to(dtype)};
    }

    /** The frequencies on {@code device}; kept there once copied (a CUDA graph capture may not copy from the host). */
    private synchronized Tensor invFreqOn(org.bytedeco.pytorch.Device device) {
        if (device.is_cpu()) return invFreq;
        Tensor cached = invFreqOnDevice;
        if (cached == null || !cached.device().str().getString().equals(device.str().getString())) {
            Tensor moved = invFreq.to(device, ScalarType.Float);
            moved.retainReference();
            if (cached != null) cached.releaseReference();
            invFreqOnDevice = cached = moved;
        }
        return cached;
    }
}
