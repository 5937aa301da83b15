package dev.jtune.train;

import dev.jtune.train.checkpoint.OutputDir;
import dev.jtune.train.checkpoint.RngStates;
import dev.jtune.train.checkpoint.RunManifest;
import dev.jtune.train.step.StepLoss;
import dev.jtune.train.step.TrainStep;
import dev.jtune.train.step.Trainable;
import com.fasterxml.jackson.databind.node.ObjectNode;
import dev.jtune.config.Experiment;
import dev.jtune.config.ModelChecks;
import dev.jtune.config.Precision;
import dev.jtune.config.TrainingSection;
import dev.jtune.data.Batcher;
import dev.jtune.data.DatasetPreparer;
import dev.jtune.data.PreparedData;
import dev.jtune.distributed.DataParallel;
import dev.jtune.distributed.ZeroSharding;
import dev.jtune.distributed.DistGroup;
import dev.jtune.distributed.LaunchEnv;
import dev.jtune.distributed.WeightCheck;
import dev.jtune.kernels.Ops;
import dev.jtune.metrics.AnswerReport;
import dev.jtune.metrics.EvalPoint;
import dev.jtune.metrics.HtmlReport;
import dev.jtune.metrics.MetricsLog;
import dev.jtune.metrics.RunDiagnostics;
import dev.jtune.metrics.RunRecord;
import dev.jtune.metrics.TensorBoardWriter;
import dev.jtune.metrics.TrainPoint;
import dev.jtune.model.CausalLM;
import dev.jtune.model.ModelConfig;
import dev.jtune.tokenizer.HfTokenizer;
import dev.jtune.util.Devices;
import dev.jtune.util.UserError;
import org.bytedeco.pytorch.Device;
import org.bytedeco.pytorch.global.torch;

import java.io.IOException;
import java.io.PrintStream;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.Optional;
import java.util.function.UnaryOperator;

/**
 * The fine-tuning recipe: a causal LM trained from an experiment file as transformers' Trainer would train it, with
 * the data hygiene and feedback it lacks. {@link #run} reads as the recipe: set up (output directory, data, model,
 * optimizer, plan), train ({@link TrainingLoop}), clean up (final model, test split, report).
 *
 * <p>Supports: full fine-tuning (fp32 master weights) or LoRA adapters on a frozen base; fp32, bf16 and fp16 autocast
 * (fp16 with dynamic loss scaling) on CPU or CUDA; AdamW on transformers' parameter groups (no decay on biases and
 * norm weights); transformers' schedulers with warmup and lr_scheduler_kwargs; gradient clipping (the norm before
 * clipping is logged); gradient accumulation with the loss normalised over the target tokens of the whole effective
 * batch; evaluation every eval_steps (or epoch) with early stopping; checkpoints with save_total_limit as transformers
 * rotates them, the best always kept; exact resume; the final (or best) model as a Hugging Face directory or PEFT
 * adapter; a test-split evaluation; metrics.jsonl, TensorBoard events and an HTML report.
 *
 * <p>Data parallel under a launcher (torchrun, SLURM, Kubeflow, {@code --nproc-per-node}; see {@link LaunchEnv}): the
 * ranks join a c10d process group ({@link DistGroup}), each trains on its DistributedSampler shard of every global
 * batch, the step syncs through {@link DataParallel}, evaluation is sharded, and rank 0 alone writes outputs.
 */
public final class Trainer {
    /** What a finished run produced. */
    public record Outcome(long steps, double epochs, List<TrainPoint> trainLog, List<EvalPoint> evalLog,
                          Double bestEvalLoss, Long bestStep, Path finalDir, Evaluator.Result test,
                          String stopReason, List<String> warnings, Path report, long skippedSteps) {}

    private final Experiment exp;
    private final PrintStream out;
    private final String resume;
    private final boolean overwrite;
    /** Wraps the step's loss (identity in real runs; a test in this package makes chosen steps' losses NaN). */
    private final UnaryOperator<StepLoss> lossWrapper;
    private List<dev.jtune.api.TrainerCallback> callbacks = List.of();
    private java.util.function.Supplier<String> preemption = () -> null;
    private Optional<LaunchEnv> launch = Optional.empty();

    /**
     * @param resume    null (a new run), "auto" (the newest intact checkpoint in output_dir, or a new run when there
     *                  is none) or a checkpoint directory
     * @param overwrite start over in an output_dir that holds another run's outputs, deleting only files jtune writes
     */
    public Trainer(Experiment exp, PrintStream out, String resume, boolean overwrite) {
        this(exp, out, resume, overwrite, UnaryOperator.identity());
    }

    /** As the public constructor, with the step's loss wrapped by {@code lossWrapper} (used from this package's tests). */
    Trainer(Experiment exp, PrintStream out, String resume, boolean overwrite, UnaryOperator<StepLoss> lossWrapper) {
        this.exp = exp;
        this.out = out;
        this.resume = resume;
        this.overwrite = overwrite;
        this.lossWrapper = lossWrapper;
    }

    /** Tells {@code callbacks} of the run's events, in order; they may stop it, or ask for an evaluation or a checkpoint. */
    public Trainer withCallbacks(List<dev.jtune.api.TrainerCallback> callbacks) {
        this.callbacks = List.copyOf(callbacks);
        return this;
    }

    /**
     * Where preemption requests come from (the CLI's SIGTERM/SIGINT handlers): when {@code requested} returns a reason
     * ("SIGTERM"), every rank finishes the current step, writes a checkpoint and the run returns without a final model.
     */
    public Trainer withPreemption(java.util.function.Supplier<String> requested) {
        this.preemption = java.util.Objects.requireNonNull(requested, "requested");
        return this;
    }

    /** The launcher's description of this process's rank (torchrun's, SLURM's, ...): the run joins its ranks; none: one process. */
    public Trainer launchedAs(Optional<LaunchEnv> launch) {
        this.launch = java.util.Objects.requireNonNull(launch, "launch");
        return this;
    }

    public Outcome run() {
        // ---- set up: nothing is read or written before the output directory's policy has spoken
        TrainingSection t = exp.training();
        long started = System.nanoTime();
        Device parsed = Devices.parse(t.device(), "training.device");
        // under a launcher each rank takes the GPU of its LOCAL_RANK on its node, or the one GPU it sees
        // (SLURM's --gpus-per-task=1 gives each task CUDA_VISIBLE_DEVICES of one device)
        Device device = launch.isPresent() && parsed.is_cuda()
                ? new Device("cuda:" + launch.get().cudaDevice(Byte.toUnsignedInt(org.bytedeco.pytorch.global.torch.cuda_device_count())))
                : parsed;
        Devices.makeCurrent(device);   // this rank's GPU before any CUDA call
        Precision precision = t.precision().resolve(device.is_cuda());
        ModelConfig config = ModelConfig.read(exp.model().path());
        ModelChecks.check(exp, config);   // Experiment.load ran it already; this covers experiments built in code

        try (DistGroup group = launch.map(e -> DistGroup.join(e, device, Duration.ofSeconds(t.ddpTimeout()), out)).orElse(DistGroup.single());
             HfTokenizer tok = HfTokenizer.load(exp.model().tokenizer())) {
            tok.requireFitsModel(config.vocabSize(), config.where());   // before any output is written or data read
            Path resumeFrom = prepareOutputDir(t, group);
            Map<String, String> dataHashes = RunManifest.dataHashes(exp.data());
            if (resumeFrom != null) RunManifest.checkSameData(resumeFrom, dataHashes);
            torch.manual_seed(t.seed());   // seed: dropout masks and LoRA's initialisation; the data order and split use it too

            // preference methods read pairs (or KTO's labelled completions) as items of two examples
            boolean preference = t.method().preference();
            dev.jtune.data.PreferenceRows.Prepared pairs = preference ? dev.jtune.data.PreferenceRows.prepare(exp.data(),
                    exp.preference(), t.seed(), t.perDeviceTrainBatchSize(), t.perDeviceEvalBatchSize(), tok, out) : null;
            PreparedData data = preference ? pairs.data() : DatasetPreparer.prepareCached(exp.data(), t.seed(), tok, out, t.dataloaderNumWorkers());
            if (data.train().isEmpty()) {
                throw new UserError(exp.data().describeTraining() + ": no training examples left after cleaning and splitting (see the data summary above)");
            }
            if (t.earlyStoppingPatience() != null && data.validation().isEmpty()) {
                throw new UserError(exp.file() + ": training.early_stopping_patience needs validation data "
                        + "(data.validation_file, or data.validation_split > 0)");
            }
            long padId = tok.paddingId();
            String chatTemplate = data.template() == null ? null : data.template().source();

            Trainable trained = Trainable.forExperiment(exp, config, device, precision, Ops.of(t.kernels()));
            TrainStep step = null;   // owns trained (and the preference loss's reference) once assembled
            try {
                CausalLM model = trained.model;
                TrainStep.Settings settings = TrainStep.Settings.of(t, precision);
                // training.method: the preference loss (and its reference model) replaces the cross-entropy
                if (preference) {
                    settings = settings.withLoss((policy, lora) -> dev.jtune.train.preference.PreferenceSetup.stepLoss(exp, policy,
                            lora, precision, data, pairs.desirable(), padId, out));
                }
                StepLoss.Factory chosen = settings.loss() != null ? settings.loss()
                        : (m, lora) -> StepLoss.causalLm(t.labelSmoothingFactor());
                settings = settings.withLoss((m, lora) -> lossWrapper.apply(chosen.create(m, lora)));
                step = TrainStep.assemble(trained, settings, group);
                Map<String, Double>[] lastEvalMetrics = newMetricsHolder();
                Evaluation evaluation = !preference
                        ? Evaluation.of(model, t.perDeviceEvalBatchSize(), exp.data().maxSeqLength(), padId, precision, group)
                        : preferenceEvaluation((dev.jtune.train.preference.PreferenceStepLoss) step.loss(), model,
                                t.perDeviceEvalBatchSize(), exp.data().maxSeqLength(), padId, precision, lastEvalMetrics);
                Batcher batcher = new Batcher(data.train(), preference ? 2 : 1, t.perDeviceTrainBatchSize(), true, t.seed(),
                        exp.data().packing(), exp.data().maxSeqLength(), padId, group.rank(), group.worldSize());
                TrainingPlan plan = TrainingPlan.of(t, batcher.batchesPerEpoch());

                Path outDir = t.outputDir();
                Files.createDirectories(outDir);
                if (group.isMain()) exp.writeResolved(outDir.resolve("config.resolved.yaml"));
                printPlan(config, trained, precision, device, plan, group);
                ZeroSharding zero = step.dataParallel().zero();
                if (zero != null) {
                    long all = 0;
                    for (org.bytedeco.pytorch.Tensor p : trained.parameters().values()) all += 8 * p.numel();   // two fp32 moments
                    out.printf(Locale.ROOT, "ZeRO stage 1: optimizer state sharded over %d ranks; rank %d keeps %d of %d tensors' state, %s of %s%n",
                            group.worldSize(), group.rank(), zero.partition().ownedBy(group.rank()).size(), trained.parameters().size(),
                            dev.jtune.plan.MemoryPlanner.human(step.optimizer().stateBytes()), dev.jtune.plan.MemoryPlanner.human(all));
                }

                MetricSinks sinks = new MetricSinks();
                ObjectNode manifest = RunManifest.base(device, dataHashes);
                TrainingLoop loop = new TrainingLoop(exp, plan, batcher, data, step, evaluation, sinks, chatTemplate, manifest, group);
                loop.evalMetrics = () -> lastEvalMetrics[0];
                loop.withCallbacks(callbacks);
                // generated answers: rank 0 alone answers and scores (the others wait at the next collective)
                loop.answers = group.isMain() ? AnswerRounds.of(model, precision, tok, t, data, out) : AnswerRounds.NONE;
                if (resumeFrom != null) {
                    // only rank 0 trims metrics.jsonl; every rank reads the checkpoint (a shared output_dir across nodes)
                    TrainerState.restore(resumeFrom, step, loop.state, sinks,
                            group.isMain() ? outDir.resolve("metrics.jsonl") : null, out);
                    RngStates.restore(resumeFrom, group.rank(), group.worldSize(), loop.state.worldSize, device, out);
                    loop.continueOnWorldSize(group.worldSize(), out);
                }

                // ---- train: rank 0 writes the metrics, TensorBoard events and the report; the others only train
                try (MetricsLog metrics = group.isMain() ? new MetricsLog(outDir.resolve("metrics.jsonl"), resumeFrom != null) : null;
                     TensorBoardWriter tb = group.isMain() ? new TensorBoardWriter(t.loggingDir()) : null) {
                    sinks.open(metrics, tb);
                    if (tb != null) tb.text("config", 0, "```yaml\n" + exp.toYaml() + "\n```");
                    if (resumeFrom == null) loop.answers.base(sinks);   // before the first step: the base model's answers
                    TrainingLoop.Result done;
                    try {
                        done = loop.run(preemption, out);
                    } catch (RuntimeException | OutOfMemoryError e) {
                        if (OutOfMemory.is(e)) {
                            throw OutOfMemory.explain(e, exp, model.parameterCount(), precision, device, loop.phase);
                        }
                        throw e;
                    }
                    if (done.preemptedBy() != null) return preempted(done, loop.checkpointDir(done.steps()), sinks);

                    if (group.active()) out.println(WeightCheck.compare(group, List.copyOf(trained.parameters().values())));
                    // ---- clean up: the report
                    if (!group.isMain()) {
                        loop.callbacks.trainEnd();
                        return outcome(done, sinks, List.of(), null);
                    }
                    Outcome o = report(config, trained, device, precision, data, plan, done, loop.answers.report(), sinks, started);
                    loop.callbacks.trainEnd();
                    return o;
                }
            } finally {
                if (step != null) step.close(); else trained.close();
            }
        } catch (IOException e) {
            throw new UserError(exp.training().outputDir() + ": " + e.getMessage(), e);
        }
    }

    @SuppressWarnings("unchecked")
    private static Map<String, Double>[] newMetricsHolder() {
        Map<String, Double>[] holder = new Map[1];
        holder[0] = Map.of();
        return holder;
    }

    /**
     * Evaluation of a preference run: the preference loss over held-out pairs (every rank evaluates all of them: the same
     * numbers on each, no collective), its metrics left in {@code metrics[0]} for the loop to log as {@code eval_...}.
     * The result's token count is the number of pairs (KTO: examples).
     */
    private static Evaluation preferenceEvaluation(dev.jtune.train.preference.PreferenceStepLoss loss, CausalLM model, int batchSize,
                                                   int maxSeqLength, long padId, Precision precision, Map<String, Double>[] metrics) {
        return (examples, split) -> {
            var e = loss.evaluate(model, examples, batchSize, maxSeqLength, padId, precision);
            metrics[0] = e.metrics();
            return new Evaluator.Result(e.loss(), e.items());
        };
    }

    /**
     * Rank 0 applies the output directory's policy (and finds the checkpoint to resume from); the other ranks take its
     * answer, or its error, through the store.
     */
    private Path prepareOutputDir(TrainingSection t, DistGroup group) {
        if (!group.active()) return OutputDir.prepare(t, resume, overwrite, out);
        if (group.isMain()) {
            Path p;
            try {
                p = OutputDir.prepare(t, resume, overwrite, out);
            } catch (UserError e) {
                group.fromMain("resume_from", "!" + e.getMessage());
                throw e;
            }
            group.fromMain("resume_from", p == null ? "" : p.toString());
            return p;
        }
        String v = group.fromMain("resume_from", null);
        if (v.startsWith("!")) throw new UserError("rank 0 stopped: " + v.substring(1));
        return v.isEmpty() ? null : Path.of(v);
    }

    private void printPlan(ModelConfig config, Trainable trained, Precision precision, Device device, TrainingPlan plan, DistGroup group) {
        TrainingSection t = exp.training();
        out.printf(Locale.ROOT, "model: %s, %s, %s on %s%n", config.modelType(), trained.what(), trained.precisionFacts(precision),
                device.is_cuda() ? "cuda" : "cpu");
        out.println(trained.describe());
        out.println(trained.model.kernels().describe(device.is_cuda()));
        dev.jtune.kernels.OpPaths.reset();   // the paths really taken are reported after the first step (TrainingLoop)
        String reg = regularisation(trained.model, t);
        if (reg != null) out.println("regularisation (training only): " + reg);
        String batch = group.active()
                ? String.format(Locale.ROOT, "global batch %d (%d per device × %d accumulation × %d ranks)",
                        (long) t.perDeviceTrainBatchSize() * plan.accumulation() * group.worldSize(), t.perDeviceTrainBatchSize(),
                        plan.accumulation(), group.worldSize())
                : String.format(Locale.ROOT, "effective batch %d (%d × %d accumulation)",
                        t.perDeviceTrainBatchSize() * plan.accumulation(), t.perDeviceTrainBatchSize(), plan.accumulation());
        out.printf(Locale.ROOT, "plan: %d steps (%.2f epochs of %d steps), %s, lr %.2e %s, warmup %d%n",
                plan.totalSteps(), (double) plan.totalSteps() / plan.stepsPerEpoch(), plan.stepsPerEpoch(), batch, t.learningRate(),
                t.lrSchedulerType().name().toLowerCase(Locale.ROOT), plan.schedule().warmup());
    }

    /** The regularisers on in this run, for the console and the report ("attention dropout 0.1, NEFTune alpha 5"); null when none. */
    static String regularisation(CausalLM model, TrainingSection t) {
        List<String> on = new java.util.ArrayList<>();
        dev.jtune.model.ModelDropout d = model.dropout();
        if (d.attention() > 0) on.add("attention dropout " + d.attention());
        if (d.residual() > 0) on.add("residual dropout " + d.residual());
        if (d.embedding() > 0) on.add("embedding dropout " + d.embedding());
        if (model.neftuneNoiseAlpha() > 0) on.add("NEFTune alpha " + model.neftuneNoiseAlpha());
        if (t.labelSmoothingFactor() > 0) on.add("label smoothing " + t.labelSmoothingFactor());
        return on.isEmpty() ? null : String.join(", ", on);
    }

    private Outcome preempted(TrainingLoop.Result done, Path checkpoint, MetricSinks sinks) {
        out.printf(Locale.ROOT, "stopped by %s after step %d; checkpoint %s%nresume with: jtune train %s --resume auto%n",
                done.preemptedBy(), done.steps(), checkpoint, exp.file());
        return outcome(done, sinks, List.of(), null);
    }

    private static Outcome outcome(TrainingLoop.Result done, MetricSinks sinks, List<String> warnings, Path report) {
        return new Outcome(done.steps(), done.epochs(), sinks.trainLog, sinks.evalLog, done.bestLoss(), done.bestStep(),
                done.finalDir(), done.test(), done.stopReason(), warnings, report, done.skippedSteps());
    }

    private Outcome report(ModelConfig config, Trainable trained, Device device, Precision precision, PreparedData data,
                           TrainingPlan plan, TrainingLoop.Result done, AnswerReport answers, MetricSinks sinks, long started) {
        TrainingSection t = exp.training();
        double wall = (System.nanoTime() - started) / 1e9;
        long trainTokens = data.train().stream().mapToLong(e -> e.length()).sum();
        Map<String, String> facts = new LinkedHashMap<>();
        facts.put("model", exp.model().path() + " (" + config.modelType() + ", "
                + String.format(Locale.ROOT, "%,d", trained.model.parameterCount()) + " parameters)");
        facts.put("device", device.is_cuda() ? "cuda" : "cpu");
        facts.put("precision", trained.precisionFacts(precision));
        String reg = regularisation(trained.model, t);
        if (reg != null) facts.put("regularisation", reg + " (training only)");
        facts.put("final model", done.finalDir().toString());
        RunRecord record = new RunRecord("jtune: " + exp.file().getFileName(), exp.toYaml(), data.report().lines(),
                data.train().size(), trainTokens, data.validation().size(), data.test().size(), plan.totalSteps(), done.steps(),
                done.epochs(), t.perDeviceTrainBatchSize() * plan.accumulation(), sinks.trainLog, sinks.evalLog,
                done.test() == null ? null : done.test().loss(), done.test() == null || t.method().preference() ? null : done.test().perplexity(),
                done.bestStep(), done.bestLoss(), done.stopReason(), wall, facts);
        List<String> warnings = RunDiagnostics.warnings(record);
        Path report = t.outputDir().resolve("report.html");
        HtmlReport.write(report, record, warnings, answers,
                dev.jtune.metrics.PreferenceReport.section(sinks.trainExtras, sinks.evalExtras));
        if (answers != null) out.print(answers.text(3, 100));
        for (String w : warnings) out.println(w.startsWith("Note: ") ? "note: " + w.substring(6) : "warning: " + w);
        long skipped = done.skippedSteps();
        if (skipped > 0) out.printf(Locale.ROOT, "skipped %d of %d optimizer steps because of non-finite gradients%n", skipped, done.steps());
        out.printf(Locale.ROOT, "done: %d steps in %.1f s (%s); final model %s; report %s%n", done.steps(), wall, done.stopReason(),
                done.finalDir(), report);
        return outcome(done, sinks, warnings, report);
    }
}
