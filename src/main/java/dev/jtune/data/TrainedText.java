package dev.jtune.data;

import dev.jtune.tokenizer.HfTokenizer;
import dev.jtune.util.Labels;

import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;

/**
 * An example as text with its trained spans marked, for {@code jtune data --show} (axolotl's
 * {@code preprocess --debug} is the model): the tokens are decoded run by run, a run being consecutive positions
 * that are all trained or all masked, so the marks fall exactly where the labels change.
 */
public final class TrainedText {
    /** One run of positions: its decoded text, and whether its labels carry the loss. */
    public record Run(String text, boolean trained) {}

    private TrainedText() {}

    public static List<Run> runs(Example e, HfTokenizer tok) {
        List<Run> out = new ArrayList<>();
        long[] ids = e.inputIds(), labels = e.labels();
        int i = 0;
        while (i < ids.length) {
            boolean trained = labels[i] != Labels.IGNORE_INDEX;
            int j = i;
            while (j < ids.length && (labels[j] != Labels.IGNORE_INDEX) == trained) j++;
            out.add(new Run(tok.decode(Arrays.copyOfRange(ids, i, j), false), trained));
            i = j;
        }
        return out;
    }

    /** The whole text with each trained run between {@code open} and {@code close}. */
    public static String marked(List<Run> runs, String open, String close) {
        StringBuilder sb = new StringBuilder();
        for (Run r : runs) {
            if (r.trained()) sb.append(open).append(r.text()).append(close);
            else sb.append(r.text());
        }
        return sb.toString();
    }
}
