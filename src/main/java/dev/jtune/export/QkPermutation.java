package dev.jtune.export;

import org.bytedeco.pytorch.Tensor;

/**
 * The row permutation llama.cpp expects for Llama-family q/k projections. Hugging Face's Llama applies RoPE
 * to the two halves of each head ({@code rotate_half}: pairs (i, i + D/2)); llama.cpp's LLAMA rope rotates
 * adjacent pairs (2i, 2i + 1), the layout of Meta's original checkpoints. Within each head the rows
 * [0 .. D/2) and [D/2 .. D) are interleaved: new row 2i = old row i, new row 2i+1 = old row D/2 + i.
 * Same as convert_hf_to_gguf.py's {@code LlamaModel.permute}:
 * {@code w.reshape(H, 2, D/2, ...).swapaxes(1, 2).reshape(w.shape)}. Works for weights (H·D, in) and biases (H·D).
 */
final class QkPermutation {
    private QkPermutation() {}

    /** @param heads H: attention heads for q, key/value heads for k */
    public static Tensor permute(Tensor w, int heads) {
        long rows = w.size(0);
        long half = rows / heads / 2;
        long[] shape = w.sizes().vec().get();
        long[] split = new long[shape.length + 2];
        split[0] = heads;
        split[1] = 2;
        split[2] = half;
        System.arraycopy(shape, 1, split, 3, shape.length - 1);
        return w.reshape(split).transpose(1, 2).contiguous().reshape(shape);
    }
}
