package dev.jtune.sweep;

import dev.jtune.metrics.HtmlReport;
import dev.jtune.metrics.SvgChart;

import javax.imageio.ImageIO;
import java.awt.BasicStroke;
import java.awt.Color;
import java.awt.Font;
import java.awt.Graphics2D;
import java.awt.RenderingHints;
import java.awt.geom.Path2D;
import java.awt.image.BufferedImage;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Locale;

/**
 * lr-find's outputs in one directory: lr-find.csv (lr, loss, smoothed loss), lr-find.svg and lr-find.html (the curve
 * as {@link SvgChart} draws the run reports' charts, against log10 of the rate) and lr-find.png (drawn with java.awt,
 * headless, for a README or a chat), each marking the suggested rate.
 */
final class LrFindPlot {
    private LrFindPlot() {}

    static void write(Path dir, LrFinder.Result r, String title) {
        try {
            Files.createDirectories(dir);
        } catch (IOException e) {
            throw new dev.jtune.util.UserError(dir + ": cannot create: " + e.getMessage(), e);
        }
        StringBuilder csv = new StringBuilder("learning_rate,loss,smoothed_loss\n");
        for (int i = 0; i < r.lrs().length; i++) csv.append(r.lrs()[i]).append(',').append(r.losses()[i]).append(',').append(r.smoothed()[i]).append('\n');
        SweepFiles.write(dir.resolve("lr-find.csv"), csv.toString());

        double[] logLr = new double[r.lrs().length];
        for (int i = 0; i < logLr.length; i++) logLr[i] = Math.log10(r.lrs()[i]);
        String svg = new SvgChart(920, 420, "learning rate (log10)", "training loss", null)
                .add(new SvgChart.Series("loss", "loss", "#9ca3af", logLr, r.losses(), false, 1.2))
                .add(new SvgChart.Series("smoothed", "smoothed loss", "#2563eb", logLr, r.smoothed(), false, 2.2))
                .verticalMarker(Math.log10(r.suggestion()), String.format(Locale.ROOT, "suggested %.2e", r.suggestion()))
                .render("training loss against the learning rate");
        String styled = svg.replaceFirst(">", "><style>" + HtmlReport.CSS.replace("\n", " ") + "</style>");
        SweepFiles.write(dir.resolve("lr-find.svg"), styled + "\n");
        SweepFiles.write(dir.resolve("lr-find.html"), "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n<title>jtune lr-find</title>\n<style>\n"
                + HtmlReport.CSS + "</style>\n</head>\n<body>\n<main>\n<h1>jtune lr-find</h1>\n<p class=\"sub\">" + HtmlReport.escape(title)
                + "</p>\n<section>\n" + svg + String.format(Locale.ROOT, "\n<p>Suggested learning rate: <b>%.3e</b> (the steepest descent of the "
                + "smoothed loss). Stopped: %s.</p>\n", r.suggestion(), HtmlReport.escape(r.stopReason())) + "</section>\n</main>\n</body>\n</html>\n");
        writePng(dir.resolve("lr-find.png"), r, logLr);
    }

    private static void writePng(Path file, LrFinder.Result r, double[] x) {
        System.setProperty("java.awt.headless", "true");   // no display needed (and none on a server)
        int w = 900, h = 520, left = 80, right = 24, top = 40, bottom = 60;
        BufferedImage img = new BufferedImage(w, h, BufferedImage.TYPE_INT_RGB);
        Graphics2D g = img.createGraphics();
        try {
            g.setRenderingHint(RenderingHints.KEY_ANTIALIASING, RenderingHints.VALUE_ANTIALIAS_ON);
            g.setColor(Color.WHITE);
            g.fillRect(0, 0, w, h);
            double x0 = x[0], x1 = x[x.length - 1];
            if (x1 <= x0) x1 = x0 + 1;
            double y0 = Double.POSITIVE_INFINITY, y1 = Double.NEGATIVE_INFINITY;
            for (double[] ys : new double[][] {r.losses(), r.smoothed()}) {
                for (double v : ys) {
                    if (Double.isFinite(v)) {
                        y0 = Math.min(y0, v);
                        y1 = Math.max(y1, v);
                    }
                }
            }
            if (!(y1 > y0)) y1 = y0 + 1;
            double pad = 0.05 * (y1 - y0);
            y0 -= pad;
            y1 += pad;
            int pw = w - left - right, ph = h - top - bottom;
            final double fx0 = x0, fx1 = x1, fy0 = y0, fy1 = y1;
            java.util.function.DoubleUnaryOperator px = v -> left + (v - fx0) / (fx1 - fx0) * pw;
            java.util.function.DoubleUnaryOperator py = v -> top + (fy1 - v) / (fy1 - fy0) * ph;
            g.setFont(new Font(Font.SANS_SERIF, Font.PLAIN, 13));
            // grid and ticks: decades on x, five steps on y
            g.setStroke(new BasicStroke(1f));
            for (int d = (int) Math.ceil(x0); d <= Math.floor(x1); d++) {
                int gx = (int) px.applyAsDouble(d);
                g.setColor(new Color(0xEE, 0xF0, 0xF3));
                g.drawLine(gx, top, gx, top + ph);
                g.setColor(Color.DARK_GRAY);
                g.drawString("1e" + d, gx - 12, top + ph + 18);
            }
            for (int k = 0; k <= 5; k++) {
                double v = y0 + k * (y1 - y0) / 5;
                int gy = (int) py.applyAsDouble(v);
                g.setColor(new Color(0xEE, 0xF0, 0xF3));
                g.drawLine(left, gy, left + pw, gy);
                g.setColor(Color.DARK_GRAY);
                g.drawString(String.format(Locale.ROOT, "%.3f", v), 8, gy + 4);
            }
            g.setColor(Color.GRAY);
            g.drawRect(left, top, pw, ph);
            g.setColor(Color.BLACK);
            g.drawString("learning rate", left + pw / 2 - 40, h - 16);
            g.drawString("training loss (grey) and smoothed loss (blue)", left, top - 14);
            drawLine(g, x, r.losses(), px, py, new Color(0x9C, 0xA3, 0xAF), 1.2f);
            drawLine(g, x, r.smoothed(), px, py, new Color(0x25, 0x63, 0xEB), 2.4f);
            int sx = (int) px.applyAsDouble(Math.log10(r.suggestion()));
            g.setColor(new Color(0xDC, 0x26, 0x26));
            g.setStroke(new BasicStroke(1.5f, BasicStroke.CAP_BUTT, BasicStroke.JOIN_MITER, 10f, new float[] {6f, 4f}, 0f));
            g.drawLine(sx, top, sx, top + ph);
            g.drawString(String.format(Locale.ROOT, "suggested %.2e", r.suggestion()), Math.min(sx + 6, w - 150), top + 16);
        } finally {
            g.dispose();
        }
        try {
            if (!ImageIO.write(img, "png", file.toFile())) throw new IOException("no PNG writer");
        } catch (IOException e) {
            throw new dev.jtune.util.UserError(file + ": cannot write: " + e.getMessage(), e);
        }
    }

    private static void drawLine(Graphics2D g, double[] x, double[] y, java.util.function.DoubleUnaryOperator px,
                                 java.util.function.DoubleUnaryOperator py, Color color, float width) {
        Path2D.Double path = new Path2D.Double();
        boolean open = false;
        for (int i = 0; i < x.length; i++) {
            if (!Double.isFinite(y[i])) {
                open = false;
                continue;
            }
            double a = px.applyAsDouble(x[i]), b = py.applyAsDouble(y[i]);
            if (open) path.lineTo(a, b);
            else path.moveTo(a, b);
            open = true;
        }
        g.setColor(color);
        g.setStroke(new BasicStroke(width));
        g.draw(path);
    }
}
