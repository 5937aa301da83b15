package dev.jtune.sweep;

import dev.jtune.config.Experiment;
import dev.jtune.config.TrainingSection;
import dev.jtune.data.Batch;
import dev.jtune.data.Batcher;
import dev.jtune.data.DatasetPreparer;
import dev.jtune.data.PreparedData;
import dev.jtune.kernels.Ops;
import dev.jtune.tokenizer.HfTokenizer;
import dev.jtune.train.step.TrainStep;
import dev.jtune.util.UserError;

import java.io.PrintStream;
import java.util.ArrayList;
import java.util.List;
import java.util.Locale;

/**
 * Smith's learning-rate range test ("Cyclical Learning Rates", 2017; fastai's {@code lr_find}): optimizer steps of
 * the experiment's own training step ({@link TrainStep}, the one the trainer runs) with the learning rate growing
 * exponentially from {@code start} to {@code end}, on an in-memory copy of the starting weights (nothing is written
 * to the model directory). The loss is smoothed by an exponential moving average (beta 0.98, bias-corrected); the
 * test stops when the smoothed loss exceeds {@link #DIVERGED} times its best, or a loss is not finite.
 *
 * <p>The suggestion is fastai's "steepest" point: where the smoothed loss falls fastest per unit of log(lr), found
 * with central differences away from the noisy first points and the diverging last ones.
 */
final class LrFinder {
    static final double BETA = 0.98;
    static final double DIVERGED = 4.0;

    /** The curve and the suggestion; {@code lrs[i]} is the rate of step i, {@code losses[i]} its loss. */
    public record Result(double[] lrs, double[] losses, double[] smoothed, int suggestedIndex, String stopReason) {
        public double suggestion() {
            return lrs[suggestedIndex];
        }
    }

    private LrFinder() {}

    public static Result run(Experiment exp, double start, double end, int steps, PrintStream out) {
        TrainingSection t = exp.training();
        try (HfTokenizer tok = HfTokenizer.load(exp.model().tokenizer())) {
            dev.jtune.model.ModelConfig config = dev.jtune.model.ModelConfig.read(exp.model().path());
            tok.requireFitsModel(config.vocabSize(), config.where());
            PreparedData data = DatasetPreparer.prepareCached(exp.data(), t.seed(), tok, out, t.dataloaderNumWorkers());
            if (data.train().isEmpty()) throw new UserError(exp.data().describeTraining() + ": no training examples left after cleaning and splitting");
            Batcher batcher = new Batcher(data.train(), t.perDeviceTrainBatchSize(), true, t.seed(), exp.data().packing(),
                    exp.data().maxSeqLength(), tok.paddingId());
            List<Double> lrs = new ArrayList<>(), losses = new ArrayList<>(), smoothed = new ArrayList<>();
            String stop = "reached --end";
            double avg = 0, best = Double.POSITIVE_INFINITY;
            try (TrainStep step = TrainStep.forExperiment(exp, Ops.of(t.kernels()), dev.jtune.distributed.DistGroup.single(), x -> x)) {
                int epoch = 0;
                Batcher.BatchIterator it = batcher.epoch(epoch, 0);
                try {
                    for (int i = 0; i < steps; i++) {
                        double lr = start * Math.pow(end / start, (double) i / (steps - 1));
                        List<Batch> micro = new ArrayList<>();
                        while (micro.size() < t.gradientAccumulationSteps()) {
                            if (!it.hasNext()) {   // the data ran out: the next epoch's order
                                it.close();
                                it = batcher.epoch(++epoch, 0);
                            }
                            micro.add(it.next());
                        }
                        double loss = step.step(micro, lr).loss();
                        lrs.add(lr);
                        losses.add(loss);
                        if (!Double.isFinite(loss)) {
                            smoothed.add(Double.NaN);
                            stop = String.format(Locale.ROOT, "the loss is not finite at lr %.3g", lr);
                            break;
                        }
                        avg = BETA * avg + (1 - BETA) * loss;
                        double s = avg / (1 - Math.pow(BETA, i + 1));
                        smoothed.add(s);
                        best = Math.min(best, s);
                        out.printf(Locale.ROOT, "lr-find: step %d/%d, lr %.3e, loss %.4f, smoothed %.4f%n", i + 1, steps, lr, loss, s);
                        if (s > DIVERGED * best) {
                            stop = String.format(Locale.ROOT, "the loss diverged at lr %.3g (smoothed %.4f > %.0f x the best %.4f)", lr, s, DIVERGED, best);
                            break;
                        }
                    }
                } finally {
                    it.close();
                }
            }
            double[] x = lrs.stream().mapToDouble(Double::doubleValue).toArray();
            double[] y = smoothed.stream().mapToDouble(Double::doubleValue).toArray();
            return new Result(x, losses.stream().mapToDouble(Double::doubleValue).toArray(), y, steepest(x, y), stop);
        }
    }

    /**
     * The index of the steepest descent of {@code smoothed} against log(lr): central differences (numpy.gradient) over
     * the points after the first tenth (at most 10) and before the last tenth (at most 5); with too few points, the
     * lowest smoothed loss.
     */
    static int steepest(double[] lrs, double[] smoothed) {
        int n = smoothed.length;
        while (n > 0 && !Double.isFinite(smoothed[n - 1])) n--;
        if (n == 0) throw new UserError("lr-find: the first step's loss is not finite; lower --start");
        int skipStart = Math.min(10, n / 10), skipEnd = Math.min(5, n / 10);
        int best = -1;
        double steepest = Double.POSITIVE_INFINITY;
        for (int i = Math.max(1, skipStart); i < n - 1 - skipEnd; i++) {
            double g = (smoothed[i + 1] - smoothed[i - 1]) / (Math.log(lrs[i + 1]) - Math.log(lrs[i - 1]));
            if (g < steepest) {
                steepest = g;
                best = i;
            }
        }
        if (best < 0) {   // fewer than three usable points
            best = 0;
            for (int i = 1; i < n; i++) if (smoothed[i] < smoothed[best]) best = i;
        }
        return best;
    }
}
