package dev.jtune.config;

import dev.jtune.util.UserError;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.nio.file.Path;
import java.util.List;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

/** The generation keys of {@code training:}: defaults, and the mistakes refused with exit 2 and what to do instead. */
class GenerationKeysTest {
    @TempDir
    Path tmp;

    private Experiment load(String dataExtra, String trainingExtra) throws Exception {
        ConfigFixture fx = new ConfigFixture(tmp);
        return fx.load(fx.minimal("", dataExtra, trainingExtra));
    }

    private String refused(String dataExtra, String trainingExtra) {
        UserError e = assertThrows(UserError.class, () -> load(dataExtra, trainingExtra));
        return e.getMessage();
    }

    @Test
    void defaultsAreOffWithAllMetrics() throws Exception {
        TrainingSection t = load("", "").training();
        assertFalse(t.predictWithGenerate());
        assertEquals(64, t.generationMaxLength());
        assertEquals(1, t.generationNumBeams());
        assertEquals(32, t.evalGenerationSamples());
        assertEquals(List.of("exact_match", "token_f1", "rouge_l", "bleu", "chrf"), t.generationMetrics());
    }

    @Test
    void instructionDataWithChosenMetricsLoads() throws Exception {
        TrainingSection t = load("format: instruction\n",
                "predict_with_generate: true\ngeneration_metrics: [rouge_l, chrf]\neval_generation_samples: 4\n").training();
        assertTrue(t.predictWithGenerate());
        assertEquals(List.of("rouge_l", "chrf"), t.generationMetrics());
        assertEquals(4, t.evalGenerationSamples());
    }

    @Test
    void textDataIsRefusedWithTheReason() {
        String m = refused("format: text\n", "predict_with_generate: true\n");
        assertTrue(m.contains("training.predict_with_generate") && m.contains("no prompt/answer split")
                && m.contains("instruction or chat"), m);
    }

    @Test
    void anUnknownMetricNamesTheClosest() {
        String m = refused("format: instruction\n", "predict_with_generate: true\ngeneration_metrics: [rouge_l, rougeL, bleu]\n");
        assertTrue(m.contains("training.generation_metrics") && m.contains("unknown metric 'rougeL'")
                && m.contains("did you mean 'rouge_l'") && m.contains("exact_match, token_f1, rouge_l, bleu, chrf"), m);
    }

    @Test
    void beamsAreRefusedUntilBuilt() {
        String m = refused("format: instruction\n", "predict_with_generate: true\ngeneration_num_beams: 4\n");
        assertTrue(m.contains("training.generation_num_beams") && m.contains("beam search is not built"), m);
        assertTrue(refused("", "generation_max_length: 0\n").contains("training.generation_max_length: must be at least 1"));
    }
}
