package dev.jtune.cli;

import dev.jtune.config.Experiment;
import dev.jtune.sweep.LrFind;
import dev.jtune.util.UserError;
import picocli.CommandLine.Command;
import picocli.CommandLine.Option;
import picocli.CommandLine.Parameters;

import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;

@Command(name = "lr-find", mixinStandardHelpOptions = true,
        description = {"Learning-rate range test (Smith): a short run whose learning rate grows exponentially, on an in-memory copy "
                + "of the starting weights (the model directory is not touched); stops when the loss diverges.",
                "Writes lr-find.png, lr-find.svg, lr-find.html and lr-find.csv, and prints the suggested rate as a --set line."})
final class LrFindCommand implements Runnable {
    @Parameters(index = "0", paramLabel = "EXPERIMENT", description = "The experiment YAML file.")
    Path experiment;

    @Option(names = "--set", paramLabel = "SECTION.KEY=VALUE", description = "Override a key, as jtune train --set (repeatable).")
    List<String> sets = new ArrayList<>();

    @Option(names = "--start", paramLabel = "LR", description = "The first learning rate (default ${DEFAULT-VALUE}).", defaultValue = "1e-7")
    double start;

    @Option(names = "--end", paramLabel = "LR", description = "The last learning rate (default ${DEFAULT-VALUE}).", defaultValue = "1")
    double end;

    @Option(names = "--steps", paramLabel = "N", description = "Optimizer steps from --start to --end (default ${DEFAULT-VALUE}).", defaultValue = "100")
    int steps;

    @picocli.CommandLine.Mixin
    NoCacheOption cache = new NoCacheOption();

    @Option(names = "--out", paramLabel = "DIR", description = "Where the plots go (default: training.output_dir/lr-find).")
    Path out;

    @Override
    public void run() {
        cache.around(this::runCommand);
    }

    private void runCommand() {
        if (!(start > 0) || !Double.isFinite(start)) throw new UserError("--start must be a positive number, got " + start);
        if (!(end > start) || !Double.isFinite(end)) throw new UserError("--end must be larger than --start (" + start + "), got " + end);
        if (steps < 10) throw new UserError("--steps must be at least 10, got " + steps);
        Experiment exp = Experiment.load(experiment, sets);
        Path dir = out != null ? out : exp.training().outputDir().resolve("lr-find");
        LrFind.run(exp, start, end, steps, dir.toAbsolutePath().normalize(), System.out);
    }
}
