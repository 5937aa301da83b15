package dev.jtune.eval;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import org.junit.jupiter.api.Test;

import java.io.IOException;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * Each answer metric against reference.json, made by src/test/python/answer_metrics/reference_answer_metrics.py from
 * the published algorithms of SQuAD's script, rouge-score and sacreBLEU (cross-checked there with NLTK): the
 * intermediate tokenisations exactly, the scores within atol 1e-9 + rtol 1e-12 (double arithmetic in the same order).
 */
class AnswerMetricsReferenceTest {
    private static final JsonNode REF = load();

    private static JsonNode load() {
        try {
            return new ObjectMapper().readTree(Path.of("src/test/resources/answer-metrics/reference.json").toFile());
        } catch (IOException e) {
            throw new IllegalStateException(e);
        }
    }

    private static void close(double expected, double actual, String what) {
        assertTrue(Math.abs(expected - actual) <= 1e-9 + 1e-12 * Math.abs(expected),
                what + ": expected " + expected + ", got " + actual);
    }

    private static List<String> strings(JsonNode array) {
        List<String> out = new ArrayList<>();
        array.forEach(n -> out.add(n.asText()));
        return out;
    }

    @Test
    void referenceCoversAccentsPunctuationAndBothLanguages() {
        assertTrue(REF.get("cases").size() >= 20);
        long spanish = 0;
        for (JsonNode c : REF.get("cases")) if (c.get("language").asText().equals("es")) spanish++;
        assertTrue(spanish >= 8, "Spanish cases: " + spanish);
        assertTrue(REF.get("nltk_checks").get("bleu_corpora").asInt() > 0);
    }

    @Test
    void squadNormalisationExactMatchAndTokenF1() {
        for (JsonNode c : REF.get("cases")) {
            String p = c.get("prediction").asText(), r = c.get("reference").asText();
            assertEquals(c.get("squad_normalized_prediction").asText(), SquadAnswers.normalize(p), p);
            assertEquals(c.get("squad_normalized_reference").asText(), SquadAnswers.normalize(r), r);
            close(c.get("exact_match").asDouble(), SquadAnswers.exactMatch(p, r), "exact match of " + p);
            close(c.get("token_f1").asDouble(), SquadAnswers.tokenF1(p, r), "token F1 of " + p);
        }
    }

    @Test
    void rougeTokenizerDropsAccentedLettersAsRougeScoreDoes() {
        for (JsonNode c : REF.get("cases")) {
            String p = c.get("prediction").asText(), r = c.get("reference").asText();
            assertEquals(strings(c.get("rouge_tokens_prediction")), RougeL.tokenize(p), p);
            assertEquals(strings(c.get("rouge_tokens_reference")), RougeL.tokenize(r), r);
            close(c.get("rouge_l").asDouble(), RougeL.fMeasure(p, r), "ROUGE-L of " + p);
        }
        assertEquals(List.of("caf", "ol"), RougeL.tokenize("Café, olé"));   // what rouge-score does to "é"
    }

    @Test
    void sacreBleu13aTokensAndChrFStatistics() {
        for (JsonNode c : REF.get("cases")) {
            String p = c.get("prediction").asText(), r = c.get("reference").asText();
            assertEquals(strings(c.get("tokens_13a_prediction")), Tokenizer13a.tokens(PyText.rstrip(p)), p);
            assertEquals(strings(c.get("tokens_13a_reference")), Tokenizer13a.tokens(PyText.rstrip(r)), r);
        }
    }

    @Test
    void corpusScoresOfEveryCorpus() {
        JsonNode cases = REF.get("cases");
        for (JsonNode corpus : REF.get("corpora")) {
            List<String> preds = new ArrayList<>(), refs = new ArrayList<>();
            for (JsonNode i : corpus.get("indices")) {
                preds.add(cases.get(i.asInt()).get("prediction").asText());
                refs.add(cases.get(i.asInt()).get("reference").asText());
            }
            Map<AnswerMetric, Double> got = AnswerScores.score(preds, refs, List.of(AnswerMetric.values()));
            for (AnswerMetric m : AnswerMetric.values()) {
                close(corpus.get(m.key()).asDouble(), got.get(m), corpus.get("name").asText() + " " + m.key());
            }
        }
    }
}
