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
 */
public final class Example {
    private final int[] ids;
    private final byte[] trained;   // 1 where labels[i] == ids[i]; null when labels are kept in full
    private final long[] fullLabels; // only for labels that are neither the id nor ignored

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
    }

    public long[] inputIds() {
        long[] out = new long[ids.length];
        for (int i = 0; i < ids.length; i++) out[i] = ids[i];
        return out;
    }

    public long[] labels() {
        if (fullLabels != null) return fullLabels.clone();
        long[] out = new long[ids.length];
        for (int i = 0; i < ids.length; i++) out[i] = trained[i] != 0 ? ids[i] : IGNORE_INDEX;
        return out;
    }

    public int length() {
        return ids.length;
    }

    /** Number of positions t >= 1 whose label is not ignored (the (t-1, t) pairs that carry loss). */
    public int targetTokens() {
        int n = 0;
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
        return "Example[" + ids.length + " tokens, " + targetTokens() + " targets]";
    }
}
