package dev.jtune.metrics;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assumptions.assumeTrue;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import dev.jtune.util.UserError;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;
import java.util.ArrayList;
import java.util.Iterator;
import java.util.List;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

class MetricsLogTest {
    private static final ObjectMapper JSON = new ObjectMapper();

    @TempDir
    Path dir;

    private static List<JsonNode> parse(Path file) throws Exception {
        List<JsonNode> out = new ArrayList<>();
        for (String line : Files.readAllLines(file, StandardCharsets.UTF_8)) {
            JsonNode n = JSON.readTree(line); // throws on invalid JSON
            assertTrue(n.isObject(), line);
            out.add(n);
        }
        return out;
    }

    private static List<String> keys(JsonNode n) {
        List<String> k = new ArrayList<>();
        for (Iterator<String> it = n.fieldNames(); it.hasNext();) {
            k.add(it.next());
        }
        return k;
    }

    @Test
    void linesHaveTrainerKeysAndParseBack() throws Exception {
        Path file = dir.resolve("out/metrics.jsonl"); // parent created
        try (MetricsLog log = new MetricsLog(file, false)) {
            log.train(new TrainPoint(10, 0.25, 2.5, 4e-5, 1.25, 1234.5));
            log.eval(new EvalPoint(20, 0.5, 2.25, Math.exp(2.25)));
            log.test(2.125, Math.exp(2.125), 40);
        }
        List<JsonNode> lines = parse(file);
        assertEquals(3, lines.size());

        JsonNode t = lines.get(0);
        assertEquals(List.of("step", "epoch", "loss", "learning_rate", "grad_norm", "tokens_per_second"), keys(t));
        assertEquals(10, t.get("step").asLong());
        assertTrue(t.get("step").isIntegralNumber());
        assertEquals(0.25, t.get("epoch").asDouble());
        assertEquals(2.5, t.get("loss").asDouble());
        assertEquals(4e-5, t.get("learning_rate").asDouble());
        assertEquals(1.25, t.get("grad_norm").asDouble());
        assertEquals(1234.5, t.get("tokens_per_second").asDouble());

        JsonNode e = lines.get(1);
        assertEquals(List.of("step", "epoch", "eval_loss", "eval_perplexity"), keys(e));
        assertEquals(20, e.get("step").asLong());
        assertEquals(2.25, e.get("eval_loss").asDouble());
        assertEquals(Math.exp(2.25), e.get("eval_perplexity").asDouble());

        JsonNode s = lines.get(2);
        assertEquals(List.of("step", "test_loss", "test_perplexity"), keys(s));
        assertEquals(40, s.get("step").asLong());
        assertEquals(2.125, s.get("test_loss").asDouble());
    }

    @Test
    void nonFiniteValuesBecomeNullWithMarker() throws Exception {
        Path file = dir.resolve("metrics.jsonl");
        try (MetricsLog log = new MetricsLog(file, false)) {
            log.train(new TrainPoint(1, 0.1, Double.NaN, 1e-4, Double.POSITIVE_INFINITY, 100));
            log.eval(new EvalPoint(2, 0.2, Double.NEGATIVE_INFINITY, Double.NaN));
            log.test(Double.NaN, Double.NaN, 3);
            log.train(new TrainPoint(4, 0.4, 1.0, 1e-4, 0.5, 100));
        }
        String text = Files.readString(file);
        assertFalse(text.contains("NaN"), text);
        assertFalse(text.contains("Infinity"), text);
        List<JsonNode> lines = parse(file);
        assertEquals(4, lines.size());
        JsonNode t = lines.get(0);
        assertTrue(t.get("loss").isNull());
        assertTrue(t.get("grad_norm").isNull());
        assertEquals(1e-4, t.get("learning_rate").asDouble());
        assertTrue(t.get("nonfinite").asBoolean());
        assertTrue(lines.get(1).get("eval_loss").isNull());
        assertTrue(lines.get(1).get("eval_perplexity").isNull());
        assertTrue(lines.get(1).get("nonfinite").asBoolean());
        assertTrue(lines.get(2).get("test_loss").isNull());
        assertTrue(lines.get(2).get("nonfinite").asBoolean());
        assertFalse(lines.get(3).has("nonfinite"), "finite lines carry no marker");

        MetricsLog.History h = MetricsLog.read(file);
        assertEquals(2, h.train().size());
        assertTrue(Double.isNaN(h.train().get(0).loss()));
        assertTrue(Double.isNaN(h.eval().get(0).loss()));
        assertTrue(Double.isNaN(h.testLoss()));
    }

    @Test
    void eachLineIsOnDiskBeforeClose() throws Exception {
        Path file = dir.resolve("metrics.jsonl");
        try (MetricsLog log = new MetricsLog(file, false)) {
            log.train(new TrainPoint(1, 0.0, 3.0, 1e-4, 1.0, 10));
            assertEquals(1, parse(file).size(), "flushed per line");
            log.eval(new EvalPoint(1, 0.0, 3.0, Math.exp(3.0)));
            assertEquals(2, parse(file).size());
        }
    }

    @Test
    void appendKeepsEarlierLinesAndRepairsACutLine() throws Exception {
        Path file = dir.resolve("metrics.jsonl");
        try (MetricsLog log = new MetricsLog(file, false)) {
            log.train(new TrainPoint(1, 0.0, 3.0, 1e-4, 1.0, 10));
        }
        // a crash in the middle of a line
        Files.writeString(file, "{\"step\":2,\"epo", StandardOpenOption.APPEND);
        try (MetricsLog log = new MetricsLog(file, true)) {
            log.train(new TrainPoint(2, 0.1, 2.9, 1e-4, 1.0, 10));
        }
        List<String> lines = Files.readAllLines(file);
        assertEquals(3, lines.size());
        assertEquals(1, JSON.readTree(lines.get(0)).get("step").asLong());
        assertEquals(2, JSON.readTree(lines.get(2)).get("step").asLong());

        MetricsLog.History h = MetricsLog.read(file); // skips the cut line, and says so
        assertEquals(List.of(1L, 2L), h.train().stream().map(TrainPoint::step).toList());
        assertEquals(1, h.malformedLines());
        assertEquals(2, h.firstMalformedLine());

        try (MetricsLog log = new MetricsLog(file, false)) {
            log.train(new TrainPoint(1, 0.0, 3.0, 1e-4, 1.0, 10));
        }
        assertEquals(1, Files.readAllLines(file).size(), "append=false starts over");
    }

    @Test
    void readBackRoundTrips() {
        Path file = dir.resolve("metrics.jsonl");
        List<TrainPoint> train = List.of(new TrainPoint(1, 0.01, 3.5, 1e-5, 2.0, 900), new TrainPoint(2, 0.02, 3.25, 2e-5, 1.5, 950));
        EvalPoint ev = new EvalPoint(2, 0.02, 3.0, Math.exp(3.0));
        try (MetricsLog log = new MetricsLog(file, false)) {
            train.forEach(log::train);
            log.eval(ev);
            log.test(2.9, Math.exp(2.9), 2);
        }
        MetricsLog.History h = MetricsLog.read(file);
        assertEquals(train, h.train());
        assertEquals(List.of(ev), h.eval());
        assertEquals(2.9, h.testLoss());
        assertEquals(Math.exp(2.9), h.testPerplexity());
        assertEquals(0, h.malformedLines());
        assertNull(h.malformedNote(file), "nothing to report for a clean log");
    }

    @Test
    void malformedLinesAreCountedWithTheFirstLineNumber() throws Exception {
        Path file = dir.resolve("metrics.jsonl");
        Files.writeString(file, String.join("\n",
                "{\"step\":1,\"loss\":3.0}",
                "{\"step\":2,\"lo",                 // line 2: cut by a crash
                "{\"step\":2,\"loss\":2.5}",
                "",                                     // blank: not counted
                "[1, 2]",                               // line 5: JSON, not an object
                "{\"loss\":2.0}",                      // line 6: no step
                "{\"step\":3,\"eval_loss\":2.4}",
                "{\"step\":4,\"something_new\":1}",  // a kind this version does not know: not malformed
                "not json at all") + "\n");            // line 9
        MetricsLog.History h = MetricsLog.read(file);
        assertEquals(List.of(1L, 2L), h.train().stream().map(TrainPoint::step).toList());
        assertEquals(1, h.eval().size());
        assertEquals(4, h.malformedLines());
        assertEquals(2, h.firstMalformedLine());
        assertEquals(file + ": 4 malformed lines skipped (first at line 2)", h.malformedNote(file));

        Files.writeString(file, "{\"step\":1,\"loss\":3.0}\n{oops\n");
        assertEquals(file + ": 1 malformed line skipped (first at line 2)", MetricsLog.read(file).malformedNote(file));
    }

    /** Linux's /dev/full fails every write with ENOSPC, as a full disk does: exit 2 naming the file, not a jtune bug. */
    @Test
    void aFullDiskIsAUserErrorNamingTheFile() throws Exception {
        Path full = Path.of("/dev/full");
        assumeTrue(Files.isWritable(full), "needs Linux's /dev/full");
        Path file = Files.createSymbolicLink(dir.resolve("metrics.jsonl"), full);
        MetricsLog log = new MetricsLog(file, false);
        UserError e = assertThrows(UserError.class, () -> log.train(new TrainPoint(1, 0.0, 3.0, 1e-4, 1.0, 10)));
        assertEquals(file + ": cannot write the metrics log: No space left on device", e.getMessage());
        // closing flushes what is still buffered: it fails the same way, as a user error, or not at all
        try {
            log.close();
        } catch (UserError again) {
            assertTrue(again.getMessage().startsWith(file + ": cannot write the metrics log: "), again.getMessage());
        }
    }
}
