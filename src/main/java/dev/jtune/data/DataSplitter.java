package dev.jtune.data;

import dev.jtune.util.UserError;

import java.nio.file.Path;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.Random;

/**
 * Splits the cleaned rows of the train file into train / validation / test by a seeded shuffle of the distinct
 * rows: identical rows share a {@link Candidate#key()} and so a split, so a duplicate kept on purpose
 * ({@code drop_duplicates: false}) cannot leak from train into evaluation. Each part keeps file order.
 */
final class DataSplitter {
    private DataSplitter() {}

    /**
     * @param validation fraction held out for validation (0 when a validation file is given)
     * @param test       fraction held out for testing (0 when a test file is given)
     * @return three lists: train, validation, test
     */
    static List<List<Candidate>> split(List<Candidate> all, double validation, double test, long seed, Path file) {
        Map<String, Integer> groups = new HashMap<>();
        int[] groupOf = new int[all.size()];
        for (int i = 0; i < all.size(); i++) {
            Integer fresh = groups.size();
            Integer g = groups.putIfAbsent(all.get(i).key(), fresh);
            groupOf[i] = g == null ? fresh : g;
        }
        byte[] where = assign(groupOf, all.size(), groups.size(), validation, test, seed, file);
        List<List<Candidate>> parts = List.of(new ArrayList<>(), new ArrayList<>(), new ArrayList<>());
        for (int i = 0; i < all.size(); i++) parts.get(where[i]).add(all.get(i));
        return parts;
    }

    /**
     * The split of {@code n} rows by their groups (numbered 0.. in order of first appearance; the rows of a group
     * are identical): the groups in a seeded shuffle, test rows first, then validation, the rest train.
     *
     * @param groupOf each row's group (only the first {@code n} entries are read)
     * @return each row's part: 0 train, 1 validation, 2 test
     */
    static byte[] assign(int[] groupOf, int n, int groups, double validation, double test, long seed, Path file) {
        int nTest = holdOut(n, test);
        int nVal = holdOut(n, validation);
        if (n > 0 && nTest + nVal >= n) {
            throw new UserError(file + ": only " + n + " usable rows; validation_split " + validation + " and test_split "
                    + test + " would leave nothing to train on");
        }
        byte[] where = new byte[n];
        if (nTest + nVal == 0) return where;
        int[] size = new int[groups];
        for (int i = 0; i < n; i++) size[groupOf[i]]++;
        // the groups in Collections.shuffle's order (its swaps, with the same Random), without boxing them
        int[] order = new int[groups];
        for (int g = 0; g < groups; g++) order[g] = g;
        Random rnd = new Random(seed);
        for (int i = groups; i > 1; i--) {
            int j = rnd.nextInt(i), t = order[i - 1];
            order[i - 1] = order[j];
            order[j] = t;
        }
        byte[] partOf = new byte[groups];
        int taken = 0;
        for (int g : order) {
            partOf[g] = (byte) (taken < nTest ? 2 : taken < nTest + nVal ? 1 : 0);
            taken += size[g];
        }
        for (int i = 0; i < n; i++) where[i] = partOf[groupOf[i]];
        return where;
    }

    /** Rows held out for a fraction: at least one when the fraction is positive. */
    private static int holdOut(int n, double fraction) {
        if (fraction <= 0 || n == 0) return 0;
        return (int) Math.max(1, Math.round(n * fraction));
    }
}
