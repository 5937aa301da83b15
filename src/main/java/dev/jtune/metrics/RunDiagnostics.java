package dev.jtune.metrics;

import com.fasterxml.jackson.databind.JsonNode;

import java.util.ArrayList;
import java.util.Comparator;
import java.util.List;
import java.util.Locale;

/**
 * Looks at a finished run for the classic fine-tuning traps and says, in one plain sentence each,
 * what went wrong and what to do about it. A healthy run gets no warnings.
 *
 * <p>Checks, most serious first: non-finite losses; a training loss that does not go down; validation
 * loss rising while training loss falls, or a gap between them that keeps widening (overfitting; the warning
 * names the regularisers to set, by key: {@link #remedies}); too little data for the steps asked
 * (memorisation); no validation data, or validation data that was never evaluated.
 */
public final class RunDiagnostics {
    /** Below this many training examples a fine-tune mostly memorises. */
    static final int FEW_EXAMPLES = 100;
    /** Above this many passes over the same data a fine-tune mostly memorises. */
    static final double MANY_EPOCHS = 10.0;
    /** Validation splits smaller than this give an evaluation loss too noisy to act on. */
    static final int FEW_VALIDATION_EXAMPLES = 20;

    private RunDiagnostics() {}

    public static List<String> warnings(RunRecord r) {
        List<String> w = new ArrayList<>();
        nonFinite(r, w);
        notDecreasing(r, w);
        overfitting(r, w);
        wideningGap(r, w);
        tooLittleData(r, w);
        validation(r, w);
        return List.copyOf(w);
    }

    private static void nonFinite(RunRecord r, List<String> w) {
        long bad = 0;
        Long first = null;
        for (TrainPoint p : r.train()) {
            if (!Double.isFinite(p.loss())) {
                bad++;
                first = first == null ? p.step() : first;
            }
        }
        long badEval = r.eval().stream().filter(p -> !Double.isFinite(p.loss())).count();
        boolean badTest = r.testLoss() != null && !Double.isFinite(r.testLoss());
        if (bad == 0 && badEval == 0 && !badTest) {
            return;
        }
        List<String> where = new ArrayList<>();
        if (bad > 0) {
            where.add(String.format(Locale.ROOT, "%,d logged training loss%s (first at step %,d)", bad, bad == 1 ? "" : "es", first));
        }
        if (badEval > 0) {
            where.add(String.format(Locale.ROOT, "%,d validation loss%s", badEval, badEval == 1 ? "" : "es"));
        }
        if (badTest) {
            where.add("the test loss");
        }
        w.add("Non-finite losses (NaN or infinity): " + String.join(", ", where) + ". Training diverged numerically: lower"
                + " learning_rate, keep gradient clipping on (max_grad_norm 1.0), prefer bfloat16 or float32 over float16, and"
                + " look for empty or extremely long examples in the data.");
    }

    private static void notDecreasing(RunRecord r, List<String> w) {
        List<TrainPoint> t = r.train().stream().filter(p -> Double.isFinite(p.loss())).toList();
        int n = t.size();
        if (n < 4) {
            return;
        }
        int k = Math.max(1, Math.min(50, n / 5));
        double first = mean(t.subList(0, k));
        double last = mean(t.subList(n - k, n));
        double needed = Math.max(0.02 * Math.abs(first), 0.01);
        if (last <= first - needed) {
            return;
        }
        String what = last > first + needed ? "went up" : "did not clearly go down";
        w.add(String.format(Locale.ROOT,
                "Training loss %s (mean of the first %d logged values %.4f, of the last %d %.4f): the model is not learning."
                        + " Check learning_rate (too high makes the loss jump or climb, too low leaves it flat; a sweep over"
                        + " 1e-5 to 3e-4 is a good start) and check the data: labels not masked out entirely, texts not empty or"
                        + " cut off by the maximum length, the right chat template.",
                what, k, first, k, last));
    }

    private static void overfitting(RunRecord r, List<String> w) {
        List<EvalPoint> ev = r.eval().stream().filter(p -> Double.isFinite(p.loss())).sorted(Comparator.comparingLong(EvalPoint::step)).toList();
        if (ev.size() < 3) {
            return;
        }
        int best = 0;
        for (int i = 1; i < ev.size(); i++) {
            if (ev.get(i).loss() < ev.get(best).loss()) {
                best = i;
            }
        }
        EvalPoint b = ev.get(best);
        double margin = Math.max(0.01, 0.01 * Math.abs(b.loss()));
        int n = ev.size();
        if (n - 1 - best < 2 || ev.get(n - 1).loss() <= b.loss() + margin || ev.get(n - 2).loss() <= b.loss() + margin) {
            return;
        }
        // ... while the training loss keeps falling: a least-squares trend over the points after the best eval
        List<TrainPoint> t = r.train().stream().filter(p -> Double.isFinite(p.loss())).toList();
        List<TrainPoint> upToBest = t.stream().filter(p -> p.step() <= b.step()).toList();
        List<TrainPoint> afterBest = t.stream().filter(p -> p.step() > b.step()).toList();
        if (upToBest.isEmpty() || afterBest.size() < 2) {
            return;
        }
        double slope = slope(afterBest);
        double span = afterBest.get(afterBest.size() - 1).step() - b.step();
        double level = Math.abs(mean(afterBest));
        if (!(-slope * span > Math.max(0.01 * level, 0.005))) {
            return;
        }
        int k = Math.max(1, Math.min(10, Math.min(upToBest.size(), afterBest.size()) / 3));
        double trainAtBest = mean(upToBest.subList(upToBest.size() - k, upToBest.size()));
        double trainLast = mean(afterBest.subList(afterBest.size() - k, afterBest.size()));
        EvalPoint last = ev.get(n - 1);
        w.add(String.format(Locale.ROOT,
                "Overfitting: the validation loss rose from its best %.4f at step %,d to %.4f at step %,d while the training loss"
                        + " kept falling (%.4f to %.4f); the model is memorising the training set. ",
                b.loss(), b.step(), last.loss(), last.step(), trainAtBest, trainLast) + remedies(r, b.step()));
    }

    /**
     * The gap between validation and training loss (validation minus the mean training loss logged since the previous
     * evaluation) widens at each of the last evaluations and has grown by at least max(0.1, half of its smallest value)
     * while the training loss fell by at least 2% over those last evaluations. While the validation loss still falls
     * (its last evaluation is its best) that is a note, not overfitting: the model is still getting better at the task.
     * Only when the validation loss has risen from its best is it named overfitting, with the remedies. Not reported
     * together with the rising validation loss above.
     */
    private static void wideningGap(RunRecord r, List<String> w) {
        if (w.stream().anyMatch(s -> s.startsWith("Overfitting"))) return;
        List<EvalPoint> ev = r.eval().stream().filter(p -> Double.isFinite(p.loss())).sorted(Comparator.comparingLong(EvalPoint::step)).toList();
        List<TrainPoint> t = r.train().stream().filter(p -> Double.isFinite(p.loss())).toList();
        if (ev.size() < 4) return;
        double[] gap = new double[ev.size()], trainAt = new double[ev.size()];
        long prev = Long.MIN_VALUE;
        for (int i = 0; i < ev.size(); i++) {
            long from = prev, to = ev.get(i).step();
            List<TrainPoint> window = t.stream().filter(p -> p.step() > from && p.step() <= to).toList();
            if (window.isEmpty()) return;
            trainAt[i] = mean(window);
            gap[i] = ev.get(i).loss() - trainAt[i];
            prev = to;
        }
        int n = gap.length, min = 0;
        for (int i = 1; i < n; i++) if (gap[i] < gap[min]) min = i;
        boolean widening = gap[n - 1] > gap[n - 2] && gap[n - 2] > gap[n - 3];
        boolean grown = gap[n - 1] - gap[min] >= Math.max(0.1, 0.5 * Math.abs(gap[min]));
        // the training loss falls while the gap widens (a flat training loss under a rising validation loss is not this)
        boolean trainFell = trainAt[n - 1] < trainAt[n - 3] - 0.02 * Math.abs(trainAt[n - 3]);
        if (!(widening && grown && trainFell && min < n - 1)) return;
        String gapWidened = String.format(Locale.ROOT, "the gap between validation and training loss widened from %.4f at step %,d"
                        + " to %.4f at step %,d (validation %.4f, training %.4f)",
                gap[min], ev.get(min).step(), gap[n - 1], ev.get(n - 1).step(), ev.get(n - 1).loss(), trainAt[n - 1]);
        long best = bestStep(ev);
        if (best == ev.get(n - 1).step()) {   // the validation loss still improves: not overfitting (yet)
            w.add("Note: " + gapWidened + ", while the validation loss still fell to its best at the last evaluation: the model"
                    + " learns the training set faster than the task, but it still gets better at the task. If the validation loss"
                    + " starts rising in a longer run, training.early_stopping_patience: 2 stops it there.");
            return;
        }
        w.add("Overfitting starts: " + gapWidened + ", and the validation loss rose from its best at step "
                + String.format(Locale.ROOT, "%,d", best) + "; the model learns the training set faster than the task. " + remedies(r, best));
    }

    private static long bestStep(List<EvalPoint> ev) {
        EvalPoint b = ev.get(0);
        for (EvalPoint p : ev) if (p.loss() < b.loss()) b = p;
        return b.step();
    }

    /**
     * The remedies for overfitting, each with the experiment key to set and the value the run had (read from its
     * resolved YAML): stop early, more data, weight decay, NEFTune noise, label smoothing, LoRA (or its dropout), and
     * the model's own dropout under the names its family uses (from the report's "model" fact, e.g. "… (gpt2, …)").
     */
    static String remedies(RunRecord r, long bestStep) {
        JsonNode yaml = parse(r.experimentYaml());
        List<String> out = new ArrayList<>();
        String patience = value(yaml, "training", "early_stopping_patience");
        boolean endsOnBest = bestStep == r.stepsDone();   // the run's final model is the best already: nothing to go back to
        if (patience == null || patience.equals("null")) {
            out.add("stop early with training.early_stopping_patience: 2"
                    + (endsOnBest ? "" : String.format(Locale.ROOT, " (and use the checkpoint from step %,d)", bestStep)));
        } else if (!endsOnBest) {
            out.add(String.format(Locale.ROOT, "use the checkpoint from step %,d (training.load_best_model_at_end: true)", bestStep));
        }
        out.add("add more training data, or train for fewer epochs (training.num_train_epochs)");
        out.add("raise training.weight_decay to 0.01-0.1" + now(yaml, "training", "weight_decay"));
        out.add("add NEFTune noise, training.neftune_noise_alpha: 5" + now(yaml, "training", "neftune_noise_alpha").replace("now null", "now off"));
        out.add("smooth the labels, training.label_smoothing_factor: 0.1" + now(yaml, "training", "label_smoothing_factor"));
        String lora = value(yaml, "lora", "enabled");
        if ("true".equals(lora)) out.add("raise lora.dropout (PEFT's lora_dropout) to 0.05-0.1" + now(yaml, "lora", "dropout"));
        else out.add("train LoRA adapters instead of every weight (lora.enabled: true, with lora.dropout 0.05-0.1)");
        String type = modelType(r);
        if (type == null) {
            out.add("turn on the model's dropout: model.attention_dropout: 0.1 (Llama, Mistral, Qwen), or model.attn_pdrop,"
                    + " model.resid_pdrop, model.embd_pdrop (GPT-2)");
        } else if (type.equals("gpt2")) {
            out.add("raise GPT-2's dropout, model.resid_pdrop, model.attn_pdrop, model.embd_pdrop (config.json's, 0.1 by default)");
        } else {
            out.add("turn on the model's attention dropout, model.attention_dropout: 0.1" + now(yaml, "model", "attention_dropout")
                    .replace("now null", "now config.json's"));
        }
        return "Remedies: " + String.join("; ", out) + ".";
    }

    private static final java.util.regex.Pattern MODEL_TYPE = java.util.regex.Pattern.compile("\\((llama|mistral|qwen2|qwen3|gpt2),");

    /** The model_type the report's "model" fact names ("path (llama, 1,234 parameters)"), or null. */
    private static String modelType(RunRecord r) {
        String m = r.facts().get("model");
        if (m == null) return null;
        java.util.regex.Matcher x = MODEL_TYPE.matcher(m);
        return x.find() ? x.group(1) : null;
    }

    private static JsonNode parse(String yaml) {
        try {
            JsonNode n = new com.fasterxml.jackson.dataformat.yaml.YAMLMapper().readTree(yaml);
            return n != null && n.isObject() ? n : null;
        } catch (java.io.IOException | RuntimeException e) {
            return null;   // a report of a run whose YAML is not at hand: the remedies without the current values
        }
    }

    private static String value(JsonNode yaml, String section, String key) {
        if (yaml == null || !yaml.path(section).isObject() || !yaml.path(section).has(key)) return null;
        JsonNode v = yaml.path(section).get(key);
        return v.isNull() ? "null" : v.asText();
    }

    /** " (now X)" with the run's value of section.key, or "" when the YAML does not say. */
    private static String now(JsonNode yaml, String section, String key) {
        String v = value(yaml, section, key);
        return v == null ? "" : " (now " + v + ")";
    }

    private static void tooLittleData(RunRecord r, List<String> w) {
        if (r.trainExamples() > 0 && r.trainExamples() < FEW_EXAMPLES) {
            w.add(String.format(Locale.ROOT,
                    "Only %,d training examples: a model fine-tuned on so few mostly memorises them instead of learning the task."
                            + " Collect a few hundred or more, or treat this run as a smoke test.",
                    r.trainExamples()));
        }
        double epochs = epochs(r);
        if (epochs > MANY_EPOCHS) {
            w.add(String.format(Locale.ROOT,
                    "The run makes %.1f passes over the same %,d training examples; beyond about %.0f epochs the model memorises"
                            + " the data. Lower num_train_epochs or max_steps, add data, and watch the validation loss.",
                    epochs, r.trainExamples(), MANY_EPOCHS));
        }
    }

    /** Passes over the training data: as recorded, or from the steps asked when that is larger. */
    static double epochs(RunRecord r) {
        double e = Double.isFinite(r.epochs()) ? r.epochs() : 0;
        if (!r.train().isEmpty()) {
            double logged = r.train().get(r.train().size() - 1).epoch();
            if (Double.isFinite(logged)) {
                e = Math.max(e, logged);
            }
        }
        if (r.trainExamples() > 0 && r.effectiveBatchSize() > 0 && r.totalSteps() > 0) {
            e = Math.max(e, (double) r.totalSteps() * r.effectiveBatchSize() / r.trainExamples());
        }
        return e;
    }

    private static void validation(RunRecord r, List<String> w) {
        if (r.validationExamples() <= 0 && r.eval().isEmpty()) {
            w.add("No validation data, so overfitting cannot be detected: hold out a validation split (5 to 10% of the examples,"
                    + " at least a few dozen) and evaluate on it regularly.");
        } else if (r.eval().isEmpty()) {
            w.add(String.format(Locale.ROOT,
                    "There are %,d validation examples but no evaluation ran, so overfitting cannot be detected: set eval_steps"
                            + " below the number of training steps (%,d) or evaluate every epoch.",
                    r.validationExamples(), r.totalSteps()));
        } else if (r.validationExamples() > 0 && r.validationExamples() < FEW_VALIDATION_EXAMPLES) {
            w.add(String.format(Locale.ROOT,
                    "Only %,d validation examples: the validation loss is too noisy to compare checkpoints or to stop early on."
                            + " Hold out at least a few dozen examples.",
                    r.validationExamples()));
        }
    }

    /** Least-squares slope of loss over step. */
    private static double slope(List<TrainPoint> ps) {
        double mx = 0;
        double my = 0;
        for (TrainPoint p : ps) {
            mx += p.step();
            my += p.loss();
        }
        mx /= ps.size();
        my /= ps.size();
        double sxy = 0;
        double sxx = 0;
        for (TrainPoint p : ps) {
            sxy += (p.step() - mx) * (p.loss() - my);
            sxx += (p.step() - mx) * (p.step() - mx);
        }
        return sxx == 0 ? 0 : sxy / sxx;
    }

    private static double mean(List<TrainPoint> ps) {
        double s = 0;
        for (TrainPoint p : ps) {
            s += p.loss();
        }
        return s / ps.size();
    }
}
