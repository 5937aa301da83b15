package dev.jtune.sweep;

import dev.jtune.config.Experiment;

import java.io.PrintStream;
import java.nio.file.Path;
import java.util.Locale;

/** {@code jtune lr-find}: the range test ({@link LrFinder}), its plots ({@link LrFindPlot}) and the line to use the suggestion. */
public final class LrFind {
    private LrFind() {}

    public static LrFinder.Result run(Experiment exp, double start, double end, int steps, Path outDir, PrintStream out) {
        LrFinder.Result r = LrFinder.run(exp, start, end, steps, out);
        LrFindPlot.write(outDir, r, exp.file() + String.format(Locale.ROOT, ": %d steps from %.1e to %.1e", r.lrs().length, start, end));
        out.printf(Locale.ROOT, "lr-find: %d steps, stopped: %s%n", r.lrs().length, r.stopReason());
        out.printf(Locale.ROOT, "suggested learning rate %.2e (the steepest descent of the smoothed loss); plot %s%n",
                r.suggestion(), outDir.resolve("lr-find.png"));
        out.printf(Locale.ROOT, "use it with: --set training.learning_rate=%.2e%n", r.suggestion());
        return r;
    }
}
