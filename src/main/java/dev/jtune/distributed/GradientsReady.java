package dev.jtune.distributed;

/**
 * Told by the training step, during the backward of a step's last micro-batch, when gradients become final: those of the
 * head (final norm, output projection), then those of each decoder block, last to first. What is not signalled (the
 * embeddings, or a block whose input needs no gradient) is final when the backward returns.
 */
public interface GradientsReady {
    /** The final norm's and the output projection's gradients are final. */
    void head();

    /** Decoder block {@code i}'s gradients (0-based, forward order) are final. */
    void block(int i);
}
