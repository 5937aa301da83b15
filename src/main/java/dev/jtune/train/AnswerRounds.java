package dev.jtune.train;

import dev.jtune.train.step.Autocast;
import dev.jtune.config.Precision;
import dev.jtune.config.TrainingSection;
import dev.jtune.data.AnswerPrompt;
import dev.jtune.data.PreparedData;
import dev.jtune.eval.AnswerEvaluator;
import dev.jtune.eval.AnswerMetric;
import dev.jtune.metrics.AnswerReport;
import dev.jtune.model.CausalLM;
import dev.jtune.tokenizer.HfTokenizer;

import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Locale;
import java.util.Map;

/**
 * {@code predict_with_generate}: the run's rounds of generated answers, scored against the references. Before the
 * first step the base model answers the test prompts and the validation subset ({@code base_test_*},
 * {@code base_eval_*}); at each evaluation the model answers the validation subset ({@code eval_*}); at the end the
 * final model answers the test prompts ({@code test_*}). Each round goes to metrics.jsonl, TensorBoard (scalars and
 * a text table of sample answers) and the console; {@link #report} gathers them for the HTML report.
 */
class AnswerRounds {
    /** predict_with_generate off: every round does nothing. */
    static final AnswerRounds NONE = new AnswerRounds();

    /** Sample prompts shown in the report and in TensorBoard. */
    static final int SAMPLES = 8;

    private final CausalLM model;
    private final Precision precision;
    private final java.io.PrintStream out;   // for the rounds outside the training loop's progress line
    private final AnswerEvaluator.Settings settings;
    private final List<AnswerPrompt> validation;   // the fixed subset
    private final List<AnswerPrompt> test;
    private AnswerEvaluator.Result baseTest, baseEval, lastEval, finalTest;

    private AnswerRounds() {
        this.model = null;
        this.precision = null;
        this.out = null;
        this.settings = null;
        this.validation = List.of();
        this.test = List.of();
    }

    AnswerRounds(CausalLM model, Precision precision, HfTokenizer tok, TrainingSection t, PreparedData data, java.io.PrintStream out) {
        this.model = model;
        this.precision = precision;
        this.out = out;
        this.settings = new AnswerEvaluator.Settings(t.generationMaxLength(), t.perDeviceEvalBatchSize(), tok.eosTokenIds(),
                tok.paddingId(), AnswerEvaluator.metrics(t.generationMetrics()), ids -> tok.decode(ids, true));
        this.validation = AnswerEvaluator.subset(data.validationPrompts(), t.evalGenerationSamples(), t.seed());
        this.test = data.testPrompts();
    }

    static AnswerRounds of(CausalLM model, Precision precision, HfTokenizer tok, TrainingSection t, PreparedData data,
                           java.io.PrintStream out) {
        return t.predictWithGenerate() ? new AnswerRounds(model, precision, tok, t, data, out) : NONE;
    }

    boolean enabled() {
        return this != NONE;
    }

    /** Before training: the base model on the test prompts and the validation subset. */
    void base(MetricSinks sinks) {
        if (!enabled()) return;
        baseTest = round("base_test", "test", test, 0, sinks, false);
        baseEval = round("base_eval", "validation", validation, 0, sinks, false);
    }

    /** At an evaluation: the validation subset. */
    void eval(long step, MetricSinks sinks) {
        if (!enabled()) return;
        lastEval = round("eval", "validation", validation, step, sinks, true);
    }

    /** At the end, with the final weights in place: the test prompts. */
    void test(long step, MetricSinks sinks) {
        if (!enabled()) return;
        finalTest = round("test", "test", test, step, sinks, false);
    }

    /** @param inLoop print above the progress line (during training) rather than to the console directly */
    private AnswerEvaluator.Result round(String prefix, String split, List<AnswerPrompt> prompts, long step, MetricSinks sinks,
                                        boolean inLoop) {
        if (prompts.isEmpty()) return null;
        model.setTraining(false);
        AnswerEvaluator.Result r;
        try (Autocast ac = Autocast.enter(precision, model.device())) {
            r = AnswerEvaluator.run(model, prompts, settings);
        }
        sinks.answers(prefix, step, r, SAMPLES);
        StringBuilder line = new StringBuilder(String.format(Locale.ROOT, "%s answers @ step %d (%d %s prompts):", prefix, step,
                prompts.size(), split));
        for (Map.Entry<AnswerMetric, Double> e : r.scores().entrySet()) {
            line.append(String.format(Locale.ROOT, " %s %.1f", e.getKey().key(), e.getValue()));
        }
        line.append(String.format(Locale.ROOT, "; %,d tokens in %.1f s (%,.0f tok/s)", r.newTokens(), r.seconds(), r.tokensPerSecond()));
        if (inLoop) sinks.message(line.toString());
        else out.println(line);
        return r;
    }

    /** For the HTML report and the console; null when generation was off. */
    AnswerReport report() {
        if (!enabled()) return null;
        Map<String, String> labels = new LinkedHashMap<>();
        for (AnswerMetric m : settings.metrics()) labels.put(m.key(), m.label());
        List<AnswerReport.Sample> samples = new ArrayList<>();
        // test prompts when there are any (base and final answers), else the validation subset (base and last eval)
        AnswerEvaluator.Result before = baseTest != null || finalTest != null ? baseTest : baseEval;
        AnswerEvaluator.Result after = baseTest != null || finalTest != null ? finalTest : lastEval;
        List<AnswerPrompt> prompts = baseTest != null || finalTest != null ? test : validation;
        for (int i = 0; i < Math.min(SAMPLES, prompts.size()); i++) {
            AnswerPrompt p = prompts.get(i);
            samples.add(new AnswerReport.Sample(p.question(), p.reference(),
                    before == null ? null : before.answers().get(i).answer(), after == null ? null : after.answers().get(i).answer()));
        }
        List<String> notes = new ArrayList<>();
        notes.add(String.format(Locale.ROOT, "greedy decoding, at most %d new tokens; %d test prompts, a validation subset of %d",
                settings.maxNewTokens(), test.size(), validation.size()));
        for (Object[] round : new Object[][] {{"base model, test", baseTest}, {"base model, validation", baseEval},
                {"last evaluation, validation", lastEval}, {"final model, test", finalTest}}) {
            AnswerEvaluator.Result r = (AnswerEvaluator.Result) round[1];
            if (r != null) {
                notes.add(String.format(Locale.ROOT, "generation (%s): %,d tokens in %.1f s, %,.0f tokens/s", round[0], r.newTokens(),
                        r.seconds(), r.tokensPerSecond()));
            }
        }
        if (baseTest == null && baseEval == null) notes.add("no base-model scores: this run was resumed, and only the first start answers with the base model");
        return new AnswerReport(labels, keyed(baseTest), keyed(finalTest), keyed(baseEval), keyed(lastEval), samples, notes);
    }

    private static Map<String, Double> keyed(AnswerEvaluator.Result r) {
        Map<String, Double> out = new LinkedHashMap<>();
        if (r != null) r.scores().forEach((m, v) -> out.put(m.key(), v));
        return out;
    }
}
