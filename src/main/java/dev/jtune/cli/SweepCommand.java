package dev.jtune.cli;

import dev.jtune.config.Experiment;
import dev.jtune.config.SweepSection;
import dev.jtune.sweep.SweepRunner;
import dev.jtune.sweep.SweepSpec;
import dev.jtune.util.UserError;
import picocli.CommandLine.Command;
import picocli.CommandLine.Option;
import picocli.CommandLine.Parameters;

import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;

@Command(name = "sweep", mixinStandardHelpOptions = true,
        description = {"Search hyperparameters: train one trial per choice of values, prune bad trials early (ASHA), rank them.",
                "Each trial is a normal run in DIR/trial-NNN/. Writes DIR/leaderboard.csv and .json, DIR/best.yaml (the best "
                        + "trial's experiment, for jtune train) and DIR/sweep.html. The experiment's sweep: section gives "
                        + "defaults for every option below."})
final class SweepCommand implements Runnable {
    @Parameters(index = "0", arity = "0..1", paramLabel = "EXPERIMENT", description = "The experiment YAML file (not with --resume).")
    Path experiment;

    @Option(names = "--param", paramLabel = "KEY=SPEC",
            description = "A searched key: KEY=[a,b,c], KEY=uniform(lo,hi), KEY=loguniform(lo,hi) or KEY=int(lo,hi) (repeatable).")
    List<String> params = new ArrayList<>();

    @Option(names = "--set", paramLabel = "SECTION.KEY=VALUE", description = "Override a key in every trial, as jtune train --set (repeatable).")
    List<String> sets = new ArrayList<>();

    @Option(names = "--trials", paramLabel = "N", description = "Number of trials (for a grid: at most N of its points).")
    Integer trials;

    @Option(names = "--out", paramLabel = "DIR", description = "The sweep's directory.")
    Path out;

    @Option(names = "--method", paramLabel = "random|grid", description = "Random search (default) or the grid of the choices.")
    String method;

    @Option(names = "--prune", paramLabel = "none|asha", description = "Stop poor trials at evaluation steps (asha), or not (none, the default).")
    String prune;

    @Option(names = "--metric", paramLabel = "eval_loss|eval_perplexity", description = "What ranks the trials (default eval_loss).")
    String metric;

    @Option(names = "--direction", paramLabel = "minimize|maximize", description = "Whether lower (default) or higher metric is better.")
    String direction;

    @Option(names = "--seed", paramLabel = "S", description = "Seed of the trial choices (default 0).")
    Long seed;

    @Option(names = "--eta", paramLabel = "N", description = "ASHA's reduction factor (default 3): the best 1/N of a rung go on.")
    Integer eta;

    @picocli.CommandLine.Mixin
    NoCacheOption cache = new NoCacheOption();

    @Option(names = "--resume", paramLabel = "DIR", description = "Continue a killed sweep: finished trials are kept, the interrupted one resumes from its checkpoint.")
    Path resume;

    @Override
    public void run() {
        cache.around(this::runCommand);
    }

    private void runCommand() {
        if (resume != null) {
            if (experiment != null || !params.isEmpty() || !sets.isEmpty() || out != null || trials != null || method != null
                    || prune != null || metric != null || direction != null || seed != null || eta != null) {
                throw new UserError("--resume " + resume + " continues the sweep as it was defined (in " + resume.resolve("sweep.json")
                        + "); give no experiment or other option with it");
            }
            run(SweepRunner.resume(resume, System.out));
            return;
        }
        if (experiment == null) throw new UserError("expected EXPERIMENT.yaml (or --resume DIR)");
        if (out == null) throw new UserError("--out DIR is required: the sweep's directory");
        Experiment exp = Experiment.load(experiment, sets);
        SweepSection s = exp.sweep();
        SweepSpec spec = new SweepSpec(exp.file(), sets, SweepSpec.merge(s.params(), params),
                method == null ? s.method() : choice(SweepSection.Method.class, "--method", method),
                trials == null ? s.trials() : positive("--trials", trials),
                prune == null ? s.prune() : choice(SweepSection.Prune.class, "--prune", prune),
                metric == null ? s.metric() : metric,
                direction == null ? s.direction() : choice(SweepSection.Direction.class, "--direction", direction),
                seed == null ? s.seed() : seed,
                eta == null ? s.eta() : (eta < 2 ? fail("--eta must be at least 2, got " + eta) : eta));
        run(SweepRunner.plan(spec, out.toAbsolutePath().normalize(), System.out));
    }

    /** Runs the trials with SIGTERM/SIGINT asking the running trial to checkpoint and stop (the sweep resumes). */
    private static void run(SweepRunner runner) {
        try (SignalStop signals = SignalStop.install(System.out)) {
            runner.run(signals::requested);
        }
    }

    private static Integer positive(String option, int v) {
        if (v < 1) throw new UserError(option + " must be at least 1, got " + v);
        return v;
    }

    private static int fail(String message) {
        throw new UserError(message);
    }

    private static <E extends Enum<E>> E choice(Class<E> type, String option, String value) {
        for (E e : type.getEnumConstants()) if (e.name().equalsIgnoreCase(value.strip())) return e;
        List<String> names = new ArrayList<>();
        for (E e : type.getEnumConstants()) names.add(e.name().toLowerCase(java.util.Locale.ROOT));
        throw new UserError(option + " " + value + ": expected one of: " + String.join(", ", names));
    }
}
