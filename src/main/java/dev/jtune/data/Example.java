package dev.jtune.data;

import java.util.Arrays;

import static dev.jtune.util.Labels.IGNORE_INDEX;

/**
 * One tokenised training example. {@code labels[i] == inputIds[i]} where the loss applies and
 * {@link dev.jtune.util.Labels#IGNORE_INDEX} elsewhere. Labels are NOT shifted: the trainer compares logits[t] with labels[t + 1].
 *
 * <p>Held compactly, since a million-row dataset holds tens of millions of tokens: ids as int (every vocabulary
 * fits) and one trained flag per token, 5 bytes a token instead of the 16 of two long arrays. Labels that are
 * neither the id nor ignored (none that jtune makes) are kept as they are. {@link #inputIds()} and
 * {@link #labels()} return fresh long arrays.
 *
 * <p>A prepared example is a view of the memory-mapped tokenized data ({@link TokenStore}): it holds where its
 * tokens are, and reads them from the mapping when asked, so a million examples cost no heap.
 */
public final class Example {
    private final int[] ids;
    private final byte[] trained;   // 1 where labels[i] == ids[i]; null when labels are kept in full
    private final long[] fullLabels; // only for labels that are neither the id nor ignored
    private final TokenStore store;  // the mapped form: tokens [start, start + length) of the store; else null
    private final long start;
    private final int length;

    public Example(long[] inputIds, long[] labels) {
        if (inputIds.length != labels.length) {
            throw new IllegalArgumentException("inputIds has " + inputIds.length + " tokens, labels " + labels.length);
        }
        ids = new int[inputIds.length];
        byte[] flags = new byte[inputIds.length];
        boolean derivable = true;
        for (int i = 0; i < ids.length; i++) {
            ids[i] = Math.toIntExact(inputIds[i]);
            if (labels[i] == inputIds[i]) flags[i] = 1;
            else if (labels[i] != IGNORE_INDEX) derivable = false;
        }
        trained = derivable ? flags : null;
        fullLabels = derivable ? null : labels.clone();
        store = null;
        start = 0;
        length = ids.length;
    }

    /** The example of tokens [start, start + length) of {@code store}. */
    Example(TokenStore store, long start, int length) {
        this.ids = null;
        this.trained = null;
        this.fullLabels = null;
        this.store = store;
        this.start = start;
        this.length = length;
    }

    /** Token {@code t} as the tokenized-data cache stores it: the id, with bit 31 set where it is trained on. */
    int stored(int t) {
        if (store != null) return store.raw(start + t);
        boolean on = fullLabels != null ? fullLabels[t] != IGNORE_INDEX : trained[t] != 0;
        return on ? ids[t] | TokenStore.TRAINED : ids[t];
    }

    public long[] inputIds() {
        if (store != null) {
            long[] out = new long[length];
            for (int i = 0; i < length; i++) out[i] = store.raw(start + i) & ~TokenStore.TRAINED;
            return out;
        }
        long[] out = new long[ids.length];
        for (int i = 0; i < ids.length; i++) out[i] = ids[i];
        return out;
    }

    public long[] labels() {
        if (store != null) {
            long[] out = new long[length];
            for (int i = 0; i < length; i++) {
                int raw = store.raw(start + i);
                out[i] = (raw & TokenStore.TRAINED) != 0 ? raw & ~TokenStore.TRAINED : IGNORE_INDEX;
            }
            return out;
        }
        if (fullLabels != null) return fullLabels.clone();
        long[] out = new long[ids.length];
        for (int i = 0; i < ids.length; i++) out[i] = trained[i] != 0 ? ids[i] : IGNORE_INDEX;
        return out;
    }

    public int length() {
        return length;
    }

    /** Number of positions t >= 1 whose label is not ignored (the (t-1, t) pairs that carry loss). */
    public int targetTokens() {
        int n = 0;
        if (store != null) {
            for (int i = 1; i < length; i++) if ((store.raw(start + i) & TokenStore.TRAINED) != 0) n++;
            return n;
        }
        if (fullLabels != null) {
            for (int i = 1; i < fullLabels.length; i++) if (fullLabels[i] != IGNORE_INDEX) n++;
            return n;
        }
        for (int i = 1; i < trained.length; i++) n += trained[i];
        return n;
    }

    @Override
    public boolean equals(Object o) {
        return o instanceof Example e && Arrays.equals(inputIds(), e.inputIds()) && Arrays.equals(labels(), e.labels());
    }

    @Override
    public int hashCode() {
        return 31 * Arrays.hashCode(inputIds()) + Arrays.hashCode(labels());
    }

    @Override
    public String toString() {
        return "Example[" + length + " tokens, " + targetTokens() + " targets]";
    }
}
