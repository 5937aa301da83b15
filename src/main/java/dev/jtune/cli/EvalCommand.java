package dev.jtune.cli;

import dev.jtune.config.Precision;
import dev.jtune.config.Experiment;
import dev.jtune.data.DatasetPreparer;
import dev.jtune.data.PreparedData;
import dev.jtune.kernels.Ops;
import dev.jtune.model.CausalLM;
import dev.jtune.peft.Adapters;
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
        description = "Evaluate a model on an experiment's validation and test splits (the same split as training).")
final class EvalCommand implements Runnable {
    @Parameters(index = "0", paramLabel = "EXPERIMENT", description = "The experiment YAML file.")
    Path experiment;

    @Option(names = "--checkpoint", paramLabel = "DIR",
            description = "Model directory to evaluate: a checkpoint-STEP or final/ (default: output_dir/final when it exists, else model.path).")
    Path checkpoint;

    @Option(names = "--set", paramLabel = "SECTION.KEY=VALUE", description = "Override a key (repeatable).")
    List<String> overrides = new ArrayList<>();

    @Option(names = "--json", description = "Print JSON.")
    boolean json;

    @Override
    public void run() {
        Experiment exp = Experiment.load(experiment, overrides);
        Path dir = checkpoint;
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
        boolean adapter = Adapters.isAdapterDir(dir);
        Path modelDir = adapter ? exp.model().path() : dir;
        try (HfTokenizer tok = HfTokenizer.load(exp.model().tokenizer());
             CausalLM model = Adapters.load(modelDir, adapter ? dir : null, ScalarType.Float, device, Ops.of(exp.training().kernels()))) {
            PreparedData data = DatasetPreparer.prepare(exp.data(), exp.training().seed(), tok, log,
                    exp.training().dataloaderNumWorkers());
            long pad = tok.paddingId();
            int bs = exp.training().perDeviceEvalBatchSize(), len = exp.data().maxSeqLength();
            report(out, "eval", Evaluator.evaluate(model, data.validation(), bs, len, pad, precision), data.validation().size(), log);
            report(out, "test", Evaluator.evaluate(model, data.test(), bs, len, pad, precision), data.test().size(), log);
        }
        if (json) JsonOut.print(out);
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
