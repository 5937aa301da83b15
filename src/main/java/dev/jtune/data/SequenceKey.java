package dev.jtune.data;

import java.util.Arrays;

/**
 * A token sequence as a map key (equal when the ids are equal): how per-sequence facts that batches do not carry
 * (precomputed reference log-probabilities, a KTO completion's label) are found again for a batch row.
 */
public final class SequenceKey {
    private final long[] ids;
    private final int hash;

    /** The first {@code length} ids of {@code ids} (a padded batch row cut to its real length). */
    public SequenceKey(long[] ids, int length) {
        this.ids = Arrays.copyOf(ids, length);
        this.hash = Arrays.hashCode(this.ids);
    }

    public static SequenceKey of(Example e) {
        return new SequenceKey(e.inputIds(), e.length());
    }

    @Override
    public boolean equals(Object o) {
        return o instanceof SequenceKey k && hash == k.hash && Arrays.equals(ids, k.ids);
    }

    @Override
    public int hashCode() {
        return hash;
    }
}
