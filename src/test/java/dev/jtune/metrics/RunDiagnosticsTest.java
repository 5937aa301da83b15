package dev.jtune.metrics;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.util.ArrayList;
import java.util.List;
import org.junit.jupiter.api.Test;

class RunDiagnosticsTest {

    private static String only(List<String> warnings) {
        assertEquals(1, warnings.size(), String.join("\n", warnings));
        return warnings.get(0);
    }

    @Test
    void healthyRunHasNoWarnings() {
        assertEquals(List.of(), RunDiagnostics.warnings(Runs.healthy().build()));
    }

    @Test
    void healthyRunWithNoisyPlateauingLossHasNoWarnings() {
        // a pretrained model's loss drops a little and flattens; noisy evals wobble near the end but do not rise
        Runs.B b = Runs.healthy().trainCurve(s -> 1.9 + 0.3 * Math.exp(-s / 60.0), 0.05);
        b.evalCurve(s -> 2.0 + 0.25 * Math.exp(-s / 60.0) + (s == 250 ? 0.004 : 0));
        assertEquals(List.of(), RunDiagnostics.warnings(b.build()));
    }

    @Test
    void fewExamples() {
        Runs.B b = Runs.healthy();
        b.trainExamples = 40;
        b.epochs = 3;
        b.totalSteps = 8; // 8 steps x 16 = 128 sequences, 3.2 passes
        b.stepsDone = 8;
        b.trainCurve(s -> 2.0 - s / 10.0, 0);
        b.evalCurve(s -> 2.0);
        b.eval.clear();
        b.eval.add(new EvalPoint(4, 1.5, 1.8, Math.exp(1.8)));
        b.eval.add(new EvalPoint(8, 3.0, 1.6, Math.exp(1.6)));
        String w = only(RunDiagnostics.warnings(b.build()));
        assertTrue(w.startsWith("Only 40 training examples"), w);
    }

    @Test
    void manyEpochs() {
        Runs.B b = Runs.healthy();
        b.trainExamples = 400;
        b.epochs = 12;
        b.trainCurve(s -> 1.5 + 1.5 * Math.exp(-s / 80.0), 0.03);
        String w = only(RunDiagnostics.warnings(b.build()));
        assertTrue(w.contains("12.0 passes over the same 400 training examples"), w);
        assertTrue(w.contains("num_train_epochs"), w);
    }

    @Test
    void manyEpochsFromStepsAsked() {
        Runs.B b = Runs.healthy();
        b.trainExamples = 200; // 300 steps x 16 = 4,800 sequences = 24 passes, whatever "epochs" says
        String w = only(RunDiagnostics.warnings(b.build()));
        assertTrue(w.contains("24.0 passes"), w);
    }

    @Test
    void overfitting() {
        Runs.B b = Runs.healthy().trainCurve(s -> 0.2 + 2.8 * Math.exp(-s / 60.0), 0.02);
        b.evalCurve(s -> 1.2 + 1.6 * Math.exp(-s / 40.0) + 0.004 * Math.max(0, s - 150));
        String w = only(RunDiagnostics.warnings(b.build()));
        assertTrue(w.startsWith("Overfitting: the validation loss rose from its best"), w);
        assertTrue(w.contains("early_stopping_patience"), w);
        assertTrue(w.contains("weight_decay"), w);
        assertTrue(w.contains("step 150"), w);
        for (String key : List.of("training.neftune_noise_alpha", "training.label_smoothing_factor", "training.weight_decay",
                "lora.enabled", "model.attention_dropout", "training.early_stopping_patience", "more training data")) {
            assertTrue(w.contains(key), key + " in: " + w);
        }
    }

    /**
     * Validation still falls (best at the last evaluation) while training falls fast: the widening gap is a note, not
     * overfitting, and suggests no checkpoint (the run ends on its best).
     */
    @Test
    void wideningGapWithFallingValidationLossIsANote() {
        Runs.B b = Runs.healthy().trainCurve(s -> 0.2 + 2.8 * Math.exp(-s / 60.0), 0.02);
        b.evalCurve(s -> 1.2 + 1.6 * Math.exp(-s / 40.0));
        String w = only(RunDiagnostics.warnings(b.build()));
        assertTrue(w.startsWith("Note: the gap between validation and training loss widened"), w);
        assertTrue(w.contains("at step 300") && w.contains("still fell to its best at the last evaluation"), w);
        assertFalse(w.contains("verfitting"), w);
        assertFalse(w.contains("checkpoint from step"), w);
    }

    /** The same gap with a validation loss that has just risen from its best: overfitting starts, with the remedies. */
    @Test
    void wideningGapWithRisingValidationLossIsOverfitting() {
        Runs.B b = Runs.healthy().trainCurve(s -> 0.2 + 2.8 * Math.exp(-s / 60.0), 0.02);
        Runs.B probe = Runs.healthy().trainCurve(s -> 0.2 + 2.8 * Math.exp(-s / 60.0), 0.02);
        probe.evalCurve(s -> 1.2 + 1.6 * Math.exp(-s / 40.0));
        List<EvalPoint> evals = probe.build().eval();
        long last = evals.get(evals.size() - 1).step(), before = evals.get(evals.size() - 2).step();
        b.evalCurve(s -> 1.2 + 1.6 * Math.exp(-s / 40.0) + (s == last ? 0.01 : 0));
        String w = only(RunDiagnostics.warnings(b.build()));
        assertTrue(w.startsWith("Overfitting starts: the gap between validation and training loss widened"), w);
        assertTrue(w.contains(String.format("rose from its best at step %d", before)), w);
        assertTrue(w.contains("checkpoint from step " + before), w);
        for (String key : List.of("training.neftune_noise_alpha: 5", "training.label_smoothing_factor: 0.1", "training.weight_decay",
                "lora.enabled: true", "model.attention_dropout: 0.1", "training.early_stopping_patience: 2", "more training data")) {
            assertTrue(w.contains(key), key + " in: " + w);
        }
    }

    /** The remedies use the run's own keys: its family's dropout names, LoRA's dropout when LoRA trains, the current values. */
    @Test
    void remediesNameTheRunsOwnKeysAndValues() {
        Runs.B b = Runs.healthy();
        b.facts.put("model", "runs/tiny-gpt2 (gpt2, 124,439,808 parameters)");
        RunRecord gpt2 = new RunRecord("t", """
                model:
                  path: runs/tiny-gpt2
                training:
                  weight_decay: 0.0
                  neftune_noise_alpha: null
                  label_smoothing_factor: 0.0
                  early_stopping_patience: 3
                lora:
                  enabled: true
                  dropout: 0.0
                """, List.of(), 1000, 1, 100, 0, 10, 10, 1, 8, List.of(), List.of(), null, null, null, null, "", 1, b.facts);
        String r = RunDiagnostics.remedies(gpt2, 40);
        for (String part : List.of("model.resid_pdrop", "model.attn_pdrop", "model.embd_pdrop", "lora.dropout (PEFT's lora_dropout) to 0.05-0.1 (now 0.0)",
                "training.weight_decay to 0.01-0.1 (now 0.0)", "training.neftune_noise_alpha: 5 (now off)",
                "training.label_smoothing_factor: 0.1 (now 0.0)", "checkpoint from step 40")) {
            assertTrue(r.contains(part), part + " in: " + r);
        }
        assertFalse(r.contains("attention_dropout"), r);
        assertFalse(r.contains("early_stopping_patience"), "already set: " + r);
        // a run that ends on its best evaluation (step 10 of 10) is not told to go back to it
        assertFalse(RunDiagnostics.remedies(gpt2, 10).contains("checkpoint from step"), RunDiagnostics.remedies(gpt2, 10));
    }

    @Test
    void oneBadEvalIsNotOverfitting() {
        Runs.B b = Runs.healthy();
        b.evalCurve(s -> 1.6 + 1.4 * Math.exp(-s / 90.0) + (s == 300 ? 0.3 : 0));
        assertEquals(List.of(), RunDiagnostics.warnings(b.build()), "only the last eval is above the best");
    }

    @Test
    void risingValidationWithFlatTrainLossIsNotCalledOverfitting() {
        Runs.B b = Runs.healthy().trainCurve(s -> s <= 150 ? 3.0 - s / 100.0 : 1.5, 0);
        b.evalCurve(s -> s <= 150 ? 3.0 - s / 100.0 : 1.5 + (s - 150) / 100.0);
        assertEquals(List.of(), RunDiagnostics.warnings(b.build()));
    }

    @Test
    void lossNotDecreasing() {
        Runs.B b = Runs.healthy().trainCurve(s -> 2.5, 0.03);
        b.evalCurve(s -> 2.6);
        String w = only(RunDiagnostics.warnings(b.build()));
        assertTrue(w.startsWith("Training loss did not clearly go down"), w);
        assertTrue(w.contains("learning_rate"), w);
    }

    @Test
    void lossGoingUp() {
        Runs.B b = Runs.healthy().trainCurve(s -> 2.0 + s / 100.0, 0.01);
        b.evalCurve(s -> 2.6);
        String w = only(RunDiagnostics.warnings(b.build()));
        assertTrue(w.startsWith("Training loss went up"), w);
    }

    @Test
    void nonFiniteLosses() {
        Runs.B b = Runs.healthy();
        List<TrainPoint> t = new ArrayList<>(b.train);
        for (int i = 0; i < t.size(); i++) {
            TrainPoint p = t.get(i);
            if (p.step() == 120 || p.step() == 125) {
                t.set(i, new TrainPoint(p.step(), p.epoch(), Double.NaN, p.learningRate(), Double.POSITIVE_INFINITY, p.tokensPerSecond()));
            }
        }
        b.train = t;
        String w = only(RunDiagnostics.warnings(b.build()));
        assertTrue(w.startsWith("Non-finite losses (NaN or infinity): 2 logged training losses (first at step 120)"), w);
        assertTrue(w.contains("learning_rate"), w);
    }

    @Test
    void noValidationData() {
        Runs.B b = Runs.healthy();
        b.validationExamples = 0;
        b.eval.clear();
        String w = only(RunDiagnostics.warnings(b.build()));
        assertTrue(w.startsWith("No validation data, so overfitting cannot be detected"), w);
    }

    @Test
    void validationDataNeverEvaluated() {
        Runs.B b = Runs.healthy();
        b.eval.clear();
        String w = only(RunDiagnostics.warnings(b.build()));
        assertTrue(w.contains("160 validation examples but no evaluation ran"), w);
    }

    @Test
    void tinyValidationSet() {
        Runs.B b = Runs.healthy();
        b.validationExamples = 8;
        String w = only(RunDiagnostics.warnings(b.build()));
        assertTrue(w.startsWith("Only 8 validation examples"), w);
    }

    @Test
    void severalTrapsAtOnceMostSeriousFirst() {
        Runs.B b = Runs.healthy().trainCurve(s -> 2.5, 0.01);
        b.trainExamples = 50;
        b.validationExamples = 0;
        b.eval.clear();
        List<String> w = RunDiagnostics.warnings(b.build());
        assertEquals(4, w.size(), String.join("\n", w)); // not decreasing, few examples, 96 epochs, no validation
        assertTrue(w.get(0).startsWith("Training loss"), w.get(0));
        assertTrue(w.get(w.size() - 1).startsWith("No validation data"), w.get(w.size() - 1));
    }

    @Test
    void emptyRunDoesNotCrash() {
        RunRecord r = new RunRecord(null, null, null, 0, 0, 0, 0, 0, 0, 0, 0, null, null, null, null, null, null, null, 0, null);
        assertEquals(List.of(RunDiagnostics.warnings(r).get(0)), RunDiagnostics.warnings(r));
    }
}
