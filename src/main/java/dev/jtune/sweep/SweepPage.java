package dev.jtune.sweep;

import dev.jtune.metrics.HtmlReport;
import dev.jtune.metrics.SvgChart;

import java.nio.file.Path;
import java.util.List;
import java.util.Locale;
import java.util.Map;

/**
 * DIR/sweep.html, one self-contained page: every trial's validation curve of the sweep's metric on one chart (pruned
 * trials' curves end where they were pruned) and the leaderboard as a table sorted by a click on a column header.
 */
final class SweepPage {
    private static final String[] PALETTE = {"#2563eb", "#dc2626", "#16a34a", "#9333ea", "#ea580c", "#0891b2", "#ca8a04",
            "#db2777", "#4b5563", "#65a30d"};

    private SweepPage() {}

    static void write(Path dir, SweepState state, Map<Integer, Map<Long, Double>> curves) {
        String metric = state.spec.metric();
        SvgChart chart = new SvgChart(920, 420, "step", metric, null);
        for (SweepState.Trial t : state.trials) {
            Map<Long, Double> c = curves.getOrDefault(t.number, Map.of());
            if (c.isEmpty()) continue;
            double[] xs = c.keySet().stream().mapToDouble(Long::doubleValue).toArray();
            double[] ys = c.values().stream().mapToDouble(Double::doubleValue).toArray();
            chart.add(new SvgChart.Series("trial-" + t.number, t.dirName() + " (" + t.status.label() + ")",
                    PALETTE[(t.number - 1) % PALETTE.length], xs, ys, true, t.status == SweepState.Status.COMPLETE ? 2.2 : 1.2));
        }
        List<SweepState.Trial> ranked = Leaderboard.rank(state);
        List<String> keys = state.spec.params().stream().map(ParamSpec::key).toList();
        StringBuilder b = new StringBuilder("<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n")
                .append("<title>jtune sweep \u2014 ").append(HtmlReport.escape(state.spec.experiment().getFileName().toString())).append("</title>\n")
                .append("<style>\n").append(HtmlReport.CSS)
                .append("table.board { border-collapse: collapse; width: 100%; font-size: 13px; }\n")
                .append("table.board th { cursor: pointer; text-align: left; background: #f3f4f6; }\n")
                .append("table.board th, table.board td { padding: 4px 8px; border-bottom: 1px solid #e5e7eb; }\n")
                .append("tr.pruned td { color: #6b7280; } tr.failed td { color: #b91c1c; }\n")
                .append("</style>\n</head>\n<body>\n<main>\n")
                .append("<h1>jtune sweep</h1>\n<p class=\"sub\">").append(HtmlReport.escape(state.spec.experiment().toString()))
                .append(String.format(Locale.ROOT, " \u2014 %d trials, %s search, pruning %s, ranked by %s (%s)",
                        state.trials.size(), state.spec.method().name().toLowerCase(Locale.ROOT), state.spec.prune().name().toLowerCase(Locale.ROOT),
                        metric, state.spec.direction().name().toLowerCase(Locale.ROOT)))
                .append("</p>\n<section>\n<h2>Validation curves</h2>\n")
                .append(chart.render("validation " + metric + " of every trial against the step")).append("\n</section>\n")
                .append("<section>\n<h2>Leaderboard</h2>\n<p class=\"sub\">Click a column header to sort.</p>\n")
                .append("<table class=\"board\" id=\"board\">\n<thead><tr><th>rank</th><th>trial</th><th>status</th><th>")
                .append(HtmlReport.escape(metric)).append("</th><th>steps</th>");
        for (String k : keys) b.append("<th>").append(HtmlReport.escape(k)).append("</th>");
        b.append("<th>note</th></tr></thead>\n<tbody>\n");
        for (int i = 0; i < ranked.size(); i++) {
            SweepState.Trial t = ranked.get(i);
            b.append("<tr class=\"").append(t.status.label()).append("\"><td>").append(i + 1).append("</td><td>").append(t.number)
             .append("</td><td>").append(t.status.label()).append("</td><td>")
             .append(t.metric == null ? "" : String.format(Locale.ROOT, "%.5f", t.metric)).append("</td><td>").append(t.steps).append("</td>");
            for (String k : keys) b.append("<td>").append(HtmlReport.escape(t.values.getOrDefault(k, ""))).append("</td>");
            b.append("<td>").append(HtmlReport.escape(t.note)).append("</td></tr>\n");
        }
        b.append("</tbody>\n</table>\n</section>\n</main>\n<script>\n").append(SORT_SCRIPT).append("</script>\n</body>\n</html>\n");
        SweepFiles.write(dir.resolve("sweep.html"), b.toString());
    }

    /** Sorts the table by the clicked column: numerically where both cells are numbers, else as text; a second click reverses. */
    private static final String SORT_SCRIPT = """
            document.querySelectorAll('#board th').forEach((th, col) => th.addEventListener('click', () => {
              const body = document.querySelector('#board tbody');
              const asc = th.dataset.asc !== 'true';
              th.dataset.asc = asc;
              const rows = Array.from(body.rows);
              rows.sort((a, b) => {
                const x = a.cells[col].textContent, y = b.cells[col].textContent;
                const nx = parseFloat(x), ny = parseFloat(y);
                const c = !isNaN(nx) && !isNaN(ny) ? nx - ny : x.localeCompare(y);
                return asc ? c : -c;
              });
              rows.forEach(r => body.appendChild(r));
            }));
            """;
}
