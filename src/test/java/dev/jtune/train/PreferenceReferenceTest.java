package dev.jtune.train;

import dev.jtune.train.step.TrainStep;
import dev.jtune.train.step.Trainable;
import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import dev.jtune.config.Precision;
import dev.jtune.config.PreferenceSection;
import dev.jtune.config.TrainingSection.Method;
import dev.jtune.data.Batch;
import dev.jtune.data.Batcher;
import dev.jtune.data.Example;
import dev.jtune.data.SequenceKey;
import dev.jtune.kernels.Ops;
import dev.jtune.model.ModelConfig;
import dev.jtune.model.ModelDropout;
import dev.jtune.model.ModelLoader;
import dev.jtune.train.preference.PreferenceLoss;
import dev.jtune.train.preference.PreferenceStepLoss;
import dev.jtune.train.preference.ReferenceLogps;
import dev.jtune.util.Labels;
import org.bytedeco.pytorch.Device;
import org.bytedeco.pytorch.global.torch.ScalarType;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.Iterator;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.concurrent.TimeUnit;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * jtune's preference losses and reward metrics against an independent PyTorch restatement of TRL's trainers
 * (src/test/python/preference/preference_reference.py: DPO sigmoid and IPO, ORPO, SimPO, KTO), step by step within
 * 1e-5, on the tiny GPT-2 fixture's real safetensors: three full fine-tuning steps each, with a frozen reference copy.
 * The committed output is compared always; where /usr/bin/python3 has torch (CI installs python3-torch) the script
 * is also run as a real process and its fresh output compared the same way; with CI=true a missing torch fails the
 * test instead of skipping it.
 */
class PreferenceReferenceTest {
    static final Path MODEL = Path.of("src/test/resources/models/gpt2-tiny");
    static final Path COMMITTED = Path.of("src/test/resources/preference/reference_run.json");
    static final Path SCRIPT = Path.of("src/test/python/preference/preference_reference.py");
    static final double TOL = 1e-5;

    @TempDir
    Path tmp;

    @Test
    void committedReferenceMatchesStepByStep() throws IOException {
        compare(new ObjectMapper().readTree(COMMITTED.toFile()));
    }

    @Test
    void freshRunOfTheScriptMatchesStepByStep() throws Exception {
        Path python = Path.of("/usr/bin/python3");
        boolean torch = Files.isExecutable(python) && hasTorch(python);
        // CI must run the independent reference, not skip it: .ci/run installs python3-torch
        if (!torch && "true".equals(System.getenv("CI"))) {
            org.junit.jupiter.api.Assertions.fail("CI must run " + SCRIPT + ": /usr/bin/python3 has no torch (apt-get install python3-torch in .ci/run)");
        }
        org.junit.jupiter.api.Assumptions.assumeTrue(torch, "/usr/bin/python3 with torch is not installed (CI installs python3-torch)");
        Path out = tmp.resolve("fresh.json");
        Process p = new ProcessBuilder(python.toString(), SCRIPT.toString(), out.toString()).redirectErrorStream(true).start();
        String log = new String(p.getInputStream().readAllBytes());
        assertTrue(p.waitFor(120, TimeUnit.SECONDS), "the script finished");
        assertEquals(0, p.exitValue(), log);
        JsonNode fresh = new ObjectMapper().readTree(out.toFile());
        compare(fresh);
    }

    private static boolean hasTorch(Path python) throws Exception {
        Process p = new ProcessBuilder(python.toString(), "-c", "import torch").redirectErrorStream(true).start();
        p.getInputStream().readAllBytes();
        return p.waitFor(60, TimeUnit.SECONDS) && p.exitValue() == 0;
    }

    private void compare(JsonNode ref) {
        assertEquals(5, ref.get("cases").size());
        for (JsonNode c : ref.get("cases")) {
            List<JsonNode> want = new ArrayList<>();
            c.get("steps").forEach(want::add);
            List<Map.Entry<Double, Map<String, Double>>> got = runJtune(ref, c.get("settings"), want.size());
            String name = c.get("settings").get("name").asText();
            double worst = 0;
            for (int s = 0; s < want.size(); s++) {
                worst = Math.max(worst, close(want.get(s).get("loss").asDouble(), got.get(s).getKey(), name + " step " + (s + 1) + " loss"));
                JsonNode wm = want.get(s).get("metrics");
                Map<String, Double> gm = got.get(s).getValue();
                for (var it = wm.fieldNames(); it.hasNext(); ) {
                    String k = it.next();
                    assertTrue(gm.containsKey(k), name + " step " + (s + 1) + ": jtune logs no " + k + " (has " + gm.keySet() + ")");
                    worst = Math.max(worst, close(wm.get(k).asDouble(), gm.get(k), name + " step " + (s + 1) + " " + k));
                }
            }
            if (name.equals("dpo_sigmoid")) assertEquals(Math.log(2), got.get(0).getKey(), 1e-6, "DPO's first loss is ln 2");
            System.out.printf(Locale.ROOT, "PreferenceReferenceTest %s: %d steps, largest difference %.2e%n", name, want.size(), worst);
        }
    }

    private static double close(double want, double got, String what) {
        double diff = Math.abs(want - got);
        assertTrue(diff <= TOL * Math.max(1, Math.abs(want)), what + ": reference " + want + ", jtune " + got);
        return diff;
    }

    /** Three steps of jtune's own optimizer step with the case's preference loss; per step its loss and metrics. */
    private static List<Map.Entry<Double, Map<String, Double>>> runJtune(JsonNode ref, JsonNode s, int steps) {
        Method method = Method.valueOf(s.get("method").asText().toUpperCase(Locale.ROOT));
        PreferenceSection settings = new PreferenceSection(s.get("beta").asDouble(),
                s.has("loss_type") ? PreferenceSection.LossType.valueOf(s.get("loss_type").asText().toUpperCase(Locale.ROOT)) : null,
                s.has("label_smoothing") ? s.get("label_smoothing").asDouble() : null, null, null, null, null, null,
                s.has("desirable_weight") ? s.get("desirable_weight").asDouble() : null,
                s.has("undesirable_weight") ? s.get("undesirable_weight").asDouble() : null,
                s.has("simpo_gamma") ? s.get("simpo_gamma").asDouble() : null,
                s.has("cpo_alpha") ? s.get("cpo_alpha").asDouble() : null,
                "chosen", "rejected", "completion", "label").resolvedFor(method);
        Map<SequenceKey, Boolean> desirable = new HashMap<>();
        List<Example> examples = new ArrayList<>();
        int itemsPerStep;
        if (method == Method.KTO) {
            for (JsonNode e : ref.get("kto_examples")) {
                Example ex = example(e.get("prompt"), e.get("completion"));
                desirable.put(SequenceKey.of(ex), e.get("label").asBoolean());
                examples.add(ex);
                examples.add(example(e.get("prompt"), e.get("kl_completion")));
            }
            itemsPerStep = ref.get("kto_examples").size() / steps;
        } else {
            for (JsonNode p : ref.get("pairs")) {
                examples.add(example(p.get("prompt"), p.get("chosen")));
                examples.add(example(p.get("prompt"), p.get("rejected")));
            }
            itemsPerStep = ref.get("pairs").size() / steps;
        }
        Device cpu = new Device("cpu");
        ModelConfig config = ModelConfig.read(MODEL);
        List<Map.Entry<Double, Map<String, Double>>> out = new ArrayList<>();
        Trainable trained = new Trainable.Full(config, cpu, Ops.AUTO);
        trained.model.setDropout(ModelDropout.NONE);
        // the factory every run builds its step with (no weight decay, no clipping), with the case's preference loss
        TrainStep.Settings plain = TrainStep.Settings.defaults(Precision.FP32, 0.0, 0.0).withLoss((model, lora) ->
                new PreferenceStepLoss(new PreferenceLoss(method, settings),
                        ReferenceLogps.frozen(ModelLoader.load(MODEL, ScalarType.Float, cpu, Ops.AUTO)), desirable));
        try (TrainStep step = TrainStep.assemble(trained, plain, dev.jtune.distributed.DistGroup.single())) {
            Batcher batcher = new Batcher(examples, 2, itemsPerStep, false, 0, false, 64, ref.get("pad_id").asLong(), 0, 1);
            try (Batcher.BatchIterator it = batcher.epoch(0, 0)) {
                for (int i = 0; i < steps; i++) {
                    Batch b = it.next();
                    TrainStep.Result r = step.step(List.of(b), ref.get("learning_rate").asDouble());
                    out.add(Map.entry(r.loss(), step.loss().stepMetrics()));
                }
            }
        }
        return out;
    }

    private static Example example(JsonNode prompt, JsonNode completion) {
        long[] ids = new long[prompt.size() + completion.size()], labels = new long[ids.length];
        for (int i = 0; i < prompt.size(); i++) {
            ids[i] = prompt.get(i).asLong();
            labels[i] = Labels.IGNORE_INDEX;
        }
        for (int i = 0; i < completion.size(); i++) ids[prompt.size() + i] = labels[prompt.size() + i] = completion.get(i).asLong();
        return new Example(ids, labels);
    }
}
