package dev.jtune.data;

import dev.jtune.config.DataSection;

import java.util.ArrayList;
import java.util.List;
import java.util.Locale;
import java.util.Random;

/**
 * Draws the training examples of a mixture ({@code data.datasets}) by weight, with the seed. The mixture has as
 * many examples as its sources together; source i gets the share {@code weight_i / sum(weights)} of them: fewer
 * than it has are a seeded sample without replacement, more repeat all of it and sample the remainder (so a small
 * set with a large weight is up-sampled, as LLaMA-Factory's interleave with all_exhausted does). The examples stay
 * grouped by source here; the Batcher shuffles them every epoch.
 */
final class MixtureSampler {
    /** The drawn examples (indices into the prepared store) and how many came from each source. */
    record Mixture(int[] examples, int[] drawn, int[] available) {
        /** One note per source: {@code mixture: chat.parquet: 120 of 100 examples (weight 0.6, 60.0%)}. */
        List<String> lines(List<DataSection> sources, List<Double> weights) {
            double sum = weights.stream().mapToDouble(Double::doubleValue).sum();
            List<String> out = new ArrayList<>();
            int total = examples.length;
            for (int i = 0; i < sources.size(); i++) {
                out.add(String.format(Locale.ROOT, "mixture: %s (%s): %d train examples drawn from %d (weight %s, %.1f%% of %d)",
                        sources.get(i).trainFile().getFileName(), sources.get(i).format().name().toLowerCase(Locale.ROOT),
                        drawn[i], available[i], trim(weights.get(i)),
                        total == 0 ? 0.0 : 100.0 * drawn[i] / total, total));
            }
            return out;
        }

        private static String trim(double w) {
            return w == Math.rint(w) ? String.valueOf((long) w) : String.valueOf(w);
        }
    }

    private MixtureSampler() {}

    /** @param sources each source's training examples, as indices into the prepared store */
    static Mixture draw(List<int[]> sources, List<Double> weights, long seed) {
        int n = sources.size();
        int[] available = new int[n];
        int total = 0;
        for (int i = 0; i < n; i++) {
            available[i] = sources.get(i).length;
            total += available[i];
        }
        int[] drawn = shares(total, weights, available);
        if (n == 1) return new Mixture(sources.get(0), drawn, available);
        int[] out = new int[total];
        int k = 0;
        Random rng = new Random(seed ^ 0x6d697874L);   // "mixt": its own stream, not the split's
        for (int i = 0; i < n; i++) {
            int[] src = sources.get(i);
            if (src.length == 0) continue;
            int want = drawn[i];
            for (int r = 0; r < want / src.length; r++) {
                System.arraycopy(src, 0, out, k, src.length);
                k += src.length;
            }
            // a seeded sample of the remainder: Collections.shuffle's swaps on a copy, its first ones taken
            int[] rest = src.clone();
            for (int j = rest.length; j > 1; j--) {
                int x = rng.nextInt(j), t = rest[j - 1];
                rest[j - 1] = rest[x];
                rest[x] = t;
            }
            System.arraycopy(rest, 0, out, k, want % src.length);
            k += want % src.length;
        }
        return new Mixture(out, drawn, available);
    }

    /**
     * Examples per source: {@code total} split by weight (largest remainders get the rounding), none for an empty
     * source (its share goes to the others).
     */
    static int[] shares(int total, List<Double> weights, int[] available) {
        int n = weights.size();
        double sum = 0;
        for (int i = 0; i < n; i++) if (available[i] > 0) sum += weights.get(i);
        int[] out = new int[n];
        if (sum <= 0) return out;
        double[] exact = new double[n];
        int given = 0;
        for (int i = 0; i < n; i++) {
            if (available[i] == 0) continue;
            exact[i] = total * weights.get(i) / sum;
            out[i] = (int) Math.floor(exact[i]);
            given += out[i];
        }
        while (given < total) {
            int best = -1;
            for (int i = 0; i < n; i++) {
                if (available[i] == 0) continue;
                if (best < 0 || exact[i] - out[i] > exact[best] - out[best]) best = i;
            }
            out[best]++;
            given++;
        }
        return out;
    }
}
