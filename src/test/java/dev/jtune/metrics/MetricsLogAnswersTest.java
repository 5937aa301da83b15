package dev.jtune.metrics;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.nio.file.Files;
import java.nio.file.Path;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

/** Scores of generated answers in metrics.jsonl: prefixed names, non-finite as null, and read() passing over them. */
class MetricsLogAnswersTest {
    @TempDir
    Path dir;

    @Test
    void prefixedScoresOnTheirOwnLineThatReadSkips() throws Exception {
        Path f = dir.resolve("metrics.jsonl");
        try (MetricsLog log = new MetricsLog(f, false)) {
            log.eval(new EvalPoint(3, 1.0, 2.5, Math.exp(2.5)));
            Map<String, Double> v = new LinkedHashMap<>();
            v.put("rouge_l", 41.5);
            v.put("bleu", 7.25);
            v.put("generation_tokens_per_second", Double.NaN);
            log.answers("eval", 3, v);
        }
        List<String> lines = Files.readAllLines(f);
        assertEquals(2, lines.size());
        JsonNode o = new ObjectMapper().readTree(lines.get(1));
        assertEquals(3, o.get("step").asLong());
        assertEquals(41.5, o.get("eval_rouge_l").asDouble());
        assertEquals(7.25, o.get("eval_bleu").asDouble());
        assertTrue(o.get("eval_generation_tokens_per_second").isNull() && o.get("nonfinite").asBoolean(), o.toString());
        MetricsLog.History h = MetricsLog.read(f);
        assertEquals(1, h.eval().size());
        assertEquals(0, h.malformedLines());
    }
}
