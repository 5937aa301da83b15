package dev.jtune.train;

import dev.jtune.train.checkpoint.Checkpoints;
import dev.jtune.train.step.TrainStep;
import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ObjectNode;
import dev.jtune.config.TrainingSection;
import dev.jtune.io.SafetensorsFile;
import dev.jtune.metrics.MetricsLog;
import org.bytedeco.pytorch.Tensor;

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
 * trainer_state.json and the rest of a checkpoint's run state: written with transformers' fields (global_step, epoch,
 * max_steps, best_metric, best_model_checkpoint, log_history…) plus jtune's exact position; restored together with
 * the optimizer and loss-scaler state and the logs up to the checkpoint's step (the random generators, each rank's
 * own: {@link RngStates}).
 */
final class TrainerState {
    private static final ObjectMapper JSON = new ObjectMapper();

    private TrainerState() {}

    /** trainer_state.json for the checkpoint of the current step. */
    static ObjectNode write(LoopState s, TrainingSection t, TrainingPlan plan, MetricSinks sinks, Checkpoints checkpoints) {
        ObjectNode o = JSON.createObjectNode();
        o.put("global_step", s.position.step);
        o.put("epoch", s.position.epochFraction(plan.microBatchesPerEpoch()));
        o.put("max_steps", plan.totalSteps());
        o.put("num_train_epochs", t.numTrainEpochs());
        o.put("train_batch_size", t.perDeviceTrainBatchSize());
        o.put("seed", t.seed());
        if (s.best.loss != null) {
            o.put("best_metric", t.largerIsBetter() ? -s.best.loss : s.best.loss);   // the metric itself, as transformers writes it
            o.put("best_global_step", s.best.step);
            o.put("best_model_checkpoint", checkpoints.dirFor(s.best.step).toString());
        }
        o.set("log_history", sinks.logHistory.deepCopy());
        s.write(o.putObject("jtune"));   // the exact position, for --resume (the fields above are transformers')
        return o;
    }

    /**
     * Continues from a checkpoint: trained weights, optimizer and loss-scaler state, the position in the data, the
     * logging window, and the logs up to that step (the random generators: {@link RngStates#restore}). Lines of
     * metrics.jsonl after that step are dropped (they are logged again), and so are lines that are not JSON (a line cut
     * by a crash): their number is reported on {@code out}.
     */
    static void restore(Path ck, TrainStep step, LoopState s, MetricSinks sinks, Path metricsFile,
                        PrintStream out) throws IOException {
        step.trained().restore(ck);
        try (SafetensorsFile f = SafetensorsFile.open(ck.resolve("optimizer.safetensors"))) {
            Map<String, Tensor> opt = new LinkedHashMap<>(), sc = new LinkedHashMap<>();
            for (String k : f.tensors().keySet()) {
                if (k.startsWith("loss_scaler.")) sc.put(k.substring("loss_scaler.".length()), f.tensor(k).clone());
                else opt.put(k, f.tensor(k));
            }
            step.optimizer().load(opt, Long.parseLong(f.metadata().get("step")));
            if (!sc.isEmpty()) step.scaler().load(sc);
        }
        JsonNode st = JSON.readTree(ck.resolve("trainer_state.json").toFile());
        s.read(st.path("global_step").asLong(), st.path("jtune"));
        st.path("log_history").forEach(h -> sinks.logHistory.add(h.deepCopy()));
        if (metricsFile != null && Files.isRegularFile(metricsFile)) {
            int dropped = keepMetricsUpTo(metricsFile, s.position.step);
            if (dropped > 0) {
                out.printf(Locale.ROOT, "resume: dropped %d line%s of %s that %s not valid JSON (cut off by the interruption)%n",
                        dropped, dropped == 1 ? "" : "s", metricsFile, dropped == 1 ? "was" : "were");
            }
            MetricsLog.History h = MetricsLog.read(metricsFile);
            sinks.trainLog.addAll(h.train());
            sinks.evalLog.addAll(h.eval());
        }
    }

    /** Keeps the lines logged up to {@code step} (no test results); returns how many unreadable lines were dropped. */
    static int keepMetricsUpTo(Path metricsFile, long step) throws IOException {
        List<String> kept = new ArrayList<>();
        int unreadable = 0;
        for (String line : Files.readAllLines(metricsFile)) {
            if (line.isBlank()) continue;
            try {
                JsonNode n = JSON.readTree(line);
                if (n.path("step").asLong(Long.MAX_VALUE) <= step && !n.has("test_loss")) kept.add(line);
            } catch (IOException bad) {
                unreadable++;
            }
        }
        Files.write(metricsFile, kept);
        return unreadable;
    }
}
