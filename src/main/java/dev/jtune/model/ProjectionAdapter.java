package dev.jtune.model;

import org.bytedeco.pytorch.Tensor;

/**
 * Something that adds to a linear projection's output, such as a LoRA adapter (peft.LoraAdapter). The
 * model knows only this, so model/ does not depend on peft/. The model it is attached to owns it and closes it
 * ({@link CausalLM#setAdapters}).
 */
public interface ProjectionAdapter extends AutoCloseable {
    /** The update for input x (…, in): (…, out); {@code training} enables dropout. */
    Tensor delta(Tensor x, boolean training);

    /** Frees the adapter's tensors; it must not be used after. Nothing by default. */
    @Override
    default void close() {}
}
