package dev.jtune.sweep;

import dev.jtune.config.Experiment;
import dev.jtune.config.SweepSection;
import dev.jtune.metrics.EvalPoint;
import dev.jtune.metrics.MetricsLog;
import dev.jtune.util.UserError;

import java.io.PrintStream;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.stream.Collectors;

/**
 * Runs a sweep's trials one after another, each a normal {@code jtune train} run in DIR/trial-NNN/ whose experiment
 * is the experiment file with {@code --set} overrides: the sweep's own, then the trial's values, then its output
 * directory. {@link #plan} checks every trial's experiment before the first one runs; {@link #run} trains them, prunes
 * with ASHA when asked, records each one's fate in sweep.json and rewrites the leaderboard after each.
 */
public final class SweepRunner {
    private final Path dir;
    private final SweepState state;
    private final PrintStream out;

    private SweepRunner(Path dir, SweepState state, PrintStream out) {
        this.dir = dir;
        this.state = state;
        this.out = out;
    }

    /** A new sweep in {@code dir}: checks the spec and every planned trial (UserError, naming the --param), writes sweep.json. */
    public static SweepRunner plan(SweepSpec spec, Path dir, PrintStream out) {
        if (Files.exists(dir.resolve(SweepState.FILE))) {
            throw new UserError("--out " + dir + " holds a sweep already; continue it with --resume " + dir + ", or choose another --out");
        }
        if (!SweepSection.METRICS.contains(spec.metric())) {
            throw new UserError("--metric " + spec.metric() + ": unknown; expected one of: " + String.join(", ", SweepSection.METRICS));
        }
        Experiment base = Experiment.load(spec.experiment(), spec.sets());
        if (!base.data().hasValidation()) {
            throw new UserError(spec.experiment() + ": a sweep ranks trials by " + spec.metric() + " on validation data: set "
                    + "data.validation_file, or data.validation_split > 0");
        }
        if (spec.metric().equals("eval_perplexity") && base.training().method().preference()) {   // such runs log no perplexity
            throw new UserError("--metric eval_perplexity: training.method " + base.training().method().name().toLowerCase(java.util.Locale.ROOT)
                    + " logs no perplexity (its loss is not a token cross-entropy); rank by eval_loss or eval_rewards/accuracies (maximize)");
        }
        List<Map<String, String>> values = TrialSampler.plan(spec);
        for (ParamSpec p : spec.params()) {   // the ends of each range, alone
            for (String end : p.ends()) check(spec, dir, 0, Map.of(p.key(), end), "the range's end " + end);
        }
        List<SweepState.Trial> trials = new ArrayList<>();
        for (int i = 0; i < values.size(); i++) {
            check(spec, dir, i + 1, values.get(i), "trial " + (i + 1) + "'s values " + describe(values.get(i)));
            trials.add(new SweepState.Trial(i + 1, values.get(i)));
        }
        SweepState state = new SweepState(spec, trials);
        try {
            Files.createDirectories(dir);
        } catch (java.io.IOException e) {
            throw new UserError("--out " + dir + ": cannot create: " + e.getMessage(), e);
        }
        state.write(dir);
        out.printf(Locale.ROOT, "sweep: %d trials (%s search%s) over %s; ranking by %s (%s)%n", trials.size(),
                spec.method().name().toLowerCase(Locale.ROOT), spec.prune() == SweepSection.Prune.ASHA ? ", ASHA pruning with eta " + spec.eta() : "",
                spec.params().stream().map(ParamSpec::key).collect(Collectors.joining(", ")), spec.metric(),
                spec.direction().name().toLowerCase(Locale.ROOT));
        return new SweepRunner(dir, state, out);
    }

    /** A killed sweep in {@code dir}, from its sweep.json. */
    public static SweepRunner resume(Path dir, PrintStream out) {
        SweepState state = SweepState.read(dir);
        long done = state.trials.stream().filter(t -> t.status.finished()).count();
        out.printf(Locale.ROOT, "sweep: resuming %s: %d of %d trials finished%n", dir, done, state.trials.size());
        return new SweepRunner(dir, state, out);
    }

    /** A trial's experiment refused by the normal validation is the --param's fault: say which, and the value. */
    private static void check(SweepSpec spec, Path dir, int number, Map<String, String> values, String what) {
        try {
            trialExperiment(spec, dir, number, values);
        } catch (UserError e) {
            List<String> named = spec.params().stream().filter(p -> values.containsKey(p.key()) && e.getMessage().contains(p.key()))
                    .map(p -> "--param " + p.raw()).toList();
            if (named.isEmpty()) {
                named = spec.params().stream().filter(p -> values.containsKey(p.key())).map(p -> "--param " + p.raw()).toList();
            }
            throw new UserError(String.join(", ", named) + ": " + what + " is refused:\n" + e.getMessage(), e);
        }
    }

    /**
     * The experiment of trial {@code number}: the file with the sweep's --set, then the trial's typed values
     * ({@link ParamSpec#typed}), DIR/trial-NNN/ as output and no sweep of its own, validated once.
     */
    static dev.jtune.api.Experiment trialExperiment(SweepSpec spec, Path dir, int number, Map<String, String> values) {
        Path out = dir.resolve(String.format(Locale.ROOT, "trial-%03d", number)).toAbsolutePath().normalize();
        Map<String, Object> set = new LinkedHashMap<>();
        for (ParamSpec p : spec.params()) {
            if (values.containsKey(p.key())) set.put(p.key(), p.typed(values.get(p.key())));
        }
        set.put("training.output_dir", out);
        set.put("training.logging_dir", out.resolve("runs"));
        set.put("sweep.params", List.of());   // a trial is a plain run; its resolved file holds no sweep
        return dev.jtune.api.Experiment.load(spec.experiment(), spec.sets()).with(set);
    }

    static String describe(Map<String, String> values) {
        return values.entrySet().stream().map(e -> e.getKey() + "=" + e.getValue()).collect(Collectors.joining(", "));
    }

    /**
     * Trains every unfinished trial through the library's {@link dev.jtune.api.Trainer}, then writes the leaderboard,
     * best.yaml and sweep.html.
     *
     * @param preemption asked after each step ({@link dev.jtune.api.Trainer#preemption}): a reason stops the trial with a
     *                   checkpoint and the sweep with it
     * @return false when preemption stopped the sweep (it can be resumed), true when every trial is finished
     */
    public boolean run(java.util.function.Supplier<String> preemption) {
        SweepSpec spec = state.spec;
        AshaPruner pruner = spec.prune() == SweepSection.Prune.ASHA ? new AshaPruner(spec.eta(), spec.minimize(), spec.metric()) : null;
        for (SweepState.Trial t : state.trials) {
            if (t.status.finished() && t.status != SweepState.Status.FAILED && pruner != null) pruner.record(curve(t));
        }
        for (SweepState.Trial t : state.trials) {
            if (t.status.finished()) continue;
            boolean resume = t.status == SweepState.Status.RUNNING;
            Path trialDir = dir.resolve(t.dirName());
            t.status = SweepState.Status.RUNNING;
            state.write(dir);
            out.printf(Locale.ROOT, "%n== trial %d of %d%s: %s -> %s%n", t.number, state.trials.size(), resume ? " (resumed)" : "",
                    describe(t.values), trialDir);
            try {
                dev.jtune.api.Trainer trainer = dev.jtune.api.Trainer.of(trialExperiment(spec, dir, t.number, t.values))
                        .console(out).preemption(preemption);
                if (pruner != null) trainer.callback(pruner.callback(resume ? firstEvalStep(trialDir) : 0));
                if (resume) trainer.resume("auto");
                dev.jtune.api.TrainResult o = trainer.train();
                if (o.finalModel() == null) {   // stopped by a signal, with a checkpoint: the trial stays "running"
                    out.printf(Locale.ROOT, "sweep stopped during trial %d; continue with: jtune sweep --resume %s%n", t.number, dir);
                    return false;
                }
                t.status = o.stopReason().startsWith("pruned by ASHA") ? SweepState.Status.PRUNED : SweepState.Status.COMPLETE;
                t.note = o.stopReason();
                t.steps = o.globalStep();
            } catch (RuntimeException | OutOfMemoryError e) {   // an out-of-memory error, a bad value: the sweep goes on
                t.status = SweepState.Status.FAILED;
                t.note = e instanceof UserError ? e.getMessage() : e.toString();
                out.printf(Locale.ROOT, "trial %d failed: %s%n", t.number, t.note);
            }
            Map<Long, Double> curve = curve(t);
            t.metric = curve.isEmpty() ? null : new ArrayList<>(curve.values()).get(curve.size() - 1);
            if (t.status == SweepState.Status.FAILED) t.steps = lastStep(trialDir);
            if (pruner != null && t.status != SweepState.Status.FAILED) pruner.record(curve);
            state.write(dir);
            Leaderboard.write(dir, state);
            out.printf(Locale.ROOT, "trial %d: %s, %s %s after %d steps%n", t.number, t.status.label(), spec.metric(),
                    t.metric == null ? "none" : String.format(Locale.ROOT, "%.4f", t.metric), t.steps);
        }
        Leaderboard.Written w = Leaderboard.write(dir, state);
        SweepPage.write(dir, state, curves());
        out.println();
        out.print(w.summary());
        out.printf(Locale.ROOT, "leaderboard: %s%nchart: %s%n", dir.resolve("leaderboard.csv"), dir.resolve("sweep.html"));
        return true;
    }

    /** Trial number → its validation curve of the sweep's metric. */
    Map<Integer, Map<Long, Double>> curves() {
        Map<Integer, Map<Long, Double>> out = new LinkedHashMap<>();
        for (SweepState.Trial t : state.trials) out.put(t.number, curve(t));
        return out;
    }

    /** Step → the metric at each evaluation in the trial's metrics.jsonl (the source of truth, also after a resume). */
    private Map<Long, Double> curve(SweepState.Trial t) {
        Path m = dir.resolve(t.dirName()).resolve("metrics.jsonl");
        Map<Long, Double> out = new LinkedHashMap<>();
        if (!Files.isRegularFile(m)) return out;
        String metric = state.spec.metric();
        if (metric.startsWith("eval_rewards/")) return MetricsLog.evalSeries(m, metric);   // preference runs' own metrics
        for (EvalPoint p : MetricsLog.read(m).eval()) {
            out.put(p.step(), metric.equals("eval_perplexity") ? p.perplexity() : p.loss());
        }
        return out;
    }

    private static long firstEvalStep(Path trialDir) {
        Path m = trialDir.resolve("metrics.jsonl");
        if (!Files.isRegularFile(m)) return 0;
        List<EvalPoint> eval = MetricsLog.read(m).eval();
        return eval.isEmpty() ? 0 : eval.get(0).step();
    }

    private static long lastStep(Path trialDir) {
        Path m = trialDir.resolve("metrics.jsonl");
        if (!Files.isRegularFile(m)) return 0;
        return MetricsLog.read(m).train().stream().mapToLong(p -> p.step()).max().orElse(0);
    }
}
