package dev.jtune.api;

import dev.jtune.config.Precision;
import dev.jtune.data.DatasetPreparer;
import dev.jtune.data.PreparedData;
import dev.jtune.kernels.Ops;
import dev.jtune.metrics.EvalPoint;
import dev.jtune.metrics.TrainPoint;
import dev.jtune.model.CausalLM;
import dev.jtune.peft.AdapterLoader;
import dev.jtune.tokenizer.HfTokenizer;
import dev.jtune.train.Evaluator;
import dev.jtune.util.Devices;
import dev.jtune.util.UserError;
import org.bytedeco.pytorch.Device;
import org.bytedeco.pytorch.global.torch.ScalarType;

import java.io.OutputStream;
import java.io.PrintStream;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Objects;
import java.util.SortedMap;
import java.util.TreeMap;
import java.util.function.Supplier;

/**
 * Fine-tunes a model as an experiment describes it: the same run, files and metrics as {@code jtune train} (which is
 * built on this class), with {@link TrainerCallback}s told of its events.
 *
 * <pre>{@code
 * TrainResult result = Trainer.of(exp)
 *         .callback(new TrainerCallback() {
 *             @Override public void onLog(TrainerState state, Map<String, Double> logs) { ... }
 *         })
 *         .train();
 * }</pre>
 *
 * <p>A run writes into {@code training.output_dir}: checkpoint-STEP/ directories, final/ (a Hugging Face model
 * directory or a PEFT adapter directory), metrics.jsonl, config.resolved.yaml, report.html and TensorBoard events in
 * {@code training.logging_dir}. Mistakes in the experiment or its files are {@link UserError}s. A Trainer runs one
 * training at a time; build another for the next.
 */
public final class Trainer {
    private final Experiment experiment;
    private final List<TrainerCallback> callbacks = new ArrayList<>();
    private PrintStream console = System.out;
    private String resume;
    private boolean overwrite;
    private Supplier<String> preemption = () -> null;

    private Trainer(Experiment experiment) {
        this.experiment = experiment;
    }

    /** A trainer for {@code experiment}, printing its progress on {@code System.out}, starting a new run. */
    public static Trainer of(Experiment experiment) {
        dev.jtune.util.LibTorchNatives.ensureLoaded();   // jtune's LibTorch before any other in this JVM can be picked up
        return new Trainer(Objects.requireNonNull(experiment, "experiment"));
    }

    /** Adds a callback, told of the run's events after those added before it; returns this. */
    public Trainer callback(TrainerCallback callback) {
        callbacks.add(Objects.requireNonNull(callback, "callback"));
        return this;
    }

    /** Where the run's console output goes (the plan, the data summary, the progress, warnings); returns this. */
    public Trainer console(PrintStream console) {
        this.console = Objects.requireNonNull(console, "console");
        return this;
    }

    /** Prints nothing: the run's files and the callbacks still get everything; returns this. */
    public Trainer quiet() {
        return console(new PrintStream(OutputStream.nullOutputStream(), true));
    }

    /**
     * Continues an interrupted run exactly (weights, optimizer, data position, random generators), as
     * {@code jtune train --resume}; returns this.
     *
     * @param checkpoint {@code "auto"} (the newest intact checkpoint in output_dir, or a new run when there is none) or
     *                   a checkpoint directory
     */
    public Trainer resume(String checkpoint) {
        this.resume = Objects.requireNonNull(checkpoint, "checkpoint");
        return this;
    }

    /**
     * Starts over in an output_dir that holds another run's outputs, deleting only the files jtune writes
     * ({@code jtune train --overwrite}); returns this.
     */
    public Trainer overwrite(boolean overwrite) {
        this.overwrite = overwrite;
        return this;
    }

    /**
     * Where requests to stop for preemption come from; the library installs no signal handlers of its own ({@code jtune
     * train} asks this on SIGTERM and SIGINT). When {@code requested} returns a reason (for example "SIGTERM"), the run
     * finishes the current step, writes a checkpoint and returns with {@link TrainResult#finalModel()} null and
     * {@link TrainResult#stopReason()} "stopped by REASON"; {@link #resume resume("auto")} continues it exactly. In a
     * data-parallel run a request on any rank stops every rank after the same step. Returns this.
     */
    public Trainer preemption(Supplier<String> requested) {
        this.preemption = Objects.requireNonNull(requested, "requested");
        return this;
    }

    /**
     * Trains until the plan is done, early stopping fires or a callback stops it; then writes the final model,
     * evaluates the test split and writes the report.
     *
     * <p>Under a launcher (torchrun, SLURM, Kubeflow's PyTorchJob, {@code jtune train --nproc-per-node}) the process is
     * one rank of a data-parallel run: this reads the launcher's environment variables ({@code RANK},
     * {@code WORLD_SIZE}, {@code LOCAL_RANK}, {@code MASTER_ADDR}, {@code MASTER_PORT}, or SLURM's and Kubeflow's
     * equivalents; docs/distributed.md lists them) and joins the other ranks. Without them it trains alone.
     *
     * @throws UserError for a mistake in the experiment, its files or the output directory
     */
    public TrainResult train() {
        if (resume != null && overwrite) throw new UserError("resume and overwrite contradict each other; choose one");
        dev.jtune.train.Trainer.Outcome o = new dev.jtune.train.Trainer(experiment.settings(), console, resume, overwrite)
                .withCallbacks(callbacks).withPreemption(preemption)
                .launchedAs(dev.jtune.distributed.LaunchEnv.fromEnvironment(System.getenv())).run();
        SortedMap<Integer, Double> train = new TreeMap<>(), eval = new TreeMap<>();
        for (TrainPoint p : o.trainLog()) train.put(Math.toIntExact(p.step()), p.loss());
        for (EvalPoint p : o.evalLog()) eval.put(Math.toIntExact(p.step()), p.loss());
        return new TrainResult(o.finalDir(), Math.toIntExact(o.steps()), o.epochs(), o.stopReason(), train, eval, o.bestEvalLoss(),
                o.bestStep() == null ? null : Math.toIntExact(o.bestStep()),
                o.test() == null ? null : o.test().loss(), o.report(), o.warnings(), o.skippedSteps());
    }

    /**
     * Evaluates a model on the experiment's validation and test splits (the same split as training, from the same
     * seed), as {@code jtune eval --checkpoint DIR} does, in fp32 weights under the experiment's precision.
     *
     * @param model a model directory, a checkpoint-STEP or final/ directory, or a PEFT adapter directory (applied to
     *              the experiment's {@code model.path})
     */
    public EvalResult evaluate(Path model) {
        dev.jtune.config.Experiment exp = experiment.settings();
        if (!Files.isDirectory(model)) throw new UserError(model + ": not a directory; expected a model or adapter directory");
        Device device = Devices.parse(exp.training().device(), "training.device");
        Precision precision = exp.training().precision().resolve(device.is_cuda());
        boolean adapter = AdapterLoader.isAdapterDir(model);
        try (HfTokenizer tok = HfTokenizer.load(exp.model().tokenizer());
             CausalLM m = AdapterLoader.load(adapter ? exp.model().path() : model, adapter ? model : null, ScalarType.Float, device,
                     Ops.of(exp.training().kernels()))) {
            tok.requireFitsModel(m.config().vocabSize(), m.config().where());
            PreparedData data = DatasetPreparer.prepare(exp.data(), exp.training().seed(), tok, console,
                    exp.training().dataloaderNumWorkers());
            int bs = exp.training().perDeviceEvalBatchSize(), len = exp.data().maxSeqLength();
            Evaluator.Result v = data.validation().isEmpty() ? null
                    : Evaluator.evaluate(m, data.validation(), bs, len, tok.paddingId(), precision);
            Evaluator.Result t = data.test().isEmpty() ? null : Evaluator.evaluate(m, data.test(), bs, len, tok.paddingId(), precision);
            return new EvalResult(v == null ? null : v.loss(), v == null ? 0 : v.tokens(), t == null ? null : t.loss(),
                    t == null ? 0 : t.tokens());
        }
    }
}
