package dev.jtune.train;

import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ArrayNode;
import com.fasterxml.jackson.databind.node.ObjectNode;
import dev.jtune.config.Experiment;
import dev.jtune.config.ModelChecks;
import dev.jtune.config.LoraSection;
import dev.jtune.peft.LoraSpec;
import dev.jtune.util.Tensors;
import dev.jtune.config.TrainingSection;
import dev.jtune.data.Batch;
import dev.jtune.data.Batcher;
import dev.jtune.data.DatasetPreparer;
import dev.jtune.data.PreparedData;
import dev.jtune.data.TensorBatch;
import dev.jtune.kernels.Ops;
import dev.jtune.metrics.EvalPoint;
import dev.jtune.metrics.HtmlReport;
import dev.jtune.metrics.MetricsLog;
import dev.jtune.metrics.ProgressDisplay;
import dev.jtune.metrics.RunDiagnostics;
import dev.jtune.metrics.RunRecord;
import dev.jtune.metrics.TensorBoardWriter;
import dev.jtune.metrics.TrainPoint;
import dev.jtune.model.CausalLM;
import dev.jtune.model.ModelConfig;
import dev.jtune.model.ModelLoader;
import dev.jtune.model.ParameterSpec;
import dev.jtune.tokenizer.HfTokenizer;
import dev.jtune.util.Devices;
import dev.jtune.util.UserError;
import org.bytedeco.javacpp.PointerScope;
import org.bytedeco.pytorch.Device;
import org.bytedeco.pytorch.Tensor;
import org.bytedeco.pytorch.global.torch;
import org.bytedeco.pytorch.global.torch.ScalarType;

import java.io.IOException;
import java.io.PrintStream;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Locale;
import java.util.Map;

/**
 * The fine-tuning recipe: full fine-tuning of a causal LM from an experiment file, as a Hugging Face
 * Trainer user would run it, with the data hygiene and feedback it lacks.
 *
 * <p>Supports: fp32 and bf16-autocast training on CPU or CUDA; AdamW with two parameter groups (no
 * decay on biases, norms, embeddings); constant/linear/cosine schedules with warmup; gradient
 * clipping; gradient accumulation with the loss normalised over the target tokens of the whole
 * effective batch; evaluation every eval_steps (or epoch) with early stopping; checkpoints with a
 * total limit that never deletes the best; the final (or best) model as a Hugging Face directory;
 * a test-split evaluation at the end; metrics.jsonl, TensorBoard events and an HTML report.
 */
public final class Trainer {
    private static final ObjectMapper JSON = new ObjectMapper();

    /** What a finished run produced. */
    public record Outcome(long steps, double epochs, List<TrainPoint> trainLog, List<EvalPoint> evalLog,
                          Double bestEvalLoss, Long bestStep, Path finalDir, Evaluator.Result test,
                          String stopReason, List<String> warnings, Path report, long skippedSteps) {}

    private final Experiment exp;
    private final PrintStream out;
    private final String resume;
    private final boolean overwrite;

    /** Test hook: optimizer steps (1-based) whose loss is made NaN, as a corrupt batch would. Null in real runs. */
    static volatile java.util.function.LongPredicate poisonedSteps;

    public Trainer(Experiment exp, PrintStream out) {
        this(exp, out, null, false);
    }

    /**
     * @param resume    null (a new run), "auto" (the newest intact checkpoint in output_dir, or a new run when there
     *                  is none) or a checkpoint directory
     * @param overwrite start over in an output_dir that holds another run's outputs, deleting only files jtune writes
     */
    public Trainer(Experiment exp, PrintStream out, String resume, boolean overwrite) {
        this.exp = exp;
        this.out = out;
        this.resume = resume;
        this.overwrite = overwrite;
    }

    /** fp32 or bf16 autocast for a precision setting on a device ("auto": bf16 on CUDA, fp32 on CPU). */
    public static Autocast.Mode precisionMode(TrainingSection.Precision p, Device device) {
        switch (p) {
            case FP32: return Autocast.Mode.FP32;
            case BF16: return Autocast.Mode.BF16;
            case FP16: return Autocast.Mode.FP16;
            case AUTO: return device.is_cuda() ? Autocast.Mode.BF16 : Autocast.Mode.FP32;
            default: throw new IllegalStateException(p.toString());
        }
    }

    public static long padId(HfTokenizer tok) {
        if (tok.padTokenId().isPresent()) return tok.padTokenId().getAsLong();
        if (!tok.eosTokenIds().isEmpty()) return tok.eosTokenIds().iterator().next();
        return 0;
    }

    public Outcome run() {
        TrainingSection t = exp.training();
        long started = System.nanoTime();
        Device device = Devices.parse(t.device(), "training.device");
        Autocast.Mode precision = precisionMode(t.precision(), device);
        Ops.setMode(Ops.Mode.valueOf(t.kernels().name()));
        ModelConfig config = ModelConfig.read(exp.model().path());
        ModelChecks.check(exp, config);   // Experiment.load ran it already; this covers experiments built in code
        Path resumeFrom = prepareOutputDir(t);
        Map<String, String> dataHashes = dataHashes();
        if (resumeFrom != null) checkSameData(resumeFrom, dataHashes);
        torch.manual_seed(t.seed());

        try (HfTokenizer tok = HfTokenizer.load(exp.model().tokenizer())) {
            PreparedData data = DatasetPreparer.prepare(exp.data(), t.seed(), tok, out, t.dataloaderNumWorkers());
            if (data.train().isEmpty()) {
                throw new UserError(exp.data().trainFile() + ": no training examples left after cleaning and splitting (see the data summary above)");
            }
            if (t.earlyStoppingPatience() != null && data.validation().isEmpty()) {
                throw new UserError(exp.file() + ": training.early_stopping_patience needs validation data "
                        + "(data.validation_file, or data.validation_split > 0)");
            }
            long padId = padId(tok);
            String chatTemplate = data.template() == null ? null : data.template().source();

            Trainable trained = Trainable.forExperiment(exp, config, device, precision);
            CausalLM model = trained.model;
            AdamW optimizer = new AdamW(trained.parameters(), trained.decayed(),
                    t.weightDecay(), t.adamBeta1(), t.adamBeta2(), t.adamEpsilon());

            Batcher batcher = new Batcher(data.train(), t.perDeviceTrainBatchSize(), true, t.seed(),
                    exp.data().packing(), exp.data().maxSeqLength(), padId);
            int microPerEpoch = batcher.batchesPerEpoch();
            int accum = t.gradientAccumulationSteps();
            long stepsPerEpoch = (microPerEpoch + accum - 1) / accum;
            long totalSteps = t.maxSteps() > 0 ? t.maxSteps() : (long) Math.ceil(t.numTrainEpochs() * stepsPerEpoch);
            LrSchedule schedule = new LrSchedule(LrSchedule.Kind.valueOf(t.lrSchedulerType().name()), t.learningRate(),
                    LrSchedule.warmupSteps(t.warmupSteps(), t.warmupRatio(), totalSteps), totalSteps);

            Path outDir = t.outputDir();
            Files.createDirectories(outDir);
            exp.writeResolved(outDir.resolve("config.resolved.yaml"));
            long trainTokens = data.train().stream().mapToLong(e -> e.inputIds().length).sum();
            out.printf(Locale.ROOT, "model: %s, %s, %s on %s%n", config.modelType(),
                    exp.lora().enabled() ? "LoRA r=" + ((Trainable.Adapters) trained).spec().r() + " on " + ((Trainable.Adapters) trained).parameters().size() / 2
                            + " modules, base frozen in " + Tensors.hfName(model.dtype()) : "full fine-tuning",
                    precision == Autocast.Mode.FP32 ? "fp32" : precision == Autocast.Mode.BF16 ? "bf16 autocast"
                            : "fp16 autocast with dynamic loss scaling", device.is_cuda() ? "cuda" : "cpu");
            out.println(trained.describe());
            out.println(Ops.describe(device.is_cuda()));
            out.printf(Locale.ROOT, "plan: %d steps (%.2f epochs of %d steps), effective batch %d (%d × %d accumulation), lr %.2e %s, warmup %d%n",
                    totalSteps, (double) totalSteps / stepsPerEpoch, stepsPerEpoch, t.perDeviceTrainBatchSize() * accum,
                    t.perDeviceTrainBatchSize(), accum, t.learningRate(), t.lrSchedulerType().name().toLowerCase(Locale.ROOT), schedule.warmup());

            Loop loop = new Loop(trained, optimizer, batcher, schedule, data, padId, precision, tok, chatTemplate, totalSteps, stepsPerEpoch);
            loop.manifestBase = manifestBase(device, dataHashes);
            if (resumeFrom != null) loop.restore(resumeFrom);
            String stopReason;
            try (MetricsLog metrics = new MetricsLog(outDir.resolve("metrics.jsonl"), resumeFrom != null);
                 TensorBoardWriter tb = new TensorBoardWriter(t.loggingDir());
                 Preemption preemption = Preemption.install(out)) {
                tb.text("config", 0, "```yaml\n" + exp.toYaml() + "\n```");
                loop.preemption = preemption;
                try {
                    stopReason = loop.train(metrics, tb);
                } catch (RuntimeException | OutOfMemoryError e) {
                    if (OutOfMemory.is(e)) throw OutOfMemory.explain(e, exp, model.parameterCount(), precision, device);
                    throw e;
                }
                if (loop.preempted != null) {
                    out.printf(Locale.ROOT, "stopped by %s after step %d; checkpoint %s%nresume with: jtune train %s --resume auto%n",
                            loop.preempted, loop.step, loop.checkpoints.dirFor(loop.step), exp.file());
                    return new Outcome(loop.step, loop.epochFraction(), loop.trainLog, loop.evalLog, loop.bestLoss, loop.bestStep,
                            null, null, "stopped by " + loop.preempted, List.of(), null, loop.skippedSteps);
                }
                Path finalDir = loop.finish(metrics, tb);
                double wall = (System.nanoTime() - started) / 1e9;
                RunRecord record = new RunRecord("jtune: " + exp.file().getFileName(), exp.toYaml(), data.report().lines(),
                        data.train().size(), trainTokens, data.validation().size(), data.test().size(), totalSteps, loop.step,
                        loop.epochFraction(), t.perDeviceTrainBatchSize() * accum, loop.trainLog, loop.evalLog,
                        loop.test == null ? null : loop.test.loss(), loop.test == null ? null : loop.test.perplexity(),
                        loop.bestStep, loop.bestLoss, stopReason, wall, facts(config, model, device, precision, finalDir));
                List<String> warnings = RunDiagnostics.warnings(record);
                Path report = outDir.resolve("report.html");
                HtmlReport.write(report, record, warnings);
                for (String w : warnings) out.println("warning: " + w);
                if (loop.skippedSteps > 0) {
                    out.printf(Locale.ROOT, "skipped %d of %d optimizer steps because of non-finite gradients%n", loop.skippedSteps, loop.step);
                }
                out.printf(Locale.ROOT, "done: %d steps in %.1f s (%s); final model %s; report %s%n", loop.step, wall, stopReason, finalDir, report);
                return new Outcome(loop.step, loop.epochFraction(), loop.trainLog, loop.evalLog, loop.bestLoss, loop.bestStep,
                        finalDir, loop.test, stopReason, warnings, report, loop.skippedSteps);
            } finally {
                trained.close();
            }
        } catch (IOException e) {
            throw new UserError(exp.training().outputDir() + ": " + e.getMessage(), e);
        }
    }

    /**
     * Refuses to start over a directory that holds another run's checkpoints (unless --overwrite, which deletes only
     * what jtune writes) and picks the checkpoint to resume from. Runs before any data or model work.
     */
    private Path prepareOutputDir(TrainingSection t) {
        Path dir = t.outputDir();
        if (resume != null) {
            if (resume.equals("auto")) {
                Path found = Checkpoints.latestGood(dir, out);
                if (found == null) out.println("resume: no complete checkpoint in " + dir + "; starting from the beginning");
                else out.println("resume: continuing from " + found);
                return found;
            }
            Path ck = Path.of(resume);
            if (!Files.isDirectory(ck)) throw new UserError("--resume: " + ck + " is not a checkpoint directory");
            List<String> problems = Checkpoints.verify(ck);
            if (!problems.isEmpty()) {
                throw new UserError("--resume: " + ck + " cannot be trusted: " + String.join("; ", problems)
                        + " (--resume auto falls back to the newest intact checkpoint)");
            }
            out.println("resume: continuing from " + ck);
            return ck;
        }
        List<Path> existing = Checkpoints.list(dir);
        boolean hasOutputs = !existing.isEmpty() || Files.exists(dir.resolve("final")) || Files.exists(dir.resolve("metrics.jsonl"));
        if (hasOutputs && !overwrite) {
            throw new UserError("training.output_dir " + dir + " holds the outputs of an earlier run"
                    + (existing.isEmpty() ? "" : " (" + existing.get(existing.size() - 1).getFileName() + ")")
                    + "; continue it with --resume auto, or start over with --overwrite (deletes only what jtune wrote there)");
        }
        if (hasOutputs) deleteOwnOutputs(dir, t.loggingDir());
        return null;
    }

    /** What jtune writes into an output directory, and nothing else. */
    private static void deleteOwnOutputs(Path dir, Path loggingDir) {
        try {
            for (Path ck : Checkpoints.list(dir)) Checkpoints.deleteTree(ck);
            Checkpoints.deleteTree(dir.resolve("final"));
            for (String f : new String[] {"metrics.jsonl", "report.html", "config.resolved.yaml"}) Files.deleteIfExists(dir.resolve(f));
            try (var s = Files.list(dir)) {
                for (Path p : s.toList()) if (p.getFileName().toString().matches("\\.checkpoint-\\d+\\.tmp")) Checkpoints.deleteTree(p);
            }
            if (Files.isDirectory(loggingDir)) {
                try (var s = Files.list(loggingDir)) {
                    for (Path p : s.toList()) if (p.getFileName().toString().startsWith("events.out.tfevents.")) Files.delete(p);
                }
            }
        } catch (IOException e) {
            throw new UserError(dir + ": cannot clear the earlier run's outputs: " + e.getMessage(), e);
        }
    }

    private Map<String, String> dataHashes() {
        Map<String, String> h = new LinkedHashMap<>();
        try {
            for (Path f : new Path[] {exp.data().trainFile(), exp.data().validationFile(), exp.data().testFile()}) {
                if (f != null) h.put(f.toString(), Checkpoints.sha256(f));
            }
        } catch (IOException e) {
            throw new UserError(exp.data().trainFile() + ": cannot read: " + e.getMessage(), e);
        }
        return h;
    }

    /** A resumed run must see the same data, or it would not continue the same run. */
    private static void checkSameData(Path checkpoint, Map<String, String> now) {
        try {
            var saved = new ObjectMapper().readTree(checkpoint.resolve(Checkpoints.MANIFEST).toFile()).path("data");
            for (Map.Entry<String, String> e : now.entrySet()) {
                String was = saved.path(e.getKey()).asText(null);
                if (was != null && !was.equals(e.getValue())) {
                    throw new UserError(e.getKey() + " changed since " + checkpoint + " was written (its hash differs); "
                            + "resuming would not continue the same run: restore the file, or start over with --overwrite");
                }
            }
        } catch (IOException e) {
            throw new UserError(checkpoint + ": cannot read " + Checkpoints.MANIFEST + ": " + e.getMessage(), e);
        }
    }

    private ObjectNode manifestBase(Device device, Map<String, String> dataHashes) {
        ObjectNode m = JSON.createObjectNode();
        String v = Trainer.class.getPackage().getImplementationVersion();
        m.put("jtune_version", v == null ? "dev" : v);
        m.put("libtorch_version", "2.10.0 (Bytedeco 1.5.13)");
        m.put("cuda_version", device.is_cuda() ? "13.x" : null);
        m.put("device", device.is_cuda() ? "cuda" : "cpu");
        ObjectNode d = m.putObject("data");
        dataHashes.forEach(d::put);
        return m;
    }

    private Map<String, String> facts(ModelConfig config, CausalLM model, Device device, Autocast.Mode precision, Path finalDir) {
        Map<String, String> f = new LinkedHashMap<>();
        f.put("model", exp.model().path() + " (" + config.modelType() + ", " + String.format(Locale.ROOT, "%,d", model.parameterCount()) + " parameters)");
        f.put("device", device.is_cuda() ? "cuda" : "cpu");
        f.put("precision", precision == Autocast.Mode.BF16 ? "bf16 autocast, fp32 weights" : "fp32");
        f.put("final model", finalDir.toString());
        return f;
    }

    /** The state of one run: step counters, logs, best checkpoint; one method per phase. */
    private final class Loop {
        final Trainable trained;
        final CausalLM model;
        final AdamW optimizer;
        final Batcher batcher;
        final LrSchedule schedule;
        final PreparedData data;
        final long padId;
        final Autocast.Mode precision;
        final HfTokenizer tok;
        final String chatTemplate;
        final long totalSteps, stepsPerEpoch;
        final TrainingSection t = exp.training();
        final Checkpoints checkpoints = new Checkpoints(exp.training().outputDir(), exp.training().saveTotalLimit());
        final List<TrainPoint> trainLog = new ArrayList<>();
        final List<EvalPoint> evalLog = new ArrayList<>();
        final ArrayNode logHistory = JSON.createArrayNode();
        long step;
        int epoch;
        int microInEpoch;
        Double bestLoss;
        Long bestStep;
        int badEvals;
        Evaluator.Result test;
        ProgressDisplay progress;
        final LossScaler scaler;
        long skippedSteps;
        int badStreak;               // consecutive skipped steps, against training.max_bad_steps
        int startMicro;              // batches of the first epoch already consumed (resume)
        double windowLoss;
        long windowSteps, windowTokens;
        ObjectNode manifestBase;
        Preemption preemption;
        String preempted;            // the signal that stopped the run, or null

        Loop(Trainable trained, AdamW optimizer, Batcher batcher, LrSchedule schedule, PreparedData data, long padId,
             Autocast.Mode precision, HfTokenizer tok, String chatTemplate, long totalSteps, long stepsPerEpoch) {
            this.trained = trained;
            this.model = trained.model;
            this.optimizer = optimizer;
            this.batcher = batcher;
            this.schedule = schedule;
            this.data = data;
            this.padId = padId;
            this.precision = precision;
            this.tok = tok;
            this.chatTemplate = chatTemplate;
            this.totalSteps = totalSteps;
            this.stepsPerEpoch = stepsPerEpoch;
            this.scaler = new LossScaler(model.device(), precision == Autocast.Mode.FP16);
        }

        double epochFraction() {
            return epoch + (double) microInEpoch / Math.max(1, batcher.batchesPerEpoch());
        }

        /** Runs optimizer steps until the plan is done or early stopping fires; returns why it stopped. */
        String train(MetricsLog metrics, TensorBoardWriter tb) {
            int accum = t.gradientAccumulationSteps();
            long windowStart = System.nanoTime();
            progress = new ProgressDisplay("train", totalSteps, step);
            try {
                while (step < totalSteps) {
                    try (Batcher.BatchIterator it = batcher.epoch(epoch, startMicro)) {
                    microInEpoch = startMicro;
                    startMicro = 0;
                    while (it.hasNext() && step < totalSteps) {
                        List<Batch> micro = new ArrayList<>(accum);
                        while (micro.size() < accum && it.hasNext()) micro.add(it.next());
                        microInEpoch += micro.size();
                        double lr = schedule.at(step);
                        StepResult r = optimizerStep(micro, lr);
                        step++;
                        windowLoss += r.loss;
                        windowSteps++;
                        windowTokens += r.tokens;
                        double secs = (System.nanoTime() - windowStart) / 1e9;
                        progress.update(step, r.loss, lr, windowTokens / Math.max(secs, 1e-9));
                        if (step % t.loggingSteps() == 0 || step == totalSteps) {
                            TrainPoint p = new TrainPoint(step, epochFraction(), windowLoss / windowSteps, lr, r.gradNorm,
                                    windowTokens / Math.max(secs, 1e-9));
                            logTrain(p, metrics, tb);
                            windowLoss = 0;
                            windowSteps = 0;
                            windowTokens = 0;
                            windowStart = System.nanoTime();
                        }
                        boolean epochEnd = !it.hasNext();
                        boolean evalNow = t.evalSteps() > 0 ? step % t.evalSteps() == 0 : epochEnd;
                        boolean stop = false;
                        if (evalNow && !data.validation().isEmpty()) stop = evaluate(metrics, tb);
                        boolean saveNow = t.saveSteps() > 0 ? step % t.saveSteps() == 0 : epochEnd;
                        if (saveNow && !Files.isDirectory(checkpoints.dirFor(step))) save();
                        if (stop) return "early stopping: no improvement in " + t.earlyStoppingPatience() + " evaluations";
                        if (preemption != null && preemption.requested() != null) {
                            preempted = preemption.requested();
                            if (!Files.isDirectory(checkpoints.dirFor(step))) save();
                            return "stopped by " + preempted;
                        }
                    }
                    }
                    if (step < totalSteps) epoch++;
                }
                return t.maxSteps() > 0 ? "max_steps reached" : "all epochs done";
            } finally {
                progress.close();
            }
        }

        record StepResult(double loss, double gradNorm, long tokens) {}

        /** One optimizer step ({@link TrainStep#run}), plus the bookkeeping of skipped steps. */
        StepResult optimizerStep(List<Batch> micro, double lr) {
            java.util.function.LongPredicate poison = poisonedSteps;
            TrainStep.Result r = TrainStep.run(model, trained.parameters(), optimizer, scaler, precision, t.maxGradNorm(),
                    micro, lr, poison != null && poison.test(step + 1));
            if (!r.skipped()) {
                badStreak = 0;
            } else {
                skippedSteps++;
                badStreak++;
                progress.message(String.format(Locale.ROOT, "step %d skipped: non-finite gradients%s", step + 1,
                        scaler.enabled() ? String.format(Locale.ROOT, " (fp16 loss scale %.0f, backing off)", scaler.scaleValue()) : ""));
            }
            if (badStreak >= t.maxBadSteps()) {
                List<Path> saved = Checkpoints.list(t.outputDir());
                throw new UserError(String.format(Locale.ROOT, "stopping at step %d: %d consecutive steps had a non-finite loss or gradients "
                        + "(training.max_bad_steps is %d). The last good checkpoint is %s. Lower training.learning_rate, use bf16 "
                        + "instead of fp16, or look for broken rows in %s", step + 1, badStreak, t.maxBadSteps(),
                        saved.isEmpty() ? "none (no checkpoint was written yet)" : saved.get(saved.size() - 1).toString(), exp.data().trainFile()));
            }
            return new StepResult(r.loss(), r.gradNorm(), r.tokens());
        }

        void logTrain(TrainPoint p, MetricsLog metrics, TensorBoardWriter tb) {
            trainLog.add(p);
            metrics.train(p);
            tb.scalar("train/loss", p.step(), p.loss());
            tb.scalar("train/learning_rate", p.step(), p.learningRate());
            tb.scalar("train/grad_norm", p.step(), p.gradNorm());
            tb.scalar("train/tokens_per_second", p.step(), p.tokensPerSecond());
            if (scaler.enabled()) tb.scalar("train/loss_scale", p.step(), scaler.scaleValue());
            tb.scalar("train/skipped_steps", p.step(), skippedSteps);
            ObjectNode h = logHistory.addObject();
            h.put("step", p.step());
            h.put("epoch", p.epoch());
            h.put("loss", p.loss());
            h.put("learning_rate", p.learningRate());
            h.put("grad_norm", p.gradNorm());
            h.put("skipped_steps", skippedSteps);
        }

        /** Evaluates on the validation split; returns true when early stopping says stop. */
        boolean evaluate(MetricsLog metrics, TensorBoardWriter tb) {
            Evaluator.Result r = Evaluator.evaluate(model, data.validation(), t.perDeviceEvalBatchSize(),
                    exp.data().maxSeqLength(), padId, precision);
            EvalPoint p = new EvalPoint(step, epochFraction(), r.loss(), r.perplexity());
            evalLog.add(p);
            metrics.eval(p);
            tb.scalar("eval/loss", step, r.loss());
            tb.scalar("eval/perplexity", step, r.perplexity());
            ObjectNode h = logHistory.addObject();
            h.put("step", step);
            h.put("epoch", p.epoch());
            h.put("eval_loss", r.loss());
            boolean improved = bestLoss == null || (r.loss() < bestLoss && bestLoss - r.loss() > t.earlyStoppingThreshold());
            String mark;
            if (improved) {
                bestLoss = r.loss();
                bestStep = step;
                badEvals = 0;
                mark = "best so far";
                save();   // the best model is always on disk, whatever save_steps says
            } else {
                badEvals++;
                mark = "no improvement (" + badEvals + (t.earlyStoppingPatience() == null ? "" : "/" + t.earlyStoppingPatience()) + ")";
            }
            progress.message(String.format(Locale.ROOT, "eval @ step %d (epoch %.2f): loss %.4f, perplexity %.2f, %s",
                    step, p.epoch(), r.loss(), r.perplexity(), mark));
            return t.earlyStoppingPatience() != null && badEvals >= t.earlyStoppingPatience();
        }

        void save() {
            checkpoints.save(step, trained, optimizer, scaler, trainerState(), exp.model().path(), exp.model().tokenizer(), chatTemplate,
                    exp.toYaml(), manifestBase);
            checkpoints.rotate(bestStep);
        }

        ObjectNode trainerState() {
            ObjectNode s = JSON.createObjectNode();
            s.put("global_step", step);
            s.put("epoch", epochFraction());
            s.put("max_steps", totalSteps);
            s.put("num_train_epochs", t.numTrainEpochs());
            s.put("train_batch_size", t.perDeviceTrainBatchSize());
            s.put("seed", t.seed());
            if (bestLoss != null) {
                s.put("best_metric", bestLoss);
                s.put("best_global_step", bestStep);
                s.put("best_model_checkpoint", checkpoints.dirFor(bestStep).toString());
            }
            s.set("log_history", logHistory.deepCopy());
            // exact position, for --resume (the fields above are transformers' trainer_state.json)
            ObjectNode j = s.putObject("jtune");
            j.put("epoch_index", epoch);
            j.put("batches_in_epoch", microInEpoch);
            j.put("bad_evals", badEvals);
            j.put("bad_streak", badStreak);
            j.put("skipped_steps", skippedSteps);
            j.put("window_loss", windowLoss);
            j.put("window_steps", windowSteps);
            j.put("window_tokens", windowTokens);
            if (bestLoss != null) {
                j.put("best_loss", bestLoss);
                j.put("best_step", bestStep);
            }
            return s;
        }

        /**
         * Continues from a checkpoint: trained weights, optimizer and loss-scaler state, the random generator, the
         * position in the data, the logging window and the logs up to that step.
         */
        void restore(Path ck) throws IOException {
            trained.restore(ck);
            try (dev.jtune.io.SafetensorsFile f = dev.jtune.io.SafetensorsFile.open(ck.resolve("optimizer.safetensors"))) {
                Map<String, Tensor> opt = new LinkedHashMap<>(), sc = new LinkedHashMap<>();
                for (String k : f.tensors().keySet()) {
                    if (k.startsWith("loss_scaler.")) sc.put(k.substring("loss_scaler.".length()), f.tensor(k).clone());
                    else opt.put(k, f.tensor(k));
                }
                optimizer.load(opt, Long.parseLong(f.metadata().get("step")));
                if (!sc.isEmpty()) scaler.load(sc);
            }
            try (dev.jtune.io.SafetensorsFile f = dev.jtune.io.SafetensorsFile.open(ck.resolve(Checkpoints.RNG))) {
                torch.getDefaultCPUGenerator().set_state(f.tensor("torch_cpu").clone());
                if (f.tensors().containsKey("torch_cuda") && model.device().is_cuda()) {
                    torch.globalContext().defaultGenerator(model.device()).set_state(f.tensor("torch_cuda").clone());
                }
            }
            var st = JSON.readTree(ck.resolve("trainer_state.json").toFile());
            var j = st.path("jtune");
            step = st.path("global_step").asLong();
            epoch = j.path("epoch_index").asInt();
            startMicro = j.path("batches_in_epoch").asInt();
            badEvals = j.path("bad_evals").asInt();
            badStreak = j.path("bad_streak").asInt();
            skippedSteps = j.path("skipped_steps").asLong();
            windowLoss = j.path("window_loss").asDouble();
            windowSteps = j.path("window_steps").asLong();
            windowTokens = j.path("window_tokens").asLong();
            if (j.has("best_loss")) {
                bestLoss = j.get("best_loss").asDouble();
                bestStep = j.get("best_step").asLong();
            }
            st.path("log_history").forEach(h -> logHistory.add(h.deepCopy()));
            // metrics.jsonl: keep what was logged up to this step; the rest is logged again
            Path metricsFile = t.outputDir().resolve("metrics.jsonl");
            if (Files.isRegularFile(metricsFile)) {
                List<String> kept = new ArrayList<>();
                for (String line : Files.readAllLines(metricsFile)) {
                    try {
                        var n = JSON.readTree(line);
                        if (n.path("step").asLong(Long.MAX_VALUE) <= step && !n.has("test_loss")) kept.add(line);
                    } catch (IOException bad) {
                        // a line cut by the crash: dropped
                    }
                }
                Files.write(metricsFile, kept);
                MetricsLog.History h = MetricsLog.read(metricsFile);
                trainLog.addAll(h.train());
                evalLog.addAll(h.eval());
            }
        }

        /** Final evaluation, the best (or last) weights into final/, and the test split. */
        Path finish(MetricsLog metrics, TensorBoardWriter tb) throws IOException {
            if (!data.validation().isEmpty() && (evalLog.isEmpty() || evalLog.get(evalLog.size() - 1).step() != step)) {
                evaluate(metrics, tb);
            }
            if (t.loadBestModelAtEnd() && bestStep != null && bestStep != step) {
                trained.restore(checkpoints.dirFor(bestStep));
                out.printf(Locale.ROOT, "loaded the best model: step %d, eval loss %.4f%n", bestStep, bestLoss);
            }
            Path finalDir = t.outputDir().resolve("final");
            Checkpoints.deleteTree(finalDir);
            trained.save(finalDir, exp.model().path(), exp.model().tokenizer(), chatTemplate);
            if (!data.test().isEmpty()) {
                test = Evaluator.evaluate(model, data.test(), t.perDeviceEvalBatchSize(), exp.data().maxSeqLength(), padId, precision);
                metrics.test(test.loss(), test.perplexity(), step);
                tb.scalar("test/loss", step, test.loss());
                tb.scalar("test/perplexity", step, test.perplexity());
                out.printf(Locale.ROOT, "test: loss %.4f, perplexity %.2f over %,d tokens the model never trained on%n",
                        test.loss(), test.perplexity(), test.tokens());
            }
            tb.flush();
            return finalDir;
        }
    }
}
