package dev.jtune.metrics;

import java.util.ArrayList;
import java.util.List;
import java.util.Locale;
import java.util.function.DoubleFunction;

/**
 * A line chart as inline SVG: axes with "nice" ticks and labels, light grid lines, one polyline per
 * series (optionally with point markers), and a legend. Non-finite points are left out and counted
 * in a note. Very long series are thinned to the minimum and maximum of each of
 * {@link #MAX_POINTS}/2 buckets, which keeps spikes visible.
 */
public final class SvgChart {
    static final int MAX_POINTS = 5000;

    /** One line; {@code id} becomes its CSS class, {@code label} its legend entry. */
    public record Series(String id, String label, String color, double[] xs, double[] ys, boolean markers, double width) {}

    private final int width;
    private final int height;
    private final String xLabel;
    private final String yLabel;
    private final DoubleFunction<String> yFormat; // null: chosen from the tick spacing
    private final List<Series> series = new ArrayList<>();
    private double markerX = Double.NaN;
    private String markerLabel;

    private static final int LEFT = 72;
    private static final int RIGHT = 16;
    private static final int TOP = 34; // the legend sits above the plot, where it never hides data
    private static final int BOTTOM = 46;

    public SvgChart(int width, int height, String xLabel, String yLabel, DoubleFunction<String> yFormat) {
        this.width = width;
        this.height = height;
        this.xLabel = xLabel;
        this.yLabel = yLabel;
        this.yFormat = yFormat;
    }

    public SvgChart add(Series s) {
        series.add(s);
        return this;
    }

    /** A dashed vertical line at {@code x} with a short label (for example the best checkpoint). */
    public SvgChart verticalMarker(double x, String label) {
        this.markerX = x;
        this.markerLabel = label;
        return this;
    }

    public String render(String ariaLabel) {
        StringBuilder sb = new StringBuilder();
        sb.append(String.format(Locale.ROOT,
                "<svg xmlns=\"http://www.w3.org/2000/svg\" class=\"chart\" width=\"%d\" height=\"%d\" viewBox=\"0 0 %d %d\" role=\"img\" aria-label=\"%s\">\n",
                width, height, width, height, HtmlReport.escape(ariaLabel)));
        double x0 = Double.POSITIVE_INFINITY, x1 = Double.NEGATIVE_INFINITY, y0 = Double.POSITIVE_INFINITY, y1 = Double.NEGATIVE_INFINITY;
        int skipped = 0; // the most of any series (a smoothed copy skips the same points)
        for (Series s : series) {
            int skippedHere = 0;
            for (int i = 0; i < s.xs().length; i++) {
                if (Double.isFinite(s.xs()[i]) && Double.isFinite(s.ys()[i])) {
                    x0 = Math.min(x0, s.xs()[i]);
                    x1 = Math.max(x1, s.xs()[i]);
                    y0 = Math.min(y0, s.ys()[i]);
                    y1 = Math.max(y1, s.ys()[i]);
                } else {
                    skippedHere++;
                }
            }
            skipped = Math.max(skipped, skippedHere);
        }
        int pw = width - LEFT - RIGHT;
        int ph = height - TOP - BOTTOM;
        if (x0 > x1) {
            sb.append(String.format(Locale.ROOT, "<rect x=\"%d\" y=\"%d\" width=\"%d\" height=\"%d\" class=\"frame\"/>\n", LEFT, TOP, pw, ph));
            sb.append(String.format(Locale.ROOT, "<text x=\"%d\" y=\"%d\" text-anchor=\"middle\" class=\"empty\">no data</text>\n</svg>",
                    LEFT + pw / 2, TOP + ph / 2));
            return sb.toString();
        }
        if (x0 == x1) {
            x0 -= 1;
            x1 += 1;
        }
        if (y0 == y1) {
            double pad = y0 == 0 ? 1 : Math.abs(y0) * 0.1;
            y0 -= pad;
            y1 += pad;
        }
        double[] xt = ticks(x0, x1, Math.max(2, pw / 110));
        double[] yt = ticks(y0, y1, Math.max(2, ph / 45));
        double xs = xt[2];
        double ys = yt[2];
        final double ax0 = xt[0], ax1 = xt[1], ay0 = yt[0], ay1 = yt[1];
        java.util.function.DoubleUnaryOperator px = v -> LEFT + (v - ax0) / (ax1 - ax0) * pw;
        java.util.function.DoubleUnaryOperator py = v -> TOP + ph - (v - ay0) / (ay1 - ay0) * ph;
        DoubleFunction<String> yf = yFormat != null ? yFormat : v -> fixed(v, ys);

        // grid, ticks and tick labels
        sb.append("<g class=\"grid\">\n");
        for (double v = ay0; v <= ay1 + ys * 1e-6; v += ys) {
            double y = py.applyAsDouble(v);
            sb.append(String.format(Locale.ROOT, "<line x1=\"%d\" y1=\"%.1f\" x2=\"%d\" y2=\"%.1f\"/>\n", LEFT, y, LEFT + pw, y));
        }
        for (double v = ax0; v <= ax1 + xs * 1e-6; v += xs) {
            double x = px.applyAsDouble(v);
            sb.append(String.format(Locale.ROOT, "<line x1=\"%.1f\" y1=\"%d\" x2=\"%.1f\" y2=\"%d\"/>\n", x, TOP, x, TOP + ph));
        }
        sb.append("</g>\n<g class=\"axis\">\n");
        sb.append(String.format(Locale.ROOT, "<rect x=\"%d\" y=\"%d\" width=\"%d\" height=\"%d\" class=\"frame\"/>\n", LEFT, TOP, pw, ph));
        for (double v = ay0; v <= ay1 + ys * 1e-6; v += ys) {
            double y = py.applyAsDouble(v);
            sb.append(String.format(Locale.ROOT, "<line x1=\"%d\" y1=\"%.1f\" x2=\"%d\" y2=\"%.1f\"/>", LEFT - 5, y, LEFT, y));
            sb.append(String.format(Locale.ROOT, "<text x=\"%d\" y=\"%.1f\" text-anchor=\"end\" dominant-baseline=\"middle\">%s</text>\n", LEFT - 8, y,
                    HtmlReport.escape(yf.apply(Math.abs(v) < ys * 1e-9 ? 0 : v))));
        }
        for (double v = ax0; v <= ax1 + xs * 1e-6; v += xs) {
            double x = px.applyAsDouble(v);
            sb.append(String.format(Locale.ROOT, "<line x1=\"%.1f\" y1=\"%d\" x2=\"%.1f\" y2=\"%d\"/>", x, TOP + ph, x, TOP + ph + 5));
            sb.append(String.format(Locale.ROOT, "<text x=\"%.1f\" y=\"%d\" text-anchor=\"middle\">%s</text>\n", x, TOP + ph + 18,
                    HtmlReport.escape(fixed(v, xs))));
        }
        sb.append(String.format(Locale.ROOT, "<text x=\"%d\" y=\"%d\" text-anchor=\"middle\" class=\"label\">%s</text>\n", LEFT + pw / 2, height - 6,
                HtmlReport.escape(xLabel)));
        sb.append(String.format(Locale.ROOT, "<text x=\"16\" y=\"%d\" text-anchor=\"middle\" class=\"label\" transform=\"rotate(-90 16 %d)\">%s</text>\n",
                TOP + ph / 2, TOP + ph / 2, HtmlReport.escape(yLabel)));
        sb.append("</g>\n");

        // series
        for (Series s : series) {
            List<double[]> pts = thin(s.xs(), s.ys());
            if (pts.isEmpty()) {
                continue;
            }
            sb.append(String.format(Locale.ROOT, "<polyline class=\"series %s\" fill=\"none\" stroke=\"%s\" stroke-width=\"%.1f\" stroke-linejoin=\"round\" points=\"",
                    s.id(), s.color(), s.width()));
            for (int i = 0; i < pts.size(); i++) {
                sb.append(i == 0 ? "" : " ")
                        .append(String.format(Locale.ROOT, "%.1f,%.1f", px.applyAsDouble(pts.get(i)[0]), py.applyAsDouble(pts.get(i)[1])));
            }
            sb.append("\"/>\n");
            if (s.markers()) {
                for (double[] p : pts) {
                    sb.append(String.format(Locale.ROOT, "<circle class=\"marker %s\" cx=\"%.1f\" cy=\"%.1f\" r=\"3.5\" fill=\"%s\"/>\n", s.id(),
                            px.applyAsDouble(p[0]), py.applyAsDouble(p[1]), s.color()));
                }
            }
        }

        if (Double.isFinite(markerX) && markerX >= ax0 && markerX <= ax1) {
            double x = px.applyAsDouble(markerX);
            sb.append(String.format(Locale.ROOT,
                    "<g class=\"vmarker\"><line x1=\"%.1f\" y1=\"%d\" x2=\"%.1f\" y2=\"%d\"/><text x=\"%.1f\" y=\"%d\" text-anchor=\"%s\">%s</text></g>\n",
                    x, TOP, x, TOP + ph, x + (x > LEFT + pw - 120 ? -4 : 4), TOP + 14, x > LEFT + pw - 120 ? "end" : "start",
                    HtmlReport.escape(markerLabel)));
        }

        // legend: one row above the plot, right-aligned
        int[] widths = new int[series.size()];
        int total = 0;
        for (int i = 0; i < series.size(); i++) {
            widths[i] = 34 + (int) Math.ceil(series.get(i).label().length() * 6.6) + 18;
            total += widths[i];
        }
        int lx = LEFT + pw - total + 18;
        int ly = TOP - 14;
        sb.append("<g class=\"legend\">\n");
        for (int i = 0; i < series.size(); i++) {
            Series s = series.get(i);
            sb.append(String.format(Locale.ROOT, "<line x1=\"%d\" y1=\"%d\" x2=\"%d\" y2=\"%d\" stroke=\"%s\" stroke-width=\"%.1f\"/>", lx, ly, lx + 24, ly,
                    s.color(), Math.max(2, s.width())));
            if (s.markers()) {
                sb.append(String.format(Locale.ROOT, "<circle cx=\"%d\" cy=\"%d\" r=\"3.5\" fill=\"%s\"/>", lx + 12, ly, s.color()));
            }
            sb.append(String.format(Locale.ROOT, "<text x=\"%d\" y=\"%d\" dominant-baseline=\"middle\">%s</text>\n", lx + 30, ly,
                    HtmlReport.escape(s.label())));
            lx += widths[i];
        }
        sb.append("</g>\n");
        if (skipped > 0) {
            sb.append(String.format(Locale.ROOT, "<text x=\"%d\" y=\"%d\" class=\"note\">%d non-finite value%s not drawn</text>\n", LEFT + 8, TOP + ph - 8,
                    skipped, skipped == 1 ? "" : "s"));
        }
        sb.append("</svg>");
        return sb.toString();
    }

    /** Finite points in order; above MAX_POINTS, the min and max of each bucket. */
    static List<double[]> thin(double[] xs, double[] ys) {
        List<double[]> all = new ArrayList<>();
        for (int i = 0; i < xs.length; i++) {
            if (Double.isFinite(xs[i]) && Double.isFinite(ys[i])) {
                all.add(new double[] {xs[i], ys[i]});
            }
        }
        if (all.size() <= MAX_POINTS) {
            return all;
        }
        int buckets = MAX_POINTS / 2;
        List<double[]> out = new ArrayList<>();
        for (int b = 0; b < buckets; b++) {
            int from = (int) ((long) all.size() * b / buckets);
            int to = (int) ((long) all.size() * (b + 1) / buckets);
            int lo = from, hi = from;
            for (int i = from; i < to; i++) {
                if (all.get(i)[1] < all.get(lo)[1]) {
                    lo = i;
                }
                if (all.get(i)[1] > all.get(hi)[1]) {
                    hi = i;
                }
            }
            out.add(all.get(Math.min(lo, hi)));
            if (lo != hi) {
                out.add(all.get(Math.max(lo, hi)));
            }
        }
        return out;
    }

    /** {axis min, axis max, tick step}: a 1-2-5 step giving about {@code target} intervals. */
    static double[] ticks(double min, double max, int target) {
        double raw = (max - min) / target;
        double mag = Math.pow(10, Math.floor(Math.log10(raw)));
        double f = raw / mag;
        double step = (f <= 1 ? 1 : f <= 2 ? 2 : f <= 5 ? 5 : 10) * mag;
        double lo = Math.floor(min / step + 1e-9) * step;
        double hi = Math.ceil(max / step - 1e-9) * step;
        return new double[] {lo, hi, step};
    }

    /** A tick label with as many decimals as the tick step needs, thousands separated. */
    static String fixed(double v, double step) {
        int decimals = Math.max(0, (int) Math.ceil(-Math.log10(step) - 1e-9));
        if (step >= 1 && Math.abs(v - Math.rint(v)) < 1e-9) {
            return String.format(Locale.ROOT, "%,d", (long) Math.rint(v));
        }
        return String.format(Locale.ROOT, "%,." + Math.min(decimals, 10) + "f", v);
    }
}
