package dev.jtune.cli;

import dev.jtune.config.Experiment;
import dev.jtune.data.DatasetPreparer;
import dev.jtune.data.Example;
import dev.jtune.data.PreparedData;
import dev.jtune.data.TrainedText;
import dev.jtune.tokenizer.HfTokenizer;
import picocli.CommandLine.Command;
import picocli.CommandLine.Option;
import picocli.CommandLine.Parameters;

import java.io.PrintStream;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

@Command(name = "data", mixinStandardHelpOptions = true,
        description = "Prepare an experiment's data as training would (read, clean, split, mix, tokenize, mask), print the "
                + "summary, and with --show N the first N prepared examples: token ids, labels (-100 where the loss is "
                + "masked) and the text with the trained spans marked.")
final class DataCommand implements Runnable {
    @Parameters(index = "0", paramLabel = "EXPERIMENT", description = "The experiment YAML file.")
    java.nio.file.Path experiment;

    @Option(names = "--show", paramLabel = "N", description = "Print the first N examples of the split (default ${DEFAULT-VALUE}).")
    int show = 0;

    @Option(names = "--split", paramLabel = "SPLIT", description = "train, validation or test (default ${DEFAULT-VALUE}).")
    String split = "train";

    @Option(names = "--set", paramLabel = "SECTION.KEY=VALUE", description = "Override a key (repeatable).")
    List<String> overrides = new ArrayList<>();

    @picocli.CommandLine.Mixin
    NoCacheOption cache = new NoCacheOption();

    @Option(names = "--json", description = "Print JSON: the summary lines and the examples (ids, labels, text, runs).")
    boolean json;

    /** ANSI colours on a terminal (green: trained, as axolotl); plain [[ ]] marks otherwise. */
    private static final String GREEN = "\u001b[32m", RESET = "\u001b[0m";

    @Override
    public void run() {
        cache.around(this::show);
    }

    private void show() {
        Experiment exp = Experiment.load(experiment, overrides);
        if (show < 0) throw new dev.jtune.util.UserError("--show: expected a number of examples >= 0, got " + show);
        PrintStream log = json ? System.err : System.out;
        try (HfTokenizer tok = HfTokenizer.load(exp.model().tokenizer())) {
            PreparedData data = DatasetPreparer.prepareCached(exp.data(), exp.training().seed(), tok, log,
                    exp.training().dataloaderNumWorkers());
            List<Example> examples = switch (split) {
                case "train" -> data.train();
                case "validation" -> data.validation();
                case "test" -> data.test();
                default -> throw new dev.jtune.util.UserError("--split: expected train, validation or test, got '" + split + "'");
            };
            int n = Math.min(show, examples.size());
            if (json) {
                Map<String, Object> out = new LinkedHashMap<>();
                out.put("summary", data.report().lines());
                List<Map<String, Object>> shown = new ArrayList<>();
                for (int i = 0; i < n; i++) {
                    Example e = examples.get(i);
                    List<TrainedText.Run> runs = TrainedText.runs(e, tok);
                    Map<String, Object> m = new LinkedHashMap<>();
                    m.put("index", i);
                    m.put("ids", e.inputIds());
                    m.put("labels", e.labels());
                    m.put("text", TrainedText.marked(runs, "", ""));
                    m.put("trained", runs.stream().filter(TrainedText.Run::trained).map(TrainedText.Run::text).toList());
                    shown.add(m);
                }
                out.put("examples", shown);
                JsonOut.print(out);
                return;
            }
            boolean colour = System.console() != null && System.getenv("NO_COLOR") == null;
            for (int i = 0; i < n; i++) {
                Example e = examples.get(i);
                List<TrainedText.Run> runs = TrainedText.runs(e, tok);
                System.out.printf("%n--- %s example %d of %d: %d tokens, %d trained%n", split, i + 1, examples.size(),
                        e.length(), e.targetTokens());
                System.out.println("ids:    " + Arrays.toString(e.inputIds()));
                System.out.println("labels: " + Arrays.toString(e.labels()));
                System.out.println("text (trained spans " + (colour ? "in green" : "between [[ and ]]") + "):");
                System.out.println(colour ? TrainedText.marked(runs, GREEN, RESET) : TrainedText.marked(runs, "[[", "]]"));
            }
        }
    }
}
