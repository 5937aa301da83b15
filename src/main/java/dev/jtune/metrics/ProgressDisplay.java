package dev.jtune.metrics;

import java.io.IOException;
import java.io.PrintStream;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.Locale;
import me.tongfei.progressbar.ConsoleProgressBarConsumer;
import me.tongfei.progressbar.DelegatingProgressBarConsumer;
import me.tongfei.progressbar.ProgressBar;
import me.tongfei.progressbar.ProgressBarBuilder;
import me.tongfei.progressbar.ProgressBarConsumer;
import me.tongfei.progressbar.ProgressBarStyle;

/**
 * The training progress bar on standard error (me.tongfei.progressbar): task name, percentage,
 * current/total steps, elapsed time and ETA, then {@code loss 2.314 lr 4.0e-05 1,234 tok/s}.
 *
 * <p>On a terminal the bar redraws in place and {@link #message} prints lines above it. When standard
 * error is not a terminal (CI logs, pipes, {@code 2> file}) there are no carriage returns or escape
 * codes: the bar is printed as plain lines, at most one per {@link #update} call and in practice far
 * fewer: the first update, then whenever progress has moved 5% or two minutes have passed since
 * the last line, and the final state on {@link #close}.
 */
public final class ProgressDisplay implements AutoCloseable {
    static final Duration PLAIN_HEARTBEAT = Duration.ofMinutes(2);
    static final double PLAIN_PROGRESS_FRACTION = 0.05;
    private static final int PLAIN_WIDTH = 120;

    private final PrintStream out;
    private final boolean interactive;
    private final Object lock = new Object();
    private volatile ProgressBar bar; // volatile: the library's thread renders while it is being built
    private final long totalSteps;
    private final Duration heartbeat;
    private boolean closed;
    private final long initialStep;
    private volatile boolean updated;

    // plain mode: what was rendered last and what was printed last (guarded by lock)
    private String lastRendered;
    private long lastRenderedStep = Long.MIN_VALUE;
    private long lastPrintedStep = Long.MIN_VALUE;
    private String lastPrinted;
    private long lastPrintedNanos;
    // interactive mode: the bar currently on screen (guarded by lock)
    private String onScreen;
    private final java.util.function.LongSupplier nanoClock;

    /** A bar from {@code initialStep} (non-zero when resuming) to {@code totalSteps} on standard error. */
    public ProgressDisplay(String task, long totalSteps, long initialStep) {
        this(task, totalSteps, initialStep, System.err, stderrIsTerminal(), PLAIN_HEARTBEAT, System::nanoTime);
    }

    /**
     * Where to draw, whether that is a terminal, the plain-mode heartbeat, and the clock it is measured with
     * ({@code System::nanoTime}; tests pass one they move by hand).
     */
    ProgressDisplay(String task, long totalSteps, long initialStep, PrintStream out, boolean interactive, Duration heartbeat,
                    java.util.function.LongSupplier nanoClock) {
        this.out = out;
        this.nanoClock = nanoClock;
        this.interactive = interactive;
        this.totalSteps = totalSteps;
        this.heartbeat = heartbeat;
        this.initialStep = Math.max(initialStep, 0);
        ProgressBarConsumer consumer = interactive ? new InPlaceConsumer() : new DelegatingProgressBarConsumer(this::plainLine, PLAIN_WIDTH);
        this.bar = new ProgressBarBuilder()
                .setTaskName(task)
                .setInitialMax(Math.max(totalSteps, 0))
                .startsFrom(this.initialStep, Duration.ZERO) // ETA from the speed of this session only
                .setStyle(interactive && canEncodeBlocks() ? ProgressBarStyle.UNICODE_BLOCK : ProgressBarStyle.ASCII)
                .setUpdateIntervalMillis(interactive ? 250 : 1000)
                .setConsumer(consumer)
                .build();
    }

    /** Whether the bar redraws in place (standard error is a terminal) or prints plain lines. */
    public boolean interactive() {
        return interactive;
    }

    /** Moves the bar to {@code step} and shows the latest loss, learning rate and throughput. */
    public void update(long step, double loss, double learningRate, double tokensPerSecond) {
        bar.setExtraMessage(formatStats(loss, learningRate, tokensPerSecond));
        bar.stepTo(step);
        updated = true;
        bar.refresh();   // draws this step now (once per step), not only on the library's next timer tick
    }

    /** Prints a line (evaluation results, a checkpoint saved) above the bar without garbling it. */
    public void message(String line) {
        synchronized (lock) {
            if (interactive) {
                out.print("\r\033[2K");
                out.println(line);
                if (onScreen != null) {
                    out.print("\r" + onScreen + "\033[K");
                }
            } else {
                out.println(line);
                lastPrinted = null;   // the last line is no longer the bar's: close prints the final state again
            }
            out.flush();
        }
    }

    /** Draws the final state and ends the bar's line. Idempotent. */
    @Override
    public void close() {
        synchronized (lock) {
            if (closed) {
                return;
            }
            closed = true;
        }
        bar.close(); // renders the final state synchronously
        synchronized (lock) {
            if (interactive) {
                if (onScreen != null) {
                    out.println();
                }
            } else if (lastRendered != null && (lastRenderedStep != lastPrintedStep || !shows(lastPrinted, lastRenderedStep))) {
                // the render thread can draw step N while the bar already holds N+k, so the step printed last is
                // checked against the text of the line printed, not only against the step read beside it
                out.println(lastRendered);
                lastPrinted = lastRendered;
                lastPrintedStep = lastRenderedStep;
            }
            out.flush();
        }
    }

    /** Whether a rendered line shows {@code step/total}. */
    private boolean shows(String line, long step) {
        return line != null && line.contains(" " + step + "/" + totalSteps + " ");
    }

    /** {@code loss 2.314 lr 4.0e-05 1,234 tok/s}. */
    static String formatStats(double loss, double learningRate, double tokensPerSecond) {
        String tps = Double.isFinite(tokensPerSecond) ? String.format(Locale.ROOT, "%,d", Math.round(tokensPerSecond)) : "?";
        return String.format(Locale.ROOT, "loss %s lr %s %s tok/s", Double.isFinite(loss) ? String.format(Locale.ROOT, "%.3f", loss) : "nan",
                Double.isFinite(learningRate) ? String.format(Locale.ROOT, "%.1e", learningRate) : "nan", tps);
    }

    /** Plain mode: the library renders about once a second while the step changes; print few of those. */
    private void plainLine(String rendered) {
        synchronized (lock) {
            ProgressBar b = bar;
            long step = b == null ? initialStep : b.getCurrent();
            String line = rendered.stripTrailing();
            lastRendered = line;
            lastRenderedStep = step;
            if (!updated || step == lastPrintedStep || !shows(line, step)) {
                return;   // (a render the timer thread made before the last stepTo is stale: update's own render follows)
            }
            long now = nanoClock.getAsLong();
            boolean first = lastPrintedStep == Long.MIN_VALUE;
            boolean moved = totalSteps > 0 && (step - lastPrintedStep) >= Math.max(1, (long) Math.ceil(totalSteps * PLAIN_PROGRESS_FRACTION));
            boolean stale = now - lastPrintedNanos >= heartbeat.toNanos();
            boolean done = totalSteps > 0 && step >= totalSteps;
            if (first || moved || stale || done) {
                out.println(line);
                out.flush();
                lastPrinted = line;
                lastPrintedStep = step;
                lastPrintedNanos = now;
            }
        }
    }

    /** Interactive mode: redraw the bar on the current line; {@link #message} scrolls it down. */
    private final class InPlaceConsumer implements ProgressBarConsumer {
        private final ConsoleProgressBarConsumer width = new ConsoleProgressBarConsumer(out);

        @Override
        public int getMaxRenderedLength() {
            return width.getMaxRenderedLength();
        }

        @Override
        public void accept(String rendered) {
            synchronized (lock) {
                onScreen = rendered;
                out.print("\r" + rendered + "\033[K");
                out.flush();
            }
        }

        @Override
        public void close() {
            synchronized (lock) {
                out.flush();
            }
        }
    }

    /** Whether standard error's charset has the block characters (not under LANG=C, for example). */
    private static boolean canEncodeBlocks() {
        try {
            String enc = System.getProperty("sun.stderr.encoding");
            java.nio.charset.Charset cs = enc != null ? java.nio.charset.Charset.forName(enc) : java.nio.charset.Charset.defaultCharset();
            return cs.newEncoder().canEncode("\u2588\u258c");
        } catch (RuntimeException e) {
            return false;
        }
    }

    /**
     * Whether standard error is a terminal. Java cannot ask directly; on Linux /proc/self/fd/2 names
     * the device. Elsewhere, fall back to whether the JVM has a console at all.
     */
    static boolean stderrIsTerminal() {
        String term = System.getenv("TERM");
        if ("dumb".equals(term)) {
            return false;
        }
        Path fd2 = Path.of("/proc/self/fd/2");
        try {
            if (Files.isSymbolicLink(fd2)) {
                String target = Files.readSymbolicLink(fd2).toString();
                return target.startsWith("/dev/pts/") || target.startsWith("/dev/tty") || target.equals("/dev/console");
            }
        } catch (IOException | RuntimeException e) {
            // fall through
        }
        return System.console() != null;
    }
}
