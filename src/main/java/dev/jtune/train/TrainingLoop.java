package dev.jtune.train;

import dev.jtune.train.checkpoint.Checkpoints;
import dev.jtune.train.step.TrainStep;
import com.fasterxml.jackson.databind.node.ObjectNode;
import dev.jtune.config.Experiment;
import dev.jtune.config.TrainingSection;
import dev.jtune.data.Batch;
import dev.jtune.data.Batcher;
import dev.jtune.data.PreparedData;
import dev.jtune.distributed.DistGroup;
import dev.jtune.metrics.EvalPoint;
import dev.jtune.util.UserError;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Locale;

/**
 * The loop of a run: optimizer steps over each epoch's micro-batches until the plan is done, early stopping fires, or
 * a signal asks to stop; after every step the cadence of transformers' {@code DefaultFlowCallback}: log every
 * {@code logging_steps} (and at the last step), evaluate every {@code eval_steps} (or at each epoch's end), save every
 * {@code save_steps} (and at the last step; or at each epoch's end). Then {@link #finish}: the final evaluation, the
 * best (or last) weights into final/, and the test split.
 */
final class TrainingLoop {
    private final Experiment exp;
    private final TrainingSection t;
    private final TrainingPlan plan;
    private final Batcher batcher;
    private final PreparedData data;
    private final TrainStep step;
    private final Evaluation evaluation;
    private final Checkpoints checkpoints;
    private final MetricSinks sinks;
    private final String chatTemplate;
    private final CheckpointWriter writer;
    final LoopState state = new LoopState();
    private Evaluator.Result test;
    private String preempted;   // the signal that stopped the run, or null
    private boolean pathsReported;
    String phase = "training";   // what the run is doing, for an out-of-memory message
    RunCallbacks callbacks;   // the sinks, then the user's callbacks (and jtune sweep's pruner)
    AnswerRounds answers = AnswerRounds.NONE;        // predict_with_generate: answers at each evaluation and at the end
    private final DistGroup group;   // the ranks of a data-parallel run: rank 0 writes, all decide alike
    private long lastSaved = -1;     // the step of the checkpoint written last (the same on every rank)
    /** The metrics of the last evaluation beside its loss (preference tuning: rewards/accuracies, ...; else empty). */
    java.util.function.Supplier<java.util.Map<String, Double>> evalMetrics = java.util.Map::of;
    /** The steps' own metrics since the last log line (name -> {sum, steps}), logged as their means as TRL does. */
    private final java.util.Map<String, double[]> metricWindow = new java.util.LinkedHashMap<>();

    TrainingLoop(Experiment exp, TrainingPlan plan, Batcher batcher, PreparedData data, TrainStep step, Evaluation evaluation,
                 MetricSinks sinks, String chatTemplate, ObjectNode manifestBase, DistGroup group) {
        this.group = group;
        this.state.worldSize = group.worldSize();
        this.exp = exp;
        this.t = exp.training();
        this.plan = plan;
        this.batcher = batcher;
        this.data = data;
        this.step = step;
        this.evaluation = evaluation;
        this.checkpoints = new Checkpoints(t.outputDir(), t.saveTotalLimit());
        this.sinks = sinks;
        this.chatTemplate = chatTemplate;
        this.writer = new CheckpointWriter(step, group, checkpoints, exp, chatTemplate, manifestBase);
        withCallbacks(List.of());
    }

    /** Tells {@code more} of the run's events after the run's own sinks (metrics.jsonl, TensorBoard, log_history). */
    void withCallbacks(List<dev.jtune.api.TrainerCallback> more) {
        List<dev.jtune.api.TrainerCallback> all = new ArrayList<>();
        all.add(sinks);
        all.addAll(more);
        callbacks = new RunCallbacks(all);
        callbacks.stateFrom(this::snapshot);
    }

    /** The snapshot callbacks are given. */
    dev.jtune.api.TrainerState snapshot() {
        return new dev.jtune.api.TrainerState(Math.toIntExact(state.position.step), Math.toIntExact(plan.totalSteps()), epochs(), bestEvalLoss(),
                state.best.step == null ? null : Math.toIntExact(state.best.step),
                t.outputDir(), group.isMain());
    }

    /**
     * What a run's loop did: the steps taken, why it stopped, and (unless a signal stopped it, with a checkpoint) the
     * final model and the test split's result.
     *
     * @param preemptedBy the signal that stopped the run after a checkpoint, or null
     * @param finalDir    output_dir/final, or null when preempted
     * @param test        the test split's loss, or null (no test split, or preempted)
     */
    record Result(long steps, double epochs, String stopReason, String preemptedBy, Path finalDir, Evaluator.Result test,
                  Double bestLoss, Long bestStep, long skippedSteps) {}

    /** Trains ({@link #train}), then, unless a signal stopped the run, {@link #finish}es it. */
    Result run(java.util.function.Supplier<String> preemption, java.io.PrintStream out) throws IOException {
        String stopReason = train(preemption);
        Path finalDir = null;
        if (preempted == null) finalDir = finish(out);
        else stopReason = "stopped by " + preempted;
        return new Result(step(), epochs(), stopReason, preempted, finalDir, test, bestEvalLoss(), state.best.step, state.bad.skipped);
    }

    /**
     * The validation loss at the best evaluation (the best is chosen by training.metric_for_best_model, which may be a
     * preference metric such as rewards/accuracies), or null.
     */
    private Double bestEvalLoss() {
        Long at = state.best.step;
        if (at == null) return null;
        for (EvalPoint p : sinks.evalLog) if (p.step() == at) return p.loss();
        return state.best.loss;
    }

    long step() {
        return state.position.step;
    }

    double epochs() {
        return state.position.epochFraction(plan.microBatchesPerEpoch());
    }

    Path checkpointDir(long atStep) {
        return checkpoints.dirFor(atStep);
    }

    /**
     * After a restore: the checkpoint's position counts this rank's micro-batches at the world size it was written with.
     * The same world size continues exactly; another one continues from the same number of rows of the epoch (the data
     * position derived from the global step), with a warning: the order of the rest of the epoch is the same, but the
     * global batch, and so the losses, are not those of the original run.
     */
    void continueOnWorldSize(int worldSize, java.io.PrintStream out) {
        LoopState.Position pos = state.position;
        lastSaved = pos.step;
        int was = state.worldSize;
        state.worldSize = worldSize;
        if (was == worldSize) return;
        int rows = pos.resumeMicro * t.perDeviceTrainBatchSize() * was;
        pos.resumeMicro = Math.min(batcher.batchesInEpoch(pos.epoch), rows / (t.perDeviceTrainBatchSize() * worldSize));
        out.printf(Locale.ROOT, "warning: resuming a run of world size %d on %d ranks: the global batch is now %d rows "
                        + "instead of %d; continuing at step %d from row %d of epoch %d, each rank with the random generators of "
                        + "the checkpoint's rank of the same number, or rank 0's where it had fewer (the resume is not exact)%n",
                was, worldSize, t.perDeviceTrainBatchSize() * t.gradientAccumulationSteps() * worldSize,
                t.perDeviceTrainBatchSize() * t.gradientAccumulationSteps() * was, pos.step, rows, pos.epoch);
    }

    /** Runs optimizer steps until the plan is done, early stopping fires or a signal arrives; returns why it stopped. */
    String train(java.util.function.Supplier<String> preemption) {
        LoopState.Position pos = state.position;
        sinks.startProgress(plan.totalSteps(), pos.step);
        state.window.startNanos = System.nanoTime();
        callbacks.trainBegin();
        try {
            while (pos.step < plan.totalSteps()) {
                try (Batcher.BatchIterator it = batcher.epoch(pos.epoch, pos.resumeMicro)) {
                    pos.microInEpoch = pos.resumeMicro;
                    pos.resumeMicro = 0;
                    while (it.hasNext() && pos.step < plan.totalSteps()) {
                        List<Batch> micro = new ArrayList<>(plan.accumulation());
                        while (micro.size() < plan.accumulation() && it.hasNext()) micro.add(it.next());   // the last may be partial
                        pos.microInEpoch += micro.size();
                        optimizerStep(micro);
                        String stop = afterStep(!it.hasNext(), preemption);
                        if (stop != null) return stop;
                    }
                }
                if (pos.step < plan.totalSteps()) pos.epoch++;
            }
            return t.maxSteps() > 0 ? "max_steps reached" : "all epochs done";
        } finally {
            sinks.stopProgress();
        }
    }

    /**
     * One optimizer step and its bookkeeping. The learning rate is the schedule's at the number of steps taken so far
     * that were not skipped: as in transformers, where a skipped step (fp16 overflow) does not advance the scheduler.
     */
    private void optimizerStep(List<Batch> micro) {
        LoopState.Position pos = state.position;
        double lr = plan.schedule().at(pos.step - state.bad.skipped);
        step.dataParallel().startStep(pos.step + 1);   // names the step in a failed collective's message
        TrainStep.Result r = step.step(micro, lr);
        state.bad.record(r.skipped());
        if (r.skipped()) {
            sinks.message(String.format(Locale.ROOT, "step %d skipped: non-finite gradients%s", pos.step + 1,
                    step.scaler().enabled() ? String.format(Locale.ROOT, " (fp16 loss scale %.0f, backing off)", step.scaler().scaleValue()) : ""));
        }
        if (state.bad.streak >= t.maxBadSteps()) {
            List<Path> saved = Checkpoints.list(t.outputDir());
            throw new UserError(String.format(Locale.ROOT, "stopping at step %d: %d consecutive steps had a non-finite loss or gradients "
                    + "(training.max_bad_steps is %d). The last good checkpoint is %s. Lower training.learning_rate, use bf16 "
                    + "instead of fp16, or look for broken rows in %s", pos.step + 1, state.bad.streak, t.maxBadSteps(),
                    saved.isEmpty() ? "none (no checkpoint was written yet)" : saved.get(saved.size() - 1).toString(), exp.data().describeTraining()));
        }
        pos.step++;
        if (!pathsReported) {   // what the ops really ran in this run's first step (Ops.describe said what was intended)
            pathsReported = true;
            java.util.Map<String, String> taken = dev.jtune.kernels.OpPaths.taken();
            if (!taken.isEmpty()) {
                StringBuilder b = new StringBuilder("kernels taken in step " + pos.step + ":");
                taken.forEach((op, path) -> b.append(String.format(Locale.ROOT, "%n  %-16s %s", op, path)));
                sinks.message(b.toString());
            }
        }
        LoopState.LossWindow w = state.window;
        w.add(r.loss(), r.tokens());
        step.loss().stepMetrics().forEach((k, v) -> {
            double[] s = metricWindow.computeIfAbsent(k, x -> new double[2]);
            s[0] += v;
            s[1]++;
        });
        sinks.stepDone(pos.step, r.loss(), lr, w.tokensPerSecond());
        if (pos.step % t.loggingSteps() == 0 || pos.step == plan.totalSteps()) {
            // transformers logs the mean of the window's step losses and the last step's grad norm, before clipping
            // (metrics.jsonl, TensorBoard and trainer_state.json's log_history are callbacks: MetricSinks)
            java.util.Map<String, Double> logs = new java.util.LinkedHashMap<>();
            logs.put("loss", w.meanLoss());
            logs.put("learning_rate", lr);
            logs.put("grad_norm", r.gradNorm());
            logs.put("epoch", epochs());
            logs.put("tokens_per_second", w.tokensPerSecond());
            logs.put("skipped_steps", (double) state.bad.skipped);
            if (step.scaler().enabled()) logs.put("loss_scale", step.scaler().scaleValue());
            // the method's metrics (preference tuning: rewards/chosen, ...), the means over the window's steps as TRL logs them
            metricWindow.forEach((k, s) -> logs.put(k, s[0] / s[1]));
            metricWindow.clear();
            callbacks.log(logs);
            w.reset();
        }
    }

    /** Evaluation, checkpoint and stop decisions after a step; returns why the run stops now, or null. */
    private String afterStep(boolean epochEnd, java.util.function.Supplier<String> preemption) {
        long now = state.position.step;
        callbacks.stepEnd();
        boolean evalNow = (t.evalSteps() > 0 ? now % t.evalSteps() == 0 : epochEnd) | callbacks.takeEvaluate();
        String stop = null;
        if (evalNow && !data.validation().isEmpty()) stop = evaluate();
        boolean saveNow = (t.saveSteps() > 0 ? now % t.saveSteps() == 0 || now == plan.totalSteps() : epochEnd) | callbacks.takeSave();
        if (saveNow && lastSaved != now) save();
        if (stop == null && callbacks.stopRequested() != null) {
            stop = callbacks.stopRequested();
            sinks.message(stop);
        }
        if (stop != null) return stop;
        // a signal to any rank stops every rank after this same step (one tiny all-reduce per step when distributed)
        String mine = preemption.get();
        if (group.anyTrue(mine != null, String.format(Locale.ROOT, "all-reduce of the stop flag after step %d", now))) {
            preempted = mine != null ? mine : "a signal to another rank";
            if (lastSaved != now) save();
            return "stopped by " + preempted;
        }
        return null;
    }

    /** Evaluates on the validation split; returns why the run stops here (early stopping), or null. */
    private String evaluate() {
        long now = state.position.step;
        Evaluator.Result r = evaluation.run(data.validation(), "validation");
        boolean perplexity = hasPerplexity();
        EvalPoint p = new EvalPoint(now, epochs(), r.loss(), perplexity ? r.perplexity() : Double.NaN);
        java.util.Map<String, Double> extra = evalMetrics.get();
        java.util.Map<String, Double> logs = new java.util.LinkedHashMap<>();
        logs.put("eval_loss", r.loss());
        if (perplexity) logs.put("eval_perplexity", r.perplexity());
        extra.forEach((k, v) -> logs.put("eval_" + k, v));   // a preference method's: eval_rewards/accuracies, ...
        logs.put("epoch", p.epoch());
        callbacks.log(logs);   // before a best-model checkpoint, whose log_history holds this evaluation
        LoopState.Best best = state.best;
        // metric_for_best_model: the loss, or a method's metric (eval_rewards/accuracies); Best keeps lower-is-better scores
        String metric = t.bestModelMetric();
        double value = metric.equals("loss") ? r.loss() : extra.getOrDefault(metric, Double.NaN);
        boolean newBest = best.record(t.largerIsBetter() ? -value : value, now, t.earlyStoppingThreshold());
        if (newBest) save();   // the best model is always on disk, whatever save_steps says
        Integer patience = t.earlyStoppingPatience();
        String mark = newBest && best.badEvals == 0 ? "best so far"
                : (newBest ? "best so far, but not by more than early_stopping_threshold; " : "")
                + "no improvement (" + best.badEvals + (patience == null ? "" : "/" + patience) + ")";
        sinks.message(!perplexity
                ? String.format(Locale.ROOT, "eval @ step %d (epoch %.2f): loss %.4f, %s%s", now, p.epoch(), r.loss(), rewards(extra), mark)
                : String.format(Locale.ROOT, "eval @ step %d (epoch %.2f): loss %.4f, perplexity %.2f, %s",
                        now, p.epoch(), r.loss(), r.perplexity(), mark));
        answers.eval(now, sinks);
        java.util.Map<String, Double> metrics = new java.util.LinkedHashMap<>(logs);
        metrics.remove("epoch");
        callbacks.evaluate(metrics);
        if (patience != null && best.badEvals >= patience) return "early stopping: no improvement in " + patience + " evaluations";
        return null;
    }

    /**
     * Whether the run's loss is a mean token cross-entropy, whose exp is a perplexity (supervised fine-tuning). A
     * preference method's loss (DPO, ORPO, KTO, SimPO) is not: its exp means nothing, so it is neither logged nor shown.
     */
    boolean hasPerplexity() {
        return !t.method().preference();
    }

    /** "rewards/accuracies 0.750, rewards/margins 0.1234, " for the preference metrics the method logs (KTO has no accuracies). */
    private static String rewards(java.util.Map<String, Double> extra) {
        StringBuilder b = new StringBuilder();
        if (extra.containsKey("rewards/accuracies")) b.append(String.format(Locale.ROOT, "rewards/accuracies %.3f, ", extra.get("rewards/accuracies")));
        if (extra.containsKey("rewards/margins")) b.append(String.format(Locale.ROOT, "rewards/margins %.4f, ", extra.get("rewards/margins")));
        return b.toString();
    }

    /** A checkpoint of this step (see {@link CheckpointWriter}); callbacks are told once every rank has it. */
    private void save() {
        long now = state.position.step;
        Path dir = writer.save(now, TrainerState.write(state, t, plan, sinks, checkpoints));
        lastSaved = now;
        callbacks.save(dir);
    }

    /** Final evaluation, the best (or last) weights into final/, and the test split. */
    Path finish(java.io.PrintStream out) throws IOException {
        long now = state.position.step;
        phase = "the final evaluation";
        if (!data.validation().isEmpty() && (sinks.evalLog.isEmpty() || sinks.evalLog.get(sinks.evalLog.size() - 1).step() != now)) {
            evaluate();
        }
        LoopState.Best best = state.best;
        if (t.loadBestModelAtEnd() && best.step != null && best.step != now) {
            step.trained().restore(checkpoints.dirFor(best.step));
            out.printf(Locale.ROOT, "loaded the best model: step %d, eval_%s %.4f%n", best.step, t.bestModelMetric(),
                    t.largerIsBetter() ? -best.loss : best.loss);
        }
        Path finalDir = t.outputDir().resolve("final");
        if (group.isMain()) {
            Checkpoints.deleteTree(finalDir);
            step.trained().save(finalDir, exp.model().path(), exp.model().tokenizer(), chatTemplate);
        }
        group.barrier("barrier after rank 0's final model");
        if (!data.test().isEmpty()) {
            phase = "the test evaluation";
            test = evaluation.run(data.test(), "test");
            java.util.Map<String, Double> logs = new java.util.LinkedHashMap<>();
            logs.put("test_loss", test.loss());
            if (hasPerplexity()) logs.put("test_perplexity", test.perplexity());
            callbacks.log(logs);
            if (hasPerplexity()) {
                out.printf(Locale.ROOT, "test: loss %.4f, perplexity %.2f over %,d tokens the model never trained on%n",
                        test.loss(), test.perplexity(), test.tokens());
            } else {
                out.printf(Locale.ROOT, "test: loss %.4f over %,d tokens the model never trained on%n", test.loss(), test.tokens());
            }
        }
        phase = "generating answers to the test prompts";
        answers.test(now, sinks);
        sinks.flush();
        return finalDir;
    }
}
