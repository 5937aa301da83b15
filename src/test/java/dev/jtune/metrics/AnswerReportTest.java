package dev.jtune.metrics;

import org.junit.jupiter.api.Test;

import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

/** The generated-answers part of the report: the before/after table per metric and the samples, escaped. */
class AnswerReportTest {
    static AnswerReport report() {
        Map<String, String> labels = new LinkedHashMap<>();
        labels.put("exact_match", "exact match");
        labels.put("rouge_l", "ROUGE-L");
        labels.put("bleu", "BLEU");
        return new AnswerReport(labels, Map.of("exact_match", 0.0, "rouge_l", 12.5, "bleu", 1.25),
                Map.of("exact_match", 10.0, "rouge_l", 40.0, "bleu", 20.75), Map.of("rouge_l", 11.0), Map.of("rouge_l", 35.0),
                List.of(new AnswerReport.Sample("¿Qué es <b>la</b> media?", "La suma & el \"conteo\".", "</td><script>x</script>", "La suma entre n.")),
                List.of("generation (final model, test): 10 tokens in 1.0 s, 10 tokens/s"));
    }

    @Test
    void beforeAfterRowsInTheConfiguredOrderWithTheChange() {
        List<String[]> test = report().rows(true);
        assertEquals(3, test.size());
        assertEquals(List.of("exact match", "0.0", "10.0", "+10.0"), List.of(test.get(0)));
        assertEquals(List.of("ROUGE-L", "12.5", "40.0", "+27.5"), List.of(test.get(1)));
        assertEquals(List.of("BLEU", "1.3", "20.8", "+19.5"), List.of(test.get(2)));
        List<String[]> eval = report().rows(false);
        assertEquals(1, eval.size(), "only metrics with a score");
        assertEquals(List.of("ROUGE-L", "11.0", "35.0", "+24.0"), List.of(eval.get(0)));
    }

    @Test
    void htmlEscapesEverySampleCell() {
        String html = HtmlReport.render(Runs.healthy().build(), List.of(), report());
        assertTrue(html.contains("<h2>Generated answers</h2>"), html);
        assertTrue(html.contains("<tr><td>ROUGE-L</td><td>12.5</td><td>40.0</td><td>+27.5</td></tr>"), html);
        assertTrue(html.contains("<td>¿Qué es &lt;b&gt;la&lt;/b&gt; media?</td><td>La suma &amp; el &quot;conteo&quot;.</td>"
                + "<td>&lt;/td&gt;&lt;script&gt;x&lt;/script&gt;</td><td>La suma entre n.</td>"), html);
        assertFalse(html.contains("<script>"), "no markup from the answers");
        assertFalse(HtmlReport.render(Runs.healthy().build(), List.of()).contains("Generated answers"), "no section without generation");
    }

    @Test
    void plainTextForTheConsole() {
        String t = report().text(1, 30);
        assertTrue(t.startsWith("generated answers, test prompts (0-100):\n  metric           base  fine-tuned   change\n"
                + "  exact match       0.0        10.0    +10.0\n"), t);
        assertTrue(t.contains("  Q: ¿Qué es <b>la</b> media?\n     reference:  La suma & el \"conteo\".\n"), t);
    }
}
