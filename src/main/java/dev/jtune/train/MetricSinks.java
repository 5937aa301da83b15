package dev.jtune.train;

import com.fasterxml.jackson.databind.node.ArrayNode;
import com.fasterxml.jackson.databind.node.JsonNodeFactory;
import com.fasterxml.jackson.databind.node.ObjectNode;
import dev.jtune.api.TrainerCallback;
import dev.jtune.api.TrainerState;
import dev.jtune.eval.AnswerEvaluator;
import dev.jtune.metrics.EvalPoint;
import dev.jtune.metrics.MetricsLog;
import dev.jtune.metrics.ProgressDisplay;
import dev.jtune.metrics.TensorBoardWriter;
import dev.jtune.metrics.TrainPoint;

import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

/**
 * Where a run's numbers go: a {@link TrainerCallback} (the first of the run's) whose {@link #onLog} fans each logged
 * line out to metrics.jsonl, TensorBoard events and trainer_state.json's {@code log_history}, and keeps the in-memory
 * logs the report and the {@link Trainer.Outcome} are built from; plus the console progress line and the generated
 * answers, which the loop gives it directly.
 */
final class MetricSinks implements TrainerCallback {
    final List<TrainPoint> trainLog = new ArrayList<>();
    final List<EvalPoint> evalLog = new ArrayList<>();
    /** The method's metrics by step (preference tuning; empty for supervised fine-tuning), for the report. */
    final java.util.SortedMap<Long, java.util.Map<String, Double>> trainExtras = new java.util.TreeMap<>();
    final java.util.SortedMap<Long, java.util.Map<String, Double>> evalExtras = new java.util.TreeMap<>();
    final ArrayNode logHistory = JsonNodeFactory.instance.arrayNode();
    private MetricsLog metrics;
    private TensorBoardWriter tb;
    private ProgressDisplay progress;

    /** Attaches the file sinks (opened by the Trainer, which closes them); null on the ranks other than 0, which write nothing. */
    void open(MetricsLog metrics, TensorBoardWriter tb) {
        this.metrics = metrics;
        this.tb = tb;
    }

    /** Starts the console progress line at {@code step} of {@code total}. */
    void startProgress(long total, long step) {
        progress = new ProgressDisplay("train", total, step);
    }

    void stopProgress() {
        if (progress != null) progress.close();
        progress = null;
    }

    /** After every step: the progress line (not a log line). */
    void stepDone(long step, double loss, double lr, double tokensPerSecond) {
        if (progress != null) progress.update(step, loss, lr, tokensPerSecond);
    }

    /** A line above the progress bar (or plain output without one). */
    void message(String line) {
        if (progress != null) progress.message(line);
    }

    /**
     * A logged line, by the names of metrics.jsonl: training ({@code loss}, with {@code learning_rate}, {@code grad_norm},
     * {@code epoch}, {@code tokens_per_second}, {@code skipped_steps} and under fp16 {@code loss_scale}), a validation
     * evaluation ({@code eval_loss}, {@code eval_perplexity}, {@code epoch}) or the test split ({@code test_loss},
     * {@code test_perplexity}).
     */
    @Override
    public void onLog(TrainerState state, Map<String, Double> logs) {
        long step = state.globalStep();
        if (logs.containsKey("loss")) {
            train(new TrainPoint(step, logs.get("epoch"), logs.get("loss"), logs.get("learning_rate"), logs.get("grad_norm"),
                    logs.get("tokens_per_second")), logs.getOrDefault("loss_scale", Double.NaN), logs.get("skipped_steps").longValue(),
                    extras(logs, "", TRAIN_KEYS));
        } else if (logs.containsKey("eval_loss")) {
            // a preference run logs no perplexity: its loss is not a token cross-entropy
            boolean perplexity = logs.containsKey("eval_perplexity");
            eval(new EvalPoint(step, logs.get("epoch"), logs.get("eval_loss"), perplexity ? logs.get("eval_perplexity") : Double.NaN),
                    extras(logs, "eval_", EVAL_KEYS), perplexity);
        } else if (logs.containsKey("test_loss")) {
            test(logs.get("test_loss"), logs.get("test_perplexity"), step);
        }
    }

    private static final java.util.Set<String> TRAIN_KEYS = java.util.Set.of("loss", "learning_rate", "grad_norm", "epoch",
            "tokens_per_second", "skipped_steps", "loss_scale");
    private static final java.util.Set<String> EVAL_KEYS = java.util.Set.of("eval_loss", "eval_perplexity", "epoch");

    /**
     * A logged line's other metrics (a preference method's, TRL's names: {@code rewards/margins}, ...), without
     * {@code prefix}; empty for supervised fine-tuning.
     */
    private static Map<String, Double> extras(Map<String, Double> logs, String prefix, java.util.Set<String> known) {
        Map<String, Double> extra = new java.util.LinkedHashMap<>();
        logs.forEach((k, v) -> {
            if (!known.contains(k) && k.startsWith(prefix)) extra.put(k.substring(prefix.length()), v);
        });
        return extra;
    }

    /**
     * A logged training step; {@code lossScale} is NaN unless fp16 loss scaling is on. With the method's metrics
     * ({@code extra}, TRL's names: {@code rewards/margins}, ...): in the same metrics.jsonl line, as TensorBoard scalars
     * {@code train/<name>}, and kept for the report's curves.
     */
    private void train(TrainPoint p, double lossScale, long skippedSteps, java.util.Map<String, Double> extra) {
        trainLog.add(p);
        if (!extra.isEmpty()) trainExtras.put(p.step(), java.util.Map.copyOf(extra));
        if (metrics == null) return;
        metrics.train(p, extra);
        extra.forEach((k, v) -> tb.scalar("train/" + k, p.step(), v));
        tb.scalar("train/loss", p.step(), p.loss());
        tb.scalar("train/learning_rate", p.step(), p.learningRate());
        tb.scalar("train/grad_norm", p.step(), p.gradNorm());
        tb.scalar("train/tokens_per_second", p.step(), p.tokensPerSecond());
        if (!Double.isNaN(lossScale)) tb.scalar("train/loss_scale", p.step(), lossScale);
        tb.scalar("train/skipped_steps", p.step(), skippedSteps);
        ObjectNode h = logHistory.addObject();
        h.put("step", p.step());
        h.put("epoch", p.epoch());
        h.put("loss", p.loss());
        h.put("learning_rate", p.learningRate());
        h.put("grad_norm", p.gradNorm());
        h.put("skipped_steps", skippedSteps);
    }

    /**
     * A validation evaluation, with the method's metrics: {@code eval_<name>} in metrics.jsonl, TensorBoard
     * {@code eval/<name>}, the report's curves.
     */
    private void eval(EvalPoint p, java.util.Map<String, Double> extra, boolean perplexity) {
        evalLog.add(p);
        if (!extra.isEmpty()) evalExtras.put(p.step(), java.util.Map.copyOf(extra));
        if (metrics == null) return;
        metrics.eval(p, extra, perplexity);
        extra.forEach((k, v) -> tb.scalar("eval/" + k, p.step(), v));
        tb.scalar("eval/loss", p.step(), p.loss());
        if (perplexity) tb.scalar("eval/perplexity", p.step(), p.perplexity());
        ObjectNode h = logHistory.addObject();
        h.put("step", p.step());
        h.put("epoch", p.epoch());
        h.put("eval_loss", p.loss());
    }

    /** The test split's evaluation at the end; {@code perplexity} is null for a preference run. */
    private void test(double loss, Double perplexity, long step) {
        if (metrics == null) return;
        metrics.test(loss, perplexity, step);
        tb.scalar("test/loss", step, loss);
        if (perplexity != null) tb.scalar("test/perplexity", step, perplexity);
    }

    /**
     * A round of generated answers ({@code prefix}: base_test, base_eval, eval or test): the scores and the generation
     * time to metrics.jsonl and TensorBoard scalars ({@code <split>/<metric>}), and the first {@code samples} answers as
     * a Markdown table in TensorBoard's text dashboard ({@code <prefix>/answers}).
     */
    void answers(String prefix, long step, AnswerEvaluator.Result r, int samples) {
        Map<String, Double> values = new LinkedHashMap<>();
        r.scores().forEach((m, v) -> values.put(m.key(), v));
        values.put("generation_seconds", r.seconds());
        values.put("generation_tokens_per_second", r.tokensPerSecond());
        metrics.answers(prefix, step, values);
        String group = prefix.replace('_', '/');   // base_test -> base/test, eval -> eval
        r.scores().forEach((m, v) -> tb.scalar(group + "/" + m.key(), step, v));
        tb.scalar(group + "/generation_tokens_per_second", step, r.tokensPerSecond());
        StringBuilder md = new StringBuilder("| prompt | reference | answer |\n| --- | --- | --- |\n");
        for (int i = 0; i < Math.min(samples, r.answers().size()); i++) {
            AnswerEvaluator.Answer a = r.answers().get(i);
            md.append("| ").append(cell(a.question())).append(" | ").append(cell(a.reference())).append(" | ")
                    .append(cell(a.answer())).append(" |\n");
        }
        tb.text(group + "/answers", step, md.toString());
    }

    /** A Markdown table cell: one line, pipes escaped. */
    static String cell(String s) {
        return s.replaceAll("\\s+", " ").replace("|", "\\|").strip();
    }

    void flush() {
        if (tb != null) tb.flush();
    }
}
