package dev.jtune.metrics;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assumptions.assumeTrue;

import dev.jtune.util.UserError;

import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Locale;
import java.util.regex.Matcher;
import java.util.regex.Pattern;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

class HtmlReportTest {
    @TempDir
    Path dir;

    /** The points attribute of the polyline with the given class. */
    private static List<String> polylinePoints(String html, String cls) {
        Matcher m = Pattern.compile("<polyline class=\"series " + Pattern.quote(cls) + "\"[^>]* points=\"([^\"]*)\"").matcher(html);
        assertTrue(m.find(), "polyline " + cls);
        List<String> pts = List.of(m.group(1).trim().split(" "));
        assertFalse(m.find(), "one polyline " + cls);
        return pts;
    }

    private static int count(String s, String sub) {
        int n = 0;
        for (int i = s.indexOf(sub); i >= 0; i = s.indexOf(sub, i + 1)) {
            n++;
        }
        return n;
    }

    /** Linux's /dev/full fails every write with ENOSPC, as a full disk does: a user error naming the file. */
    @Test
    void aFullDiskIsAUserErrorNamingTheFile() throws Exception {
        Path full = Path.of("/dev/full");
        assumeTrue(Files.isWritable(full), "needs Linux's /dev/full");
        Path file = Files.createSymbolicLink(dir.resolve("report.html"), full);
        UserError e = assertThrows(UserError.class, () -> HtmlReport.write(file, Runs.healthy().build(), List.of()));
        assertEquals(file + ": cannot write the report: No space left on device", e.getMessage());
    }

    @Test
    void structure() throws Exception {
        RunRecord r = Runs.healthy().build();
        List<String> warnings = List.of("Only 40 training examples: collect more.", "No validation data: hold some out.");
        Path file = dir.resolve("out/report.html");
        HtmlReport.write(file, r, warnings);
        String html = Files.readString(file);

        assertTrue(html.startsWith("<!DOCTYPE html>"));
        assertTrue(html.contains("<title>qa-tiny-llama"));
        assertTrue(html.contains("<h1>qa-tiny-llama</h1>"));
        // one point per training point; eval as a line plus a marker per evaluation
        assertEquals(r.train().size(), polylinePoints(html, "train-loss").size());
        assertEquals(r.train().size(), polylinePoints(html, "train-loss-smoothed").size());
        assertEquals(r.eval().size(), polylinePoints(html, "eval-loss").size());
        assertEquals(r.eval().size(), count(html, "class=\"marker eval-loss\""));
        assertEquals(r.train().size(), polylinePoints(html, "learning-rate").size());
        for (String p : polylinePoints(html, "train-loss")) {
            assertTrue(p.matches("\\d+\\.\\d,\\d+\\.\\d"), p);
        }
        // legend and axis labels
        assertTrue(html.contains(">training loss</text>"));
        assertTrue(html.contains(">validation loss</text>"));
        assertTrue(html.contains(">step</text>"));
        assertTrue(html.contains(">learning rate</text>"));
        // the warnings, before the charts
        assertTrue(html.contains("2 warnings"));
        int w = html.indexOf("<li>Only 40 training examples: collect more.</li>");
        assertTrue(w > 0);
        assertTrue(html.contains("<li>No validation data: hold some out.</li>"));
        assertTrue(w < html.indexOf("<svg"));
        // facts
        assertTrue(html.contains("runs/tiny-llama (llama, 6.5 M parameters)"));
        assertTrue(html.contains("<th>training examples</th><td>1,600</td>"));
        assertTrue(html.contains("<th>training tokens</th><td>288,000</td>"));
        assertTrue(html.contains("<th>steps</th><td>300 of 300</td>"));
        assertTrue(html.contains("<th>effective batch size</th><td>16 sequences per step</td>"));
        assertTrue(html.contains("<th>wall time</th><td>12 min 34 s</td>"));
        assertTrue(html.contains("<th>stop reason</th><td>max_steps reached</td>"));
        assertTrue(html.contains(String.format(Locale.ROOT, "<th>test loss</th><td>1.6200 (perplexity %.3f)</td>", Math.exp(1.62))));
        assertTrue(html.contains("train: data/qa.jsonl (1600 examples)<br>validation: 10% split"));
        assertTrue(html.contains("<pre class=\"yaml\">model: runs/tiny-llama\n"));
    }

    @Test
    void selfContained() {
        String html = HtmlReport.render(Runs.healthy().build(), List.of());
        String lower = html.toLowerCase(Locale.ROOT);
        for (String external : List.of("<script", "<link", "src=", "href=", "url(", "@import", "@font-face")) {
            assertFalse(lower.contains(external), external);
        }
        // the only URL is the SVG namespace
        assertEquals(count(html, "http"), count(html, "xmlns=\"http://www.w3.org/2000/svg\""));
        assertTrue(html.contains("No warnings."));
    }

    @Test
    void allTextIsEscaped() {
        Runs.B b = Runs.healthy();
        b.title = "<script>alert('x')</script> & co";
        b.facts.put("model <b>", "\"quoted\" & <i>");
        b.stopReason = "stopped <early>";
        RunRecord base = b.build();
        RunRecord r = new RunRecord(base.title(), "prompt: \"<|user|> {x} & </pre>\"\n", List.of("train: <file>.jsonl"), base.trainExamples(),
                base.trainTokens(), base.validationExamples(), base.testExamples(), base.totalSteps(), base.stepsDone(), base.epochs(),
                base.effectiveBatchSize(), base.train(), base.eval(), base.testLoss(), base.testPerplexity(), base.bestStep(),
                base.bestEvalLoss(), base.stopReason(), base.wallSeconds(), base.facts());
        String html = HtmlReport.render(r, List.of("loss < 0 & \"odd\""));
        assertFalse(html.contains("<script>"));
        assertFalse(html.contains("<b>"));
        assertFalse(html.contains("<i>"));
        assertFalse(html.contains("<early>"));
        assertFalse(html.contains("<|user|>"));
        assertFalse(html.contains("<file>"));
        assertEquals(1, count(html, "</pre>"), "the YAML cannot close its <pre>");
        assertTrue(html.contains("&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt; &amp; co"));
        assertTrue(html.contains("<th>model &lt;b&gt;</th><td>&quot;quoted&quot; &amp; &lt;i&gt;</td>"));
        assertTrue(html.contains("prompt: &quot;&lt;|user|&gt; {x} &amp; &lt;/pre&gt;&quot;"));
        assertTrue(html.contains("<li>loss &lt; 0 &amp; &quot;odd&quot;</li>"));
    }

    @Test
    void nonFiniteAndEmptyRunsStillRender() {
        Runs.B b = Runs.healthy();
        List<TrainPoint> t = new ArrayList<>(b.train);
        TrainPoint p = t.get(10);
        t.set(10, new TrainPoint(p.step(), p.epoch(), Double.NaN, p.learningRate(), p.gradNorm(), p.tokensPerSecond()));
        b.train = t;
        String html = HtmlReport.render(b.build(), List.of());
        assertEquals(b.train.size() - 1, polylinePoints(html, "train-loss").size());
        assertTrue(html.contains("1 non-finite value not drawn"));

        RunRecord empty = new RunRecord(null, null, null, 0, 0, 0, 0, 0, 0, 0, 0, null, null, null, null, null, null, null, 0, null);
        String e = HtmlReport.render(empty, RunDiagnostics.warnings(empty));
        assertTrue(e.contains(">no data</text>"));
        assertTrue(e.contains("No validation data"));
    }

    @Test
    void longRunsAreThinnedKeepingExtremes() {
        int n = 20_000;
        double[] xs = new double[n];
        double[] ys = new double[n];
        for (int i = 0; i < n; i++) {
            xs[i] = i + 1;
            ys[i] = 2.0;
        }
        ys[12_345] = 9.0; // a spike
        List<double[]> thin = SvgChart.thin(xs, ys);
        assertTrue(thin.size() <= SvgChart.MAX_POINTS, "" + thin.size());
        assertTrue(thin.stream().anyMatch(q -> q[1] == 9.0), "spike kept");
        assertEquals(1.0, thin.get(0)[0]);
    }

    @Test
    void niceTicks() {
        assertArrayEquals(new double[] {0, 300, 50}, SvgChart.ticks(5, 300, 6), 1e-9);
        assertArrayEquals(new double[] {1.4, 3.2, 0.2}, SvgChart.ticks(1.43, 3.1, 9), 1e-9);
        assertEquals("1,000", SvgChart.fixed(1000, 200));
        assertEquals("1.40", SvgChart.fixed(1.4, 0.05));
        assertEquals("12 min 34 s", HtmlReport.duration(754.2));
        assertEquals("1 h 02 min 03 s", HtmlReport.duration(3723));
    }

    /** An overfitting run's report shows the warning at the top with every remedy's key (issue 17). */
    @Test
    void overfittingWarningInTheReportNamesTheRemediesByKey() {
        Runs.B b = Runs.healthy().trainCurve(s -> 0.2 + 2.8 * Math.exp(-s / 60.0), 0.02);
        b.evalCurve(s -> 1.2 + 1.6 * Math.exp(-s / 40.0) + 0.004 * Math.max(0, s - 150));
        RunRecord r = b.build();
        String html = HtmlReport.render(r, RunDiagnostics.warnings(r));
        int warnings = html.indexOf("<section class=\"warnings\">");
        assertTrue(warnings >= 0 && warnings < html.indexOf("<svg"), "the warnings come before the charts");
        for (String key : List.of("training.early_stopping_patience", "training.weight_decay", "training.neftune_noise_alpha",
                "training.label_smoothing_factor", "lora.enabled", "model.attention_dropout", "more training data")) {
            assertTrue(html.contains(key), key);
        }
    }
}
