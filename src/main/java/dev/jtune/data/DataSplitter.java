package dev.jtune.data;

import dev.jtune.util.UserError;

import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Collections;
import java.util.LinkedHashMap;
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
        Map<String, List<Integer>> groups = new LinkedHashMap<>();
        for (int i = 0; i < all.size(); i++) {
            groups.computeIfAbsent(all.get(i).key(), k -> new ArrayList<>()).add(i);
        }
        List<List<Integer>> order = new ArrayList<>(groups.values());
        Collections.shuffle(order, new Random(seed));
        int n = all.size();
        int nTest = holdOut(n, test);
        int nVal = holdOut(n, validation);
        if (n > 0 && nTest + nVal >= n) {
            throw new UserError(file + ": only " + n + " usable rows; validation_split " + validation + " and test_split "
                    + test + " would leave nothing to train on");
        }
        int[] where = new int[n]; // 0 train, 1 validation, 2 test
        int taken = 0;
        for (List<Integer> g : order) {
            int part = taken < nTest ? 2 : taken < nTest + nVal ? 1 : 0;
            for (int i : g) where[i] = part;
            taken += g.size();
        }
        List<List<Candidate>> parts = List.of(new ArrayList<>(), new ArrayList<>(), new ArrayList<>());
        for (int i = 0; i < n; i++) parts.get(where[i]).add(all.get(i));
        return parts;
    }

    /** Rows held out for a fraction: at least one when the fraction is positive. */
    private static int holdOut(int n, double fraction) {
        if (fraction <= 0 || n == 0) return 0;
        return (int) Math.max(1, Math.round(n * fraction));
    }
}
