package dev.jtune.cli;

import dev.jtune.config.Precision;
import dev.jtune.config.DataSection;
import dev.jtune.config.Experiment;
import dev.jtune.config.TrainingSection;
import dev.jtune.data.AnswerPrompt;
import dev.jtune.eval.AnswerEvaluator;
import dev.jtune.eval.AnswerMetric;
import dev.jtune.train.step.Autocast;
import dev.jtune.data.DatasetPreparer;
import dev.jtune.data.PreparedData;
import dev.jtune.kernels.Ops;
import dev.jtune.model.CausalLM;
import dev.jtune.peft.AdapterLoader;
import dev.jtune.tokenizer.HfTokenizer;
import dev.jtune.train.Evaluator;
import dev.jtune.train.Trainer;
import dev.jtune.util.Devices;
import dev.jtune.util.UserError;
import org.bytedeco.pytorch.Device;
import org.bytedeco.pytorch.global.torch.ScalarType;
import picocli.CommandLine.Command;
import picocli.CommandLine.Option;
import picocli.CommandLine.Parameters;

import java.io.PrintStream;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Locale;
import java.util.Map;

@Command(name = "eval", mixinStandardHelpOptions = true,
        description = "Evaluate a model on an experiment's validation and test splits (the same split as training): loss and perplexity, "
                + "and with --generate the scores of its generated answers.")
final class EvalCommand implements Runnable {
    @Parameters(index = "0", paramLabel = "EXPERIMENT", description = "The experiment YAML file.")
    Path experiment;

    @Option(names = "--checkpoint", paramLabel = "DIR",
            description = "Model directory to evaluate: a checkpoint-STEP or final/ (default: output_dir/final when it exists, else model.path).")
    Path checkpoint;

    @Option(names = "--set", paramLabel = "SECTION.KEY=VALUE", description = "Override a key (repeatable).")
    List<String> overrides = new ArrayList<>();

    @picocli.CommandLine.Mixin
    NoCacheOption cache = new NoCacheOption();

    @Option(names = "--json", description = "Print JSON.")
    boolean json;

    @Option(names = "--generate", description = "Also answer the held-out prompts (every test prompt and the validation subset of "
            + "training.eval_generation_samples, drawn with the seed as in training) and score the answers with training.generation_metrics. "
            + "Needs instruction or chat data.")
    boolean generate;

    @Option(names = "--base", description = "Evaluate the experiment's base model (model.path) instead of final/ or a checkpoint.")
    boolean base;

    @Override
    public void run() {
        cache.around(this::runCommand);
    }

    private void runCommand() {
        Experiment exp = Experiment.load(experiment, overrides);
        if (base && checkpoint != null) throw new UserError("--base and --checkpoint: give one of them (--base evaluates model.path)");
        if (generate && exp.data().format() == DataSection.Format.TEXT) {
            throw new UserError(exp.file() + ": --generate needs instruction or chat data, which split each row into a prompt and a "
                    + "reference answer; data.format is text (plain documents, no prompt/answer split)");
        }
        Path dir = base ? exp.model().path() : checkpoint;
        if (dir == null) {
            Path fin = exp.training().outputDir().resolve("final");
            dir = Files.isDirectory(fin) ? fin : exp.model().path();
        }
        if (!Files.isDirectory(dir)) throw new UserError("--checkpoint: " + dir + " is not a directory");
        Device device = Devices.parse(exp.training().device(), "training.device");
        Precision precision = exp.training().precision().resolve(device.is_cuda());
        PrintStream log = json ? System.err : System.out;
        Map<String, Object> out = new LinkedHashMap<>();
        out.put("model", dir.toString());
        // an adapter directory (LoRA fine-tune) is applied to the experiment's base model
        boolean adapter = AdapterLoader.isAdapterDir(dir);
        Path modelDir = adapter ? exp.model().path() : dir;
        try (HfTokenizer tok = HfTokenizer.load(exp.model().tokenizer());
             CausalLM model = AdapterLoader.load(modelDir, adapter ? dir : null, ScalarType.Float, device, Ops.of(exp.training().kernels()))) {
            tok.requireFitsModel(model.config().vocabSize(), model.config().where());
            PreparedData data = DatasetPreparer.prepareCached(exp.data(), exp.training().seed(), tok, log,
                    exp.training().dataloaderNumWorkers());
            long pad = tok.paddingId();
            int bs = exp.training().perDeviceEvalBatchSize(), len = exp.data().maxSeqLength();
            report(out, "eval", Evaluator.evaluate(model, data.validation(), bs, len, pad, precision), data.validation().size(), log);
            report(out, "test", Evaluator.evaluate(model, data.test(), bs, len, pad, precision), data.test().size(), log);
            if (generate) {
                TrainingSection t = exp.training();
                AnswerEvaluator.Settings settings = new AnswerEvaluator.Settings(t.generationMaxLength(), bs, tok.eosTokenIds(), pad,
                        AnswerEvaluator.metrics(t.generationMetrics()), ids -> tok.decode(ids, true));
                model.setTraining(false);
                answers(out, "eval", AnswerEvaluator.subset(data.validationPrompts(), t.evalGenerationSamples(), t.seed()), model,
                        settings, precision, device, log);
                answers(out, "test", data.testPrompts(), model, settings, precision, device, log);
            }
        }
        if (json) JsonOut.print(out);
    }

    /** Answers {@code prompts}, puts {@code <split>_<metric>} and the generation time into {@code out}, prints a line. */
    private void answers(Map<String, Object> out, String split, List<AnswerPrompt> prompts, CausalLM model,
                         AnswerEvaluator.Settings settings, Precision precision, Device device, PrintStream log) {
        if (prompts.isEmpty()) {
            if (!json) log.printf("%s: no prompts to answer%n", split);
            return;
        }
        AnswerEvaluator.Result r;
        try (Autocast ac = Autocast.enter(precision, device)) {
            r = AnswerEvaluator.run(model, prompts, settings);
        }
        StringBuilder line = new StringBuilder(String.format(Locale.ROOT, "%s answers (%d prompts):", split, prompts.size()));
        for (Map.Entry<AnswerMetric, Double> e : r.scores().entrySet()) {
            out.put(split + "_" + e.getKey().key(), e.getValue());
            line.append(String.format(Locale.ROOT, " %s %.2f", e.getKey().key(), e.getValue()));
        }
        out.put(split + "_generation_prompts", prompts.size());
        out.put(split + "_generation_seconds", r.seconds());
        out.put(split + "_generation_tokens_per_second", r.tokensPerSecond());
        List<Map<String, String>> samples = new ArrayList<>();
        for (AnswerEvaluator.Answer a : r.answers()) {
            Map<String, String> m = new LinkedHashMap<>();
            m.put("prompt", a.question());
            m.put("reference", a.reference());
            m.put("answer", a.answer());
            samples.add(m);
        }
        out.put(split + "_answers", samples);
        line.append(String.format(Locale.ROOT, "; %,d tokens in %.1f s (%,.0f tok/s)", r.newTokens(), r.seconds(), r.tokensPerSecond()));
        if (!json) log.println(line);
    }

    private void report(Map<String, Object> out, String split, Evaluator.Result r, int examples, PrintStream log) {
        if (examples == 0) {
            if (!json) log.printf("%s: no examples%n", split);
            return;
        }
        out.put(split + "_loss", r.loss());
        out.put(split + "_perplexity", r.perplexity());
        out.put(split + "_tokens", r.tokens());
        if (!json) log.printf(Locale.ROOT, "%s: loss %.4f, perplexity %.2f (%d examples, %,d tokens)%n", split, r.loss(), r.perplexity(), examples, r.tokens());
    }
}
