package dev.jtune.train;

import dev.jtune.train.optim.LrSchedule;
import dev.jtune.train.step.ActivationCheckpointing;
import dev.jtune.train.step.TrainStep;
import dev.jtune.train.step.Trainable;
import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import dev.jtune.config.Precision;
import dev.jtune.config.TrainingSection.Scheduler;
import dev.jtune.data.Batch;
import dev.jtune.model.ModelConfig;
import org.bytedeco.pytorch.Device;
import org.junit.jupiter.api.Test;

import java.io.IOException;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.TreeSet;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * jtune's optimizer step against an independent PyTorch run written from transformers' Trainer
 * (src/test/python/trainer_reference/trainer_reference.py; its output is committed): weight decay on transformers'
 * parameter groups, warmup, gradient clipping and accumulation all active, with a learning rate large enough that a
 * wrong rule shows (the script re-runs with three wrong rules and records how far each lands: 0.4% to 80%).
 */
class TrainerReferenceTest {
    static final Path MODEL = Path.of("src/test/resources/models/gpt2-tiny");
    static final Path REFERENCE = Path.of("src/test/resources/trainer_reference/reference_run.json");
    static final double RTOL = 1e-4;

    static JsonNode reference() throws IOException {
        return new ObjectMapper().readTree(REFERENCE.toFile());
    }

    /** The run step by step through the trainer's own parts: Trainable.Full, AdamW, LrSchedule, the optimizer step. */
    @Test
    void lossesGradNormsAndLearningRatesMatchTransformersStepByStep() throws IOException {
        JsonNode ref = reference(), hp = ref.get("hyperparameters");
        List<JsonNode> steps = new ArrayList<>();
        ref.get("steps").forEach(steps::add);
        assertTrue(steps.size() >= 8);
        Device cpu = new Device("cpu");
        ModelConfig config = ModelConfig.read(MODEL);
        try (Trainable trained = new Trainable.Full(config, cpu, dev.jtune.kernels.Ops.AUTO)) {
            // the reference ran with the model's dropout off (attn_pdrop = resid_pdrop = embd_pdrop = 0): no random masks
            trained.model.setDropout(dev.jtune.model.ModelDropout.NONE);
            LrSchedule schedule = new LrSchedule(Scheduler.valueOf(hp.get("lr_scheduler_type").asText().toUpperCase(Locale.ROOT)),
                    hp.get("learning_rate").asDouble(), hp.get("warmup_steps").asLong(), hp.get("max_steps").asLong());
            // the factory every run builds its step with, on the reference's hyperparameters
            TrainStep step = TrainStep.assemble(trained, new TrainStep.Settings(Precision.FP32, hp.get("weight_decay").asDouble(),
                    hp.get("adam_beta1").asDouble(), hp.get("adam_beta2").asDouble(), hp.get("adam_epsilon").asDouble(),
                    hp.get("max_grad_norm").asDouble(), ActivationCheckpointing.Settings.OFF, 0.0, 0,
                    dev.jtune.distributed.DataParallel.DEFAULT_BUCKET_CAP_MB, null), dev.jtune.distributed.DistGroup.single());
            double worstLoss = 0, worstNorm = 0;
            for (int s = 0; s < steps.size(); s++) {
                JsonNode want = steps.get(s);
                double lr = schedule.at(s);
                assertClose(want.get("learning_rate").asDouble(), lr, "learning rate", s);
                TrainStep.Result r = step.step(batches(want.get("micro_batches")), lr);
                assertClose(want.get("loss").asDouble(), r.loss(), "loss", s);
                assertClose(want.get("grad_norm").asDouble(), r.gradNorm(), "grad_norm (before clipping)", s);
                worstLoss = Math.max(worstLoss, Math.abs(r.loss() / want.get("loss").asDouble() - 1));
                worstNorm = Math.max(worstNorm, Math.abs(r.gradNorm() / want.get("grad_norm").asDouble() - 1));
            }
            System.out.printf(Locale.ROOT, "TrainerReferenceTest: %d steps, largest relative difference: loss %.2e, grad_norm %.2e%n",
                    steps.size(), worstLoss, worstNorm);
        }
    }

    /** jtune's rule by parameter kind gives the set transformers' get_decay_parameter_names gives: embeddings decay. */
    @Test
    void decayedParametersAreTransformersSet() throws IOException {
        TreeSet<String> want = new TreeSet<>();
        reference().get("decayed_parameters").forEach(n -> want.add(n.asText()));
        TreeSet<String> got = new TreeSet<>();
        ModelConfig config = ModelConfig.read(MODEL);
        var decayed = Trainable.fullDecay(config);
        for (String n : dev.jtune.model.ParameterSpec.of(config).keySet()) if (decayed.test(n)) got.add(n);
        assertEquals(want, got);
        assertTrue(got.contains("transformer.wte.weight") && got.contains("transformer.wpe.weight"));
    }

    /** Every lr_scheduler_type (and its lr_scheduler_kwargs) at every step of a 20-step run, with and without warmup. */
    @Test
    void everySchedulerMatchesTransformersLambda() throws IOException {
        int cases = 0;
        for (JsonNode c : reference().get("schedules")) {
            Map<String, Double> kwargs = new LinkedHashMap<>();
            c.get("kwargs").fields().forEachRemaining(e -> kwargs.put(e.getKey(), e.getValue().asDouble()));
            Scheduler kind = Scheduler.valueOf(c.get("type").asText().toUpperCase(Locale.ROOT));
            LrSchedule s = new LrSchedule(kind, c.get("learning_rate").asDouble(), c.get("warmup").asLong(), c.get("total").asLong(), kwargs);
            JsonNode values = c.get("values");
            for (int step = 0; step < values.size(); step++) {
                double want = values.get(step).asDouble();
                assertEquals(want, s.at(step), 1e-15 + 1e-12 * Math.abs(want), c.get("type").asText() + " " + kwargs + " warmup "
                        + c.get("warmup") + " at step " + step);
            }
            cases++;
        }
        assertEquals(26, cases);
        for (JsonNode c : reference().get("warmup_steps_from_ratio")) {
            assertEquals(c.get("warmup").asLong(), LrSchedule.warmupSteps(0, c.get("warmup_ratio").asDouble(), c.get("total").asLong()));
        }
    }

    static void assertClose(double want, double got, String what, int step) {
        assertEquals(want, got, RTOL * Math.abs(want) + 1e-12, what + " at step " + (step + 1));
    }

    static List<Batch> batches(JsonNode micro) {
        List<Batch> out = new ArrayList<>();
        for (JsonNode b : micro) {
            long[][] ids = rows(b.get("input_ids")), labels = rows(b.get("labels"));
            int targets = 0, tokens = 0;
            for (long[] row : labels) for (int t = 1; t < row.length; t++) if (row[t] != dev.jtune.util.Labels.IGNORE_INDEX) targets++;
            for (long[] row : ids) tokens += row.length;
            out.add(new Batch(ids, labels, null, null, targets, tokens));
        }
        return out;
    }

    static long[][] rows(JsonNode n) {
        long[][] out = new long[n.size()][];
        for (int r = 0; r < n.size(); r++) {
            out[r] = new long[n.get(r).size()];
            for (int t = 0; t < out[r].length; t++) out[r][t] = n.get(r).get(t).asLong();
        }
        return out;
    }
}
