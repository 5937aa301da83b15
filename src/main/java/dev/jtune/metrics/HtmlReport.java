package dev.jtune.metrics;

import dev.jtune.io.WriteError;
import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.ZonedDateTime;
import java.time.format.DateTimeFormatter;
import java.util.ArrayList;
import java.util.List;
import java.util.Locale;
import java.util.Map;

/**
 * The end-of-run report: one self-contained HTML file (inline CSS and SVG, no scripts, fonts or
 * other files) with the warnings first, the loss curves (training, smoothed training, validation) on
 * one chart and the learning rate on a small one, a table of facts, and the resolved experiment YAML.
 * All text from the run is escaped.
 */
public final class HtmlReport {
    private HtmlReport() {}

    static final String TRAIN_COLOR = "#93b4f0";
    static final String SMOOTH_COLOR = "#1d4ed8";
    static final String EVAL_COLOR = "#ea580c";
    static final String LR_COLOR = "#059669";
    /** TensorBoard's default smoothing weight. */
    static final double SMOOTHING = 0.6;

    public static void write(Path file, RunRecord r, List<String> warnings) {
        write(file, r, warnings, null);
    }

    /** The report with a section on generated answers ({@code answers} may be null: none). */
    public static void write(Path file, RunRecord r, List<String> warnings, AnswerReport answers) {
        write(file, r, warnings, answers, null);
    }

    /** As above, with a section of the training method's own charts after the loss ({@link PreferenceReport}; null: none). */
    public static void write(Path file, RunRecord r, List<String> warnings, AnswerReport answers, String methodSection) {
        try {
            Path parent = file.toAbsolutePath().getParent();
            if (parent != null) {
                Files.createDirectories(parent);
            }
            Files.writeString(file, render(r, warnings, answers, methodSection), StandardCharsets.UTF_8);
        } catch (IOException e) {
            throw WriteError.writing(file, "the report", e);
        }
    }

    static String render(RunRecord r, List<String> warnings) {
        return render(r, warnings, null);
    }

    static String render(RunRecord r, List<String> warnings, AnswerReport answers) {
        return render(r, warnings, answers, null);
    }

    static String render(RunRecord r, List<String> warnings, AnswerReport answers, String methodSection) {
        StringBuilder h = new StringBuilder(16_384);
        h.append("<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n")
                .append("<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n")
                .append("<title>").append(escape(r.title())).append(" \u2014 jtune report</title>\n")
                .append("<style>\n").append(CSS).append("</style>\n</head>\n<body>\n<main>\n");
        h.append("<h1>").append(escape(r.title())).append("</h1>\n");
        h.append("<p class=\"sub\">jtune training report \u00b7 ")
                .append(escape(ZonedDateTime.now().format(DateTimeFormatter.ofPattern("yyyy-MM-dd HH:mm z", Locale.ROOT))))
                .append(" \u00b7 ").append(escape(summaryLine(r))).append("</p>\n");

        // warnings first
        if (warnings == null || warnings.isEmpty()) {
            h.append("<section class=\"ok\"><strong>No warnings.</strong> None of the usual traps (non-finite loss, loss not going down,"
                    + " overfitting, too little data, no validation) showed up in this run.</section>\n");
        } else {
            h.append("<section class=\"warnings\"><h2>\u26a0 ").append(warnings.size()).append(warnings.size() == 1 ? " warning" : " warnings")
                    .append("</h2>\n<ul>\n");
            for (String w : warnings) {
                h.append("<li>").append(escape(w)).append("</li>\n");
            }
            h.append("</ul></section>\n");
        }

        // charts
        h.append("<section>\n<h2>Loss</h2>\n").append(lossChart(r)).append("\n");
        h.append("<h3>Learning rate</h3>\n").append(lrChart(r)).append("\n</section>\n");
        if (methodSection != null) h.append(methodSection);
        if (answers != null) h.append(answersSection(answers));

        // facts
        h.append("<section>\n<h2>Run</h2>\n<table class=\"facts\">\n");
        for (String[] row : facts(r)) {
            h.append("<tr><th>").append(escape(row[0])).append("</th><td>").append(row[1]).append("</td></tr>\n");
        }
        h.append("</table>\n</section>\n");

        // config
        h.append("<section>\n<h2>Experiment</h2>\n<pre class=\"yaml\">").append(escape(r.experimentYaml())).append("</pre>\n</section>\n");
        h.append("</main>\n</body>\n</html>\n");
        return h.toString();
    }

    private static String summaryLine(RunRecord r) {
        String s = String.format(Locale.ROOT, "%,d of %,d steps", r.stepsDone(), r.totalSteps());
        if (r.stopReason() != null && !r.stopReason().isBlank()) {
            s += " (" + r.stopReason() + ")";
        }
        return s + " in " + duration(r.wallSeconds());
    }

    static String lossChart(RunRecord r) {
        List<TrainPoint> t = r.train();
        double[] tx = new double[t.size()];
        double[] ty = new double[t.size()];
        for (int i = 0; i < t.size(); i++) {
            tx[i] = t.get(i).step();
            ty[i] = t.get(i).loss();
        }
        double[] ex = new double[r.eval().size()];
        double[] ey = new double[r.eval().size()];
        for (int i = 0; i < ex.length; i++) {
            ex[i] = r.eval().get(i).step();
            ey[i] = r.eval().get(i).loss();
        }
        SvgChart c = new SvgChart(920, 400, "step", "loss", null);
        c.add(new SvgChart.Series("train-loss", "training loss", TRAIN_COLOR, tx, ty, false, 1.2));
        if (t.size() >= 20) {
            c.add(new SvgChart.Series("train-loss-smoothed", "training loss, smoothed", SMOOTH_COLOR, tx, smooth(ty, SMOOTHING), false, 2.2));
        }
        if (ex.length > 0) {
            c.add(new SvgChart.Series("eval-loss", "validation loss", EVAL_COLOR, ex, ey, true, 2.2));
        }
        if (r.bestStep() != null && ex.length > 1) {
            c.verticalMarker(r.bestStep(), String.format(Locale.ROOT, "best: step %,d", r.bestStep()));
        }
        return c.render("training and validation loss by step");
    }

    static String lrChart(RunRecord r) {
        List<TrainPoint> t = r.train();
        double[] x = new double[t.size()];
        double[] y = new double[t.size()];
        for (int i = 0; i < t.size(); i++) {
            x[i] = t.get(i).step();
            y[i] = t.get(i).learningRate();
        }
        SvgChart c = new SvgChart(920, 210, "step", "learning rate", v -> v == 0 ? "0" : String.format(Locale.ROOT, "%.1e", v));
        c.add(new SvgChart.Series("learning-rate", "learning rate", LR_COLOR, x, y, false, 1.8));
        return c.render("learning rate by step");
    }

    /** TensorBoard's smoothing: a debiased exponential moving average; non-finite values are carried over. */
    static double[] smooth(double[] ys, double weight) {
        double[] out = new double[ys.length];
        double last = 0;
        int n = 0;
        for (int i = 0; i < ys.length; i++) {
            if (!Double.isFinite(ys[i])) {
                out[i] = ys[i];
                continue;
            }
            last = last * weight + (1 - weight) * ys[i];
            n++;
            out[i] = last / (1 - Math.pow(weight, n));
        }
        return out;
    }

    /** Before/after tables per metric, then sample prompts with the reference, base and fine-tuned answers. */
    static String answersSection(AnswerReport a) {
        StringBuilder h = new StringBuilder(4096);
        h.append("<section class=\"answers\">\n<h2>Generated answers</h2>\n");
        for (boolean test : new boolean[] {true, false}) {
            List<String[]> rows = a.rows(test);
            if (rows.isEmpty()) continue;
            h.append("<h3>").append(test ? "Test prompts" : "Validation subset").append(" (scores 0\u2013100)</h3>\n")
                    .append("<table class=\"scores\">\n<tr><th>metric</th><th>base model</th><th>fine-tuned</th><th>change</th></tr>\n");
            for (String[] r : rows) {
                h.append("<tr><td>").append(escape(r[0])).append("</td><td>").append(escape(r[1])).append("</td><td>")
                        .append(escape(r[2])).append("</td><td>").append(escape(r[3])).append("</td></tr>\n");
            }
            h.append("</table>\n");
        }
        for (String n : a.notes()) h.append("<p class=\"note\">").append(escape(n)).append("</p>\n");
        if (!a.samples().isEmpty()) {
            h.append("<h3>Sample answers</h3>\n<table class=\"samples\">\n")
                    .append("<tr><th>prompt</th><th>reference</th><th>base model</th><th>fine-tuned</th></tr>\n");
            for (AnswerReport.Sample s : a.samples()) {
                h.append("<tr><td>").append(escape(s.question())).append("</td><td>").append(escape(s.reference()))
                        .append("</td><td>").append(s.base() == null ? "\u2014" : escape(s.base()))
                        .append("</td><td>").append(s.tuned() == null ? "\u2014" : escape(s.tuned())).append("</td></tr>\n");
            }
            h.append("</table>\n");
        }
        return h.append("</section>\n").toString();
    }

    /** Label and (already escaped) HTML value. */
    private static List<String[]> facts(RunRecord r) {
        List<String[]> rows = new ArrayList<>();
        for (Map.Entry<String, String> e : r.facts().entrySet()) {
            rows.add(new String[] {e.getKey(), escape(e.getValue())});
        }
        if (!r.dataSummary().isEmpty()) {
            StringBuilder d = new StringBuilder();
            for (String line : r.dataSummary()) {
                d.append(d.length() == 0 ? "" : "<br>").append(escape(line));
            }
            rows.add(new String[] {"data", d.toString()});
        }
        rows.add(new String[] {"training examples", String.format(Locale.ROOT, "%,d", r.trainExamples())});
        rows.add(new String[] {"training tokens", String.format(Locale.ROOT, "%,d", r.trainTokens())});
        rows.add(new String[] {"validation examples", String.format(Locale.ROOT, "%,d", r.validationExamples())});
        rows.add(new String[] {"test examples", String.format(Locale.ROOT, "%,d", r.testExamples())});
        rows.add(new String[] {"steps", String.format(Locale.ROOT, "%,d of %,d", r.stepsDone(), r.totalSteps())});
        rows.add(new String[] {"epochs", String.format(Locale.ROOT, "%.2f", r.epochs())});
        rows.add(new String[] {"effective batch size", String.format(Locale.ROOT, "%,d sequences per step", r.effectiveBatchSize())});
        rows.add(new String[] {"wall time", escape(duration(r.wallSeconds()))});
        if (!r.train().isEmpty()) {
            TrainPoint last = r.train().get(r.train().size() - 1);
            rows.add(new String[] {"last training loss", String.format(Locale.ROOT, "%s (step %,d)", loss(last.loss()), last.step())});
        }
        if (r.bestStep() != null) {
            rows.add(new String[] {"best step", String.format(Locale.ROOT, "%,d", r.bestStep())
                    + (r.bestEvalLoss() != null ? " (validation loss " + loss(r.bestEvalLoss()) + ")" : "")});
        } else {
            rows.add(new String[] {"best step", "\u2014 (no evaluation)"});
        }
        rows.add(new String[] {"stop reason", r.stopReason() == null || r.stopReason().isBlank() ? "\u2014" : escape(r.stopReason())});
        if (r.testLoss() != null) {
            rows.add(new String[] {"test loss", loss(r.testLoss())
                    + (r.testPerplexity() != null ? " (perplexity " + String.format(Locale.ROOT, "%.3f", r.testPerplexity()) + ")" : "")});
        } else {
            rows.add(new String[] {"test loss", "\u2014 (no test split)"});
        }
        return rows;
    }

    private static String loss(double v) {
        return Double.isFinite(v) ? String.format(Locale.ROOT, "%.4f", v) : "NaN";
    }

    static String duration(double seconds) {
        if (!Double.isFinite(seconds) || seconds < 0) {
            return "\u2014";
        }
        long s = Math.round(seconds);
        if (s < 60) {
            return String.format(Locale.ROOT, "%.1f s", seconds);
        }
        if (s < 3600) {
            return String.format(Locale.ROOT, "%d min %02d s", s / 60, s % 60);
        }
        return String.format(Locale.ROOT, "%d h %02d min %02d s", s / 3600, s % 3600 / 60, s % 60);
    }

    /** Escapes text for HTML element content and attribute values. */
    public static String escape(String s) {
        if (s == null) {
            return "";
        }
        StringBuilder b = new StringBuilder(s.length() + 16);
        for (int i = 0; i < s.length(); i++) {
            char c = s.charAt(i);
            switch (c) {
                case '&' -> b.append("&amp;");
                case '<' -> b.append("&lt;");
                case '>' -> b.append("&gt;");
                case '"' -> b.append("&quot;");
                case '\'' -> b.append("&#39;");
                default -> b.append(c);
            }
        }
        return b.toString();
    }

    /** The report's style sheet (charts, tables), for other pages that embed {@link SvgChart}s. */
    public static final String CSS = """
            body { margin: 0; background: #f6f7f9; color: #1f2937;
                   font: 15px/1.5 -apple-system, "Segoe UI", Roboto, "Helvetica Neue", Arial, sans-serif; }
            main { max-width: 960px; margin: 0 auto; padding: 24px 20px 48px; }
            h1 { font-size: 26px; margin: 0 0 2px; }
            h2 { font-size: 18px; margin: 0 0 10px; }
            h3 { font-size: 15px; margin: 18px 0 6px; color: #374151; }
            .sub { color: #6b7280; margin: 0 0 20px; }
            section { background: #fff; border: 1px solid #e5e7eb; border-radius: 8px; padding: 16px 18px; margin: 0 0 18px; }
            section.warnings { background: #fff7ed; border: 2px solid #f97316; }
            section.warnings h2 { color: #c2410c; }
            section.warnings ul { margin: 0; padding-left: 20px; }
            section.warnings li { margin: 0 0 8px; }
            section.ok { background: #f0fdf4; border-color: #86efac; }
            svg.chart { display: block; max-width: 100%; height: auto; font-size: 12px; }
            svg.chart text { fill: #374151; }
            svg.chart .label { font-size: 13px; fill: #111827; }
            svg.chart .grid line { stroke: #eef0f3; stroke-width: 1; }
            svg.chart .axis line { stroke: #6b7280; stroke-width: 1; }
            svg.chart .frame { fill: none; stroke: #9ca3af; stroke-width: 1; }
            svg.chart .vmarker line { stroke: #6b7280; stroke-width: 1; stroke-dasharray: 4 3; }
            svg.chart .vmarker text { fill: #4b5563; font-size: 11px; }
            svg.chart .note, svg.chart .empty { fill: #b91c1c; }
            table.facts { border-collapse: collapse; width: 100%; }
            table.facts th { text-align: left; font-weight: 600; color: #4b5563; width: 210px; vertical-align: top; }
            table.facts th, table.facts td { padding: 5px 8px; border-bottom: 1px solid #f0f1f3; }
            table.scores, table.samples { border-collapse: collapse; width: 100%; margin: 0 0 12px; }
            table.scores th, table.scores td, table.samples th, table.samples td { padding: 5px 8px; border-bottom: 1px solid #f0f1f3;
                       text-align: left; vertical-align: top; }
            table.scores td:not(:first-child) { font-variant-numeric: tabular-nums; }
            table.samples td { white-space: pre-wrap; font-size: 13px; }
            p.note { color: #6b7280; margin: 4px 0 12px; }
            pre.yaml { background: #f8fafc; border: 1px solid #e5e7eb; border-radius: 6px; padding: 12px; margin: 0;
                       overflow-x: auto; font: 13px/1.45 ui-monospace, "SFMono-Regular", Menlo, Consolas, monospace; }
            """;
}
