package dev.jtune.model;

import org.bytedeco.pytorch.Tensor;

/**
 * A frozen linear layer whose weight is not a plain parameter tensor, such as a 4-bit quantized one
 * (quant.QuantizedProjection, QLoRA's base): {@code y = x W^T + b} with W (out, in), whatever the layout the
 * checkpoint stores (GPT-2's Conv1D included). The model knows only this, so model/ does not depend on quant/.
 * Gradients flow to x only.
 */
public interface FrozenLinear extends AutoCloseable {
    /** x (…, in) -> (…, out), in x's dtype. */
    Tensor apply(Tensor x);

    /** Elements of W and b as the original model had them (for parameter counts). */
    long parameterCount();

    /** Frees the layer's tensors (the model calls it once, at its own close()). */
    @Override
    void close();
}
