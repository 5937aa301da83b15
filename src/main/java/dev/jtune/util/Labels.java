package dev.jtune.util;

/** The label conventions shared by the data pipeline, the loss and the kernels. */
public final class Labels {
    /**
     * A label that carries no loss (prompt tokens, padding, packing boundaries): PyTorch's and transformers'
     * {@code ignore_index}, so jtune's datasets mean the same as theirs.
     */
    public static final long IGNORE_INDEX = -100;

    private Labels() {}
}
