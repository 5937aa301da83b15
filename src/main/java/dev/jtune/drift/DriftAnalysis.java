package dev.jtune.drift;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import dev.jtune.config.DataSection;
import dev.jtune.config.Experiment;
import dev.jtune.config.Precision;
import dev.jtune.data.AnswerPrompt;
import dev.jtune.data.DatasetPreparer;
import dev.jtune.data.Example;
import dev.jtune.data.PreparedData;
import dev.jtune.eval.AnswerEvaluator;
import dev.jtune.eval.AnswerMetric;
import dev.jtune.config.TrainingSection;
import dev.jtune.train.step.Autocast;
import dev.jtune.infer.Perplexity;
import dev.jtune.kernels.Ops;
import dev.jtune.model.CausalLM;
import dev.jtune.peft.AdapterLoader;
import dev.jtune.tokenizer.HfTokenizer;
import dev.jtune.train.Evaluator;
import dev.jtune.util.Devices;
import dev.jtune.util.UserError;
import org.bytedeco.pytorch.Device;
import org.bytedeco.pytorch.global.torch.ScalarType;

import java.io.IOException;
import java.io.PrintStream;
import java.nio.charset.MalformedInputException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Set;

/**
 * How a trained model and its data have moved since training, from the run directory of {@code jtune train}
 * (config.resolved.yaml, metrics.jsonl, final/) and new data: labelled rows in the experiment's format
 * ({@code --data}) and/or the prompts of {@code jtune serve}'s request log ({@code --requests}, unlabelled).
 *
 * <p>Every input signal is measured twice with the same code: on the new prompts against the training prompts (the
 * value) and on the run's own test split against the training prompts (the baseline: what "no drift" looks like at
 * that sample size). Loss and perplexity of labelled rows are compared with the run's logged test scores.
 */
public final class DriftAnalysis {
    /** Prompts scored for perplexity per side at most (the first ones, in file order): bounds the time on big files. */
    static final int MAX_PERPLEXITY_PROMPTS = 200;
    private static final ObjectMapper JSON = new ObjectMapper();

    /** The defaults, each a function of its baseline; {@code --threshold NAME=VALUE} replaces one with a number. */
    public static final Map<String, String> DEFAULT_THRESHOLDS = defaults();

    private static Map<String, String> defaults() {
        Map<String, String> m = new LinkedHashMap<>();
        m.put("loss", "baseline + ln 1.5 (perplexity x1.5)");
        m.put("perplexity", "1.5 x baseline");
        m.put("prompt_length_ks", "max(0.3, 2 x baseline)");
        m.put("token_js_divergence", "max(0.1, 2 x baseline)");
        m.put("unseen_token_share", "max(0.02, 2 x baseline)");
        m.put("prompt_perplexity", "2 x baseline");
        for (AnswerMetric a : AnswerMetric.values()) m.put("answer_" + a.key(), "baseline - max(20% of it, 2 points of 100)");
        return m;
    }

    /** What was compared and the signals. */
    public record Result(Path runDir, Path data, Path requests, String baselineSplit, int labelledRows, int requestPrompts,
                         int trainPrompts, List<DriftSignal> signals) {
        public boolean drifted() {
            return signals.stream().anyMatch(DriftSignal::crossed);
        }
    }

    private DriftAnalysis() {}

    public static Result run(Path runDir, Path data, Path requests, Map<String, Double> thresholds, PrintStream log) {
        for (String k : thresholds.keySet()) {
            if (!DEFAULT_THRESHOLDS.containsKey(k)) {
                throw new UserError("--threshold " + k + ": unknown signal; expected one of " + String.join(", ", DEFAULT_THRESHOLDS.keySet()));
            }
        }
        Path yaml = runDir.resolve("config.resolved.yaml");
        if (!Files.isRegularFile(yaml)) throw new UserError(runDir + ": no config.resolved.yaml; expected the output directory of a `jtune train` run");
        Path fin = runDir.resolve("final");
        if (!Files.isDirectory(fin)) throw new UserError(runDir + ": no final/ model; the run has not finished");
        if (data == null && requests == null) throw new UserError("give new data with --data FILE and/or --requests LOG.jsonl");
        if (data != null && !Files.isRegularFile(data)) throw new UserError("--data " + data + ": no such file");
        List<String> requestPrompts = requests == null ? List.of() : readRequestPrompts(requests);

        Experiment exp = Experiment.load(yaml, List.of());
        DataSection d = exp.data();
        boolean text = d.format() == DataSection.Format.TEXT;
        Device device = Devices.parse(exp.training().device(), "training.device");
        Precision precision = exp.training().precision().resolve(device.is_cuda());
        int workers = exp.training().dataloaderNumWorkers();
        long seed = exp.training().seed();
        try (HfTokenizer tok = HfTokenizer.load(exp.model().tokenizer())) {
            PreparedData original = DatasetPreparer.prepare(d, seed, tok, null, workers);
            boolean fromTest = !original.test().isEmpty();
            List<Example> baselineExamples = fromTest ? original.test() : original.validation();
            if (baselineExamples.isEmpty()) throw new UserError(yaml + ": the run has neither a test nor a validation split to compare with");
            List<long[]> baselinePrompts = prompts(text, baselineExamples, fromTest ? original.testPrompts() : original.validationPrompts());
            // the training rows' prompts: the train file prepared as if it were a test file (same cleaning and template),
            // keeping the rows of the train split (those whose prompt begins one of its examples)
            List<long[]> trainPrompts = text ? inputs(original.train())
                    : inTrainSplit(promptIds(DatasetPreparer.prepare(with(yaml, d.trainFile()), seed, tok, null, workers).testPrompts()), original.train());
            Set<Long> seen = new java.util.HashSet<>();
            for (Example e : original.train()) for (long id : e.inputIds()) seen.add(id);

            List<Example> newExamples = List.of();
            List<AnswerPrompt> newAnswerPrompts = List.of();
            List<long[]> newPrompts = new ArrayList<>();
            if (data != null) {
                PreparedData fresh = DatasetPreparer.prepare(with(yaml, data), seed, tok, log, workers);
                newExamples = fresh.test();
                if (newExamples.isEmpty()) {
                    throw new UserError("--data " + data + ": no usable rows in the experiment's format (data.format " + d.format().name().toLowerCase()
                            + "); see the data summary above");
                }
                newAnswerPrompts = fresh.testPrompts();
                newPrompts.addAll(prompts(text, newExamples, newAnswerPrompts));
            }
            for (String p : requestPrompts) newPrompts.add(tok.encode(p, false).ids());
            newPrompts.removeIf(p -> p.length == 0);
            if (newPrompts.isEmpty()) throw new UserError("the new data has no prompt with a token in it");

            List<DriftSignal> signals = new ArrayList<>();
            Map<Long, Long> trainCounts = Distributions.counts(trainPrompts);
            int[] trainLengths = lengths(trainPrompts), baseLengths = lengths(baselinePrompts), newLengths = lengths(newPrompts);
            double ksBase = Distributions.kolmogorovSmirnov(baseLengths, trainLengths);
            signals.add(new DriftSignal("prompt_length_ks", String.format(java.util.Locale.ROOT,
                    "Kolmogorov-Smirnov distance of prompt lengths from the training prompts' (mean %.1f tokens new, %.1f training)",
                    Distributions.mean(newLengths), Distributions.mean(trainLengths)),
                    Distributions.kolmogorovSmirnov(newLengths, trainLengths), ksBase,
                    thresholds.getOrDefault("prompt_length_ks", Math.max(0.3, 2 * ksBase)), true));
            double jsBase = Distributions.jensenShannon(Distributions.counts(baselinePrompts), trainCounts);
            signals.add(new DriftSignal("token_js_divergence", "Jensen-Shannon divergence (bits) of the prompts' token distribution from the training prompts'",
                    Distributions.jensenShannon(Distributions.counts(newPrompts), trainCounts), jsBase,
                    thresholds.getOrDefault("token_js_divergence", Math.max(0.1, 2 * jsBase)), true));
            double unseenBase = Distributions.unseenShare(Distributions.counts(baselinePrompts), seen);
            signals.add(new DriftSignal("unseen_token_share", "share of prompt tokens never seen in the training rows",
                    Distributions.unseenShare(Distributions.counts(newPrompts), seen), unseenBase,
                    thresholds.getOrDefault("unseen_token_share", Math.max(0.02, 2 * unseenBase)), true));

            Path adapterDir = AdapterLoader.isAdapterDir(fin) ? fin : null;
            try (CausalLM model = AdapterLoader.load(adapterDir != null ? exp.model().path() : fin, adapterDir, ScalarType.Float, device,
                    Ops.of(exp.training().kernels()))) {
                model.setTraining(false);
                if (log != null) log.println("drift: scoring the prompts with " + fin);
                double pplBase = promptPerplexity(model, baselinePrompts);
                signals.add(new DriftSignal("prompt_perplexity", "the model's perplexity on the prompts themselves (how surprising the inputs are)",
                        promptPerplexity(model, newPrompts), pplBase, thresholds.getOrDefault("prompt_perplexity", 2 * pplBase), true));
                if (!newExamples.isEmpty()) {
                    int bs = exp.training().perDeviceEvalBatchSize(), len = d.maxSeqLength();
                    long pad = tok.paddingId();
                    Evaluator.Result now = Evaluator.evaluate(model, newExamples, bs, len, pad, precision);
                    double testLoss = loggedTestLoss(runDir, fromTest);
                    if (Double.isNaN(testLoss)) testLoss = Evaluator.evaluate(model, baselineExamples, bs, len, pad, precision).loss();
                    signals.add(new DriftSignal("loss", "mean loss on the new rows' target tokens, against the run's " + (fromTest ? "test" : "validation") + " loss",
                            now.loss(), testLoss, thresholds.getOrDefault("loss", testLoss + Math.log(1.5)), true));
                    signals.add(new DriftSignal("perplexity", "perplexity on the new rows' target tokens, against the run's " + (fromTest ? "test" : "validation") + " perplexity",
                            now.perplexity(), Math.exp(testLoss), thresholds.getOrDefault("perplexity", 1.5 * Math.exp(testLoss)), true));
                    signals.addAll(answerScores(exp, runDir, fromTest, model, newAnswerPrompts, tok, precision, device, thresholds, log));
                }
            }
            return new Result(runDir, data, requests, fromTest ? "test" : "validation", newExamples.size(), requestPrompts.size(),
                    trainPrompts.size(), signals);
        }
    }

    /**
     * With {@code predict_with_generate}: the new rows' questions answered as training answered its test prompts, and
     * each score against the run's logged {@code test_<metric>} (or {@code eval_<metric>}); lower is worse.
     */
    private static List<DriftSignal> answerScores(Experiment exp, Path runDir, boolean fromTest, CausalLM model, List<AnswerPrompt> prompts,
                                                  HfTokenizer tok, Precision precision, Device device, Map<String, Double> thresholds, PrintStream log) {
        TrainingSection t = exp.training();
        List<DriftSignal> out = new ArrayList<>();
        if (!t.predictWithGenerate() || prompts.isEmpty()) return out;
        String split = fromTest ? "test" : "eval";
        Map<String, Double> logged = new LinkedHashMap<>();
        for (AnswerMetric m : AnswerEvaluator.metrics(t.generationMetrics())) {
            double v = lastLogged(runDir, split + "_" + m.key());
            if (!Double.isNaN(v)) logged.put(m.key(), v);
        }
        if (logged.isEmpty()) return out;
        if (log != null) log.println("drift: answering " + prompts.size() + " new questions (predict_with_generate's settings)");
        AnswerEvaluator.Settings settings = new AnswerEvaluator.Settings(t.generationMaxLength(), t.perDeviceEvalBatchSize(), tok.eosTokenIds(),
                tok.paddingId(), AnswerEvaluator.metrics(t.generationMetrics()), ids -> tok.decode(ids, true));
        AnswerEvaluator.Result r;
        try (Autocast ac = Autocast.enter(precision, device)) {
            r = AnswerEvaluator.run(model, prompts, settings);
        }
        for (Map.Entry<AnswerMetric, Double> e : r.scores().entrySet()) {
            Double base = logged.get(e.getKey().key());
            if (base == null) continue;
            String name = "answer_" + e.getKey().key();
            out.add(new DriftSignal(name, e.getKey().label() + " of the model's answers to the new questions, against the run's " + split + " score",
                    e.getValue(), base, thresholds.getOrDefault(name, base - Math.max(0.2 * base, 2.0)), false));
        }
        return out;
    }

    /** The experiment with {@code file} as its test file (no test split): its test examples and prompts are that file's rows. */
    private static DataSection with(Path yaml, Path file) {
        return Experiment.load(yaml, List.of("data.test_file=" + file.toAbsolutePath(), "data.test_split=0.0")).data();
    }

    /** Prompt ids: the prompts of instruction/chat rows, the whole row for plain text. */
    private static List<long[]> prompts(boolean text, List<Example> examples, List<AnswerPrompt> prompts) {
        return text ? inputs(examples) : promptIds(prompts);
    }

    private static List<long[]> inputs(List<Example> examples) {
        return examples.stream().map(Example::inputIds).toList();
    }

    private static List<long[]> promptIds(List<AnswerPrompt> prompts) {
        return prompts.stream().map(AnswerPrompt::promptIds).toList();
    }

    /** The prompts that are a prefix of some training example's input ids. */
    private static List<long[]> inTrainSplit(List<long[]> prompts, List<Example> train) {
        Set<Integer> lengths = new java.util.HashSet<>();
        for (long[] p : prompts) lengths.add(p.length);
        Set<java.util.List<Long>> prefixes = new java.util.HashSet<>();
        for (Example e : train) {
            for (int len : lengths) {
                if (len <= e.inputIds().length) prefixes.add(java.util.Arrays.stream(e.inputIds(), 0, len).boxed().toList());
            }
        }
        return prompts.stream().filter(p -> prefixes.contains(java.util.Arrays.stream(p).boxed().toList())).toList();
    }

    private static int[] lengths(List<long[]> seqs) {
        return seqs.stream().mapToInt(s -> s.length).toArray();
    }

    /** Token-weighted perplexity over the first {@link #MAX_PERPLEXITY_PROMPTS} prompts of 2 tokens or more. */
    static double promptPerplexity(CausalLM model, List<long[]> prompts) {
        double sum = 0;
        long scored = 0;
        int used = 0;
        int window = model.config().maxPositions();
        for (long[] p : prompts) {
            if (p.length < 2) continue;
            if (used++ >= MAX_PERPLEXITY_PROMPTS) break;
            Perplexity.Result r = Perplexity.of(model, p, Math.min(window, p.length), Math.min(window, p.length), null);
            sum += r.sumNll();
            scored += r.scored();
        }
        return scored == 0 ? Double.NaN : Math.exp(sum / scored);
    }

    /** The run's final test_loss from metrics.jsonl (eval_loss when it had no test split), or NaN. */
    private static double loggedTestLoss(Path runDir, boolean test) {
        return lastLogged(runDir, test ? "test_loss" : "eval_loss");
    }

    /** The last value of {@code key} in the run's metrics.jsonl, or NaN. */
    private static double lastLogged(Path runDir, String key) {
        Path m = runDir.resolve("metrics.jsonl");
        if (!Files.isRegularFile(m)) return Double.NaN;
        double v = Double.NaN;
        try {
            for (String line : Files.readAllLines(m)) {
                JsonNode n = JSON.readTree(line);
                if (n != null && n.has(key)) v = n.get(key).asDouble();
            }
        } catch (IOException e) {
            return Double.NaN;   // an unreadable log: the baseline is recomputed from the split instead
        }
        return v;
    }

    /** The "prompt" of each line of serve's request log (written with --log-texts). */
    static List<String> readRequestPrompts(Path log) {
        if (!Files.isRegularFile(log)) throw new UserError("--requests " + log + ": no such file");
        List<String> lines;
        try {
            lines = Files.readAllLines(log);
        } catch (MalformedInputException e) {
            throw new UserError("--requests " + log + ": not UTF-8 text");
        } catch (IOException e) {
            throw new UserError("--requests " + log + ": cannot read: " + e.getMessage());
        }
        List<String> prompts = new ArrayList<>();
        for (int i = 0; i < lines.size(); i++) {
            if (lines.get(i).isBlank()) continue;
            JsonNode n;
            try {
                n = JSON.readTree(lines.get(i));
            } catch (IOException e) {
                throw new UserError("--requests " + log + ":" + (i + 1) + ": not a JSON object (expected one line per request, as jtune serve --request-log writes)");
            }
            if (n == null || !n.isObject()) throw new UserError("--requests " + log + ":" + (i + 1) + ": expected a JSON object");
            if (n.path("prompt").isTextual()) prompts.add(n.get("prompt").asText());
        }
        if (prompts.isEmpty()) {
            throw new UserError("--requests " + log + ": no line has a \"prompt\"; start jtune serve with --request-log FILE --log-texts to record them");
        }
        return prompts;
    }
}
