package dev.jtune.train;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.node.ObjectNode;

/**
 * The mutable state of a training loop, in the small groups that trainer_state.json saves (its {@code jtune} block) and
 * {@code --resume} restores, so that a resumed run continues exactly.
 */
final class LoopState {
    final Position position = new Position();
    final LossWindow window = new LossWindow();
    final Best best = new Best();
    final BadSteps bad = new BadSteps();
    /** Ranks of the run that wrote the state (1 without a launcher): batches_in_epoch counts one rank's micro-batches. */
    int worldSize = 1;

    /** Where the run is in its data: optimizer steps taken, the epoch, and the micro-batches consumed in it. */
    static final class Position {
        long step;
        int epoch;
        int microInEpoch;
        /** Micro-batches of the current epoch consumed before a resume (skipped when the epoch's iterator opens). */
        int resumeMicro;

        /** transformers' state.epoch: epoch + micro-batches done / micro-batches per epoch. */
        double epochFraction(int microPerEpoch) {
            return epoch + (double) microInEpoch / Math.max(1, microPerEpoch);
        }
    }

    /**
     * The steps since the last logged line: their summed loss, as transformers' tr_loss, whose mean over the steps
     * (global_step − _globalstep_last_logged) is the logged loss; and their tokens, for tokens per second.
     */
    static final class LossWindow {
        double lossSum;
        long steps;
        long tokens;
        long startNanos = System.nanoTime();

        void add(double loss, long stepTokens) {
            lossSum += loss;
            steps++;
            tokens += stepTokens;
        }

        double meanLoss() {
            return lossSum / steps;
        }

        double tokensPerSecond() {
            return tokens / Math.max((System.nanoTime() - startNanos) / 1e9, 1e-9);
        }

        void reset() {
            lossSum = 0;
            steps = 0;
            tokens = 0;
            startNanos = System.nanoTime();
        }
    }

    /**
     * The best validation loss so far and early-stopping patience, with transformers' two rules: the best model is
     * any strictly lower loss ({@code Trainer._determine_best_metric}); patience is reset only by an improvement on
     * the previous best of more than {@code early_stopping_threshold} ({@code EarlyStoppingCallback.check_metric_value}).
     */
    static final class Best {
        Double loss;
        Long step;
        int badEvals;

        /** Records an evaluation at {@code atStep}; returns whether it is the new best. */
        boolean record(double evalLoss, long atStep, double threshold) {
            boolean patienceReset = loss == null || (evalLoss < loss && Math.abs(evalLoss - loss) > threshold);
            boolean newBest = loss == null || evalLoss < loss;
            badEvals = patienceReset ? 0 : badEvals + 1;
            if (newBest) {
                loss = evalLoss;
                step = atStep;
            }
            return newBest;
        }
    }

    /** Steps skipped because of a non-finite loss or gradients: in all, and in a row (against max_bad_steps). */
    static final class BadSteps {
        long skipped;
        int streak;

        void record(boolean skippedNow) {
            if (skippedNow) {
                skipped++;
                streak++;
            } else {
                streak = 0;
            }
        }
    }

    /** The {@code jtune} block of trainer_state.json: the exact position, for --resume. */
    void write(ObjectNode j) {
        j.put("epoch_index", position.epoch);
        j.put("batches_in_epoch", position.microInEpoch);
        j.put("bad_evals", best.badEvals);
        j.put("bad_streak", bad.streak);
        j.put("skipped_steps", bad.skipped);
        j.put("world_size", worldSize);
        j.put("window_loss", window.lossSum);
        j.put("window_steps", window.steps);
        j.put("window_tokens", window.tokens);
        if (best.loss != null) {
            j.put("best_loss", best.loss);
            j.put("best_step", best.step);
        }
    }

    /** Restores what {@link #write} wrote, with the step from trainer_state.json's global_step. */
    void read(long globalStep, JsonNode j) {
        position.step = globalStep;
        position.epoch = j.path("epoch_index").asInt();
        position.resumeMicro = j.path("batches_in_epoch").asInt();
        best.badEvals = j.path("bad_evals").asInt();
        bad.streak = j.path("bad_streak").asInt();
        bad.skipped = j.path("skipped_steps").asLong();
        worldSize = j.path("world_size").asInt(1);
        window.lossSum = j.path("window_loss").asDouble();
        window.steps = j.path("window_steps").asLong();
        window.tokens = j.path("window_tokens").asLong();
        if (j.has("best_loss")) {
            best.loss = j.get("best_loss").asDouble();
            best.step = j.get("best_step").asLong();
        }
    }
}
