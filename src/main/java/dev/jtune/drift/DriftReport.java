package dev.jtune.drift;

import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.SerializationFeature;
import com.fasterxml.jackson.databind.node.ObjectNode;
import dev.jtune.io.AtomicFiles;
import dev.jtune.util.UserError;

import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Path;
import java.util.Locale;

/** {@code jtune drift}'s outputs: a console table, JSON, and a self-contained HTML page, each naming every signal. */
public final class DriftReport {
    private static final ObjectMapper JSON = new ObjectMapper().enable(SerializationFeature.INDENT_OUTPUT);

    private DriftReport() {}

    public static String table(DriftAnalysis.Result r) {
        StringBuilder sb = new StringBuilder();
        sb.append(header(r)).append('\n');
        sb.append(String.format(Locale.ROOT, "%-22s %12s %12s %12s  %s%n", "signal", "value", "baseline", "threshold", "status"));
        for (DriftSignal s : r.signals()) {
            sb.append(String.format(Locale.ROOT, "%-22s %12s %12s %12s  %s%n", s.name(), num(s.value()), num(s.baseline()),
                    (s.higherIsWorse() ? "> " : "< ") + num(s.threshold()), s.crossed() ? "DRIFT" : "ok"));
        }
        sb.append(r.drifted() ? "drift: thresholds crossed (exit 3)" : "drift: within every threshold");
        return sb.toString();
    }

    public static String json(DriftAnalysis.Result r) {
        ObjectNode root = JSON.createObjectNode();
        root.put("run_dir", r.runDir().toString());
        if (r.data() != null) root.put("data", r.data().toString());
        if (r.requests() != null) root.put("requests", r.requests().toString());
        root.put("baseline_split", r.baselineSplit());
        root.put("labelled_rows", r.labelledRows());
        root.put("request_prompts", r.requestPrompts());
        root.put("training_prompts", r.trainPrompts());
        root.put("drift", r.drifted());
        var arr = root.putArray("signals");
        for (DriftSignal s : r.signals()) {
            ObjectNode n = arr.addObject().put("name", s.name()).put("description", s.description());
            put(n, "value", s.value());
            put(n, "baseline", s.baseline());
            put(n, "threshold", s.threshold());
            n.put("direction", s.higherIsWorse() ? "above" : "below");
            n.put("crossed", s.crossed());
        }
        try {
            return JSON.writeValueAsString(root);
        } catch (IOException e) {
            throw new IllegalStateException(e);
        }
    }

    public static void html(DriftAnalysis.Result r, Path out) {
        StringBuilder sb = new StringBuilder("<!doctype html><html><head><meta charset=\"utf-8\"><title>jtune drift</title><style>"
                + "body{font-family:system-ui,sans-serif;margin:2em}table{border-collapse:collapse}td,th{padding:4px 10px;border-bottom:1px solid #ddd;text-align:right}"
                + "td:first-child,th:first-child,td:last-child{text-align:left}.drift{color:#b00020;font-weight:bold}.ok{color:#1b5e20}</style></head><body>");
        sb.append("<h1>jtune drift</h1><p>").append(esc(header(r))).append("</p>");
        sb.append("<p class=\"").append(r.drifted() ? "drift\">Drift: thresholds crossed" : "ok\">Within every threshold").append("</p>");
        sb.append("<table><tr><th>signal</th><th>value</th><th>baseline</th><th>threshold</th><th>status</th><th>what it measures</th></tr>");
        for (DriftSignal s : r.signals()) {
            sb.append("<tr><td>").append(esc(s.name())).append("</td><td>").append(num(s.value())).append("</td><td>").append(num(s.baseline()))
                    .append("</td><td>").append(s.higherIsWorse() ? "&gt; " : "&lt; ").append(num(s.threshold())).append("</td><td class=\"")
                    .append(s.crossed() ? "drift\">DRIFT" : "ok\">ok").append("</td><td>").append(esc(s.description())).append("</td></tr>");
        }
        sb.append("</table></body></html>\n");
        try {
            AtomicFiles.write(out, sb.toString().getBytes(StandardCharsets.UTF_8));
        } catch (IOException e) {
            throw new UserError("--html " + out + ": cannot write the report: " + e.getMessage());
        }
    }

    private static String header(DriftAnalysis.Result r) {
        return String.format(Locale.ROOT, "run %s; new data: %s%s (%d labelled rows, %d request prompts); baseline: the run's %s split against %d training prompts",
                r.runDir(), r.data() == null ? "" : r.data().toString(), r.requests() == null ? "" : (r.data() == null ? "" : " + ") + r.requests(),
                r.labelledRows(), r.requestPrompts(), r.baselineSplit(), r.trainPrompts());
    }

    private static void put(ObjectNode n, String key, double v) {
        if (Double.isFinite(v)) n.put(key, v);
        else n.putNull(key);
    }

    private static String num(double v) {
        if (Double.isNaN(v)) return "n/a";
        return Math.abs(v) >= 100 ? String.format(Locale.ROOT, "%.1f", v) : String.format(Locale.ROOT, "%.4f", v);
    }

    private static String esc(String s) {
        return s.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;");
    }
}
