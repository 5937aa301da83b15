package dev.jtune.config;

import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.nio.file.Path;
import java.util.List;
import java.util.Map;

import static dev.jtune.config.ConfigFixture.GPT2_MODEL;
import static dev.jtune.config.ConfigFixture.GPT2_TOKENIZER;
import static dev.jtune.config.ConfigFixture.assertProblem;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNull;

/**
 * The regularisation keys (issue 17): training.neftune_noise_alpha and label_smoothing_factor, and the model's dropout
 * keys (model.attention_dropout for Llama-family models; model.attn_pdrop, resid_pdrop, embd_pdrop for GPT-2): read,
 * written back, and mistakes refused by key; a dropout key of the other family is refused against config.json.
 */
class RegularisationKeysTest {
    @TempDir
    Path tmp;
    ConfigFixture fx;

    @BeforeEach
    void setUp() {
        fx = new ConfigFixture(tmp);
    }

    @Test
    void offByDefaultThenReadAndWrittenBack() {
        Experiment d = fx.load(fx.with("training", ""));
        assertNull(d.training().neftuneNoiseAlpha());
        assertEquals(0.0, d.training().labelSmoothingFactor());
        assertEquals(Map.of(), d.model().dropoutOverrides(), "config.json's dropout");
        Experiment e = fx.load(fx.minimal("attention_dropout: 0.1", "", "neftune_noise_alpha: 5\nlabel_smoothing_factor: 0.1"));
        assertEquals(5.0, e.training().neftuneNoiseAlpha());
        assertEquals(0.1, e.training().labelSmoothingFactor());
        assertEquals(Map.of("attention_dropout", 0.1), e.model().dropoutOverrides());
        Path resolved = tmp.resolve("resolved.yaml");
        e.writeResolved(resolved);
        assertEquals(e, Experiment.load(resolved, List.of()), "config.resolved.yaml reads back the same keys");
    }

    @Test
    void gpt2DropoutKeysAreReadForGpt2() {
        Experiment e = fx.load("model:\n  path: " + GPT2_MODEL + "\n  tokenizer: " + GPT2_TOKENIZER
                + "\n  attn_pdrop: 0.0\n  resid_pdrop: 0.05\n  embd_pdrop: 0.0\ndata:\n  train_file: " + fx.train
                + "\n  max_seq_length: 64\ntraining:\n  output_dir: " + fx.out + "\n");
        assertEquals(Map.of("attn_pdrop", 0.0, "resid_pdrop", 0.05, "embd_pdrop", 0.0), e.model().dropoutOverrides());
    }

    @Test
    void outOfRangeValuesAreRefusedByKey() {
        assertProblem(fx.fails(fx.with("training", "label_smoothing_factor: 1.0")), "training.label_smoothing_factor",
                "must be in [0, 1)");
        assertProblem(fx.fails(fx.with("training", "label_smoothing_factor: -0.1")), "training.label_smoothing_factor",
                "must be in [0, 1)");
        assertProblem(fx.fails(fx.with("training", "neftune_noise_alpha: -5")), "training.neftune_noise_alpha",
                "must not be negative");
        assertProblem(fx.fails(fx.with("model", "attention_dropout: 1.5")), "model.attention_dropout", "must be in [0, 1)");
        assertProblem(fx.fails(fx.with("training", "neftune_noise_alpha: lots")), "training.neftune_noise_alpha", "expected");
    }

    @Test
    void aDropoutKeyOfTheOtherFamilyIsRefused() {
        String m = fx.fails(fx.with("model", "resid_pdrop: 0.1"));
        assertProblem(m, "model.resid_pdrop", "a llama model has no resid_pdrop", "config.json", "model.attention_dropout");
        String g = fx.fails("model:\n  path: " + GPT2_MODEL + "\n  tokenizer: " + GPT2_TOKENIZER
                + "\n  attention_dropout: 0.1\ndata:\n  train_file: " + fx.train + "\n  max_seq_length: 64\ntraining:\n  output_dir: " + fx.out + "\n");
        assertProblem(g, "model.attention_dropout", "a gpt2 model has no attention_dropout", "model.attn_pdrop, model.resid_pdrop, model.embd_pdrop");
    }
}
