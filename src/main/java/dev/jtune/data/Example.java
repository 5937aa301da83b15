package dev.jtune.data;

import java.util.Arrays;

import static dev.jtune.util.Labels.IGNORE_INDEX;

/**
 * One tokenised training example. {@code labels[i] == inputIds[i]} where the loss applies and
 * {@link dev.jtune.util.Labels#IGNORE_INDEX} elsewhere. Labels are NOT shifted: the trainer compares logits[t] with labels[t + 1].
 */
public record Example(long[] inputIds, long[] labels) {
    public Example {
        if (inputIds.length != labels.length) {
            throw new IllegalArgumentException("inputIds has " + inputIds.length + " tokens, labels " + labels.length);
        }
    }

    public int length() {
        return inputIds.length;
    }

    /** Number of positions t >= 1 whose label is not ignored (the (t-1, t) pairs that carry loss). */
    public int targetTokens() {
        int n = 0;
        for (int i = 1; i < labels.length; i++) {
            if (labels[i] != IGNORE_INDEX) n++;
        }
        return n;
    }

    @Override
    public boolean equals(Object o) {
        return o instanceof Example e && Arrays.equals(inputIds, e.inputIds) && Arrays.equals(labels, e.labels);
    }

    @Override
    public int hashCode() {
        return 31 * Arrays.hashCode(inputIds) + Arrays.hashCode(labels);
    }

    @Override
    public String toString() {
        return "Example[" + inputIds.length + " tokens, " + targetTokens() + " targets]";
    }
}
