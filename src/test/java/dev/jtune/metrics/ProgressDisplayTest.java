package dev.jtune.metrics;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.io.ByteArrayOutputStream;
import java.io.PrintStream;
import java.nio.charset.StandardCharsets;
import java.time.Duration;
import java.util.Arrays;
import java.util.List;
import org.junit.jupiter.api.Test;

class ProgressDisplayTest {
    private final ByteArrayOutputStream buf = new ByteArrayOutputStream();
    private final PrintStream out = new PrintStream(buf, true, StandardCharsets.UTF_8);

    /** The display's clock, moved by hand: nanoseconds. */
    private final java.util.concurrent.atomic.AtomicLong clock = new java.util.concurrent.atomic.AtomicLong();

    private ProgressDisplay display(String task, long total, long initial, boolean interactive, Duration heartbeat) {
        return new ProgressDisplay(task, total, initial, out, interactive, heartbeat, clock::get);
    }

    private List<String> lines() {
        String s = buf.toString(StandardCharsets.UTF_8);
        return s.isEmpty() ? List.of() : Arrays.asList(s.split("\n"));
    }

    @Test
    void statsFormat() {
        assertEquals("loss 2.314 lr 4.0e-05 1,234 tok/s", ProgressDisplay.formatStats(2.3141, 4e-5, 1234.4));
        assertEquals("loss 0.500 lr 2.0e-04 12,345,678 tok/s", ProgressDisplay.formatStats(0.5, 2e-4, 12_345_678));
        assertEquals("loss nan lr 1.0e-05 0 tok/s", ProgressDisplay.formatStats(Double.NaN, 1e-5, 0));
    }

    @Test
    void plainModeDoesNotSpam() {
        try (ProgressDisplay p = display("train", 1000, 0, false, Duration.ofHours(1))) {
            assertFalse(p.interactive());
            for (long step = 1; step <= 1000; step++) {
                p.update(step, 3.0 - step / 1000.0, 4e-5, 1234.0);
            }
            p.message("eval loss 1.234 at step 1000");
        }
        String text = buf.toString(StandardCharsets.UTF_8);
        assertFalse(text.contains("\r"), "no carriage returns in plain mode");
        assertFalse(text.contains("\033"), "no escape codes in plain mode");
        List<String> lines = lines();
        assertTrue(lines.size() <= 25, "a handful of lines, not one per step: " + lines.size() + "\n" + text);
        assertTrue(lines.contains("eval loss 1.234 at step 1000"), text);
        String last = lines.get(lines.size() - 1);
        assertTrue(last.startsWith("train"), last);
        assertTrue(last.contains("1000/1000"), last);
        assertTrue(last.contains("loss 2.000 lr 4.0e-05 1,234 tok/s"), last);
    }

    /** Each step is drawn when it is taken; a line is printed for it once the heartbeat has passed since the last one. */
    @Test
    void plainModePrintsAStepOnceTheHeartbeatHasPassed() {
        try (ProgressDisplay p = display("train", 1000, 0, false, Duration.ofSeconds(1))) {
            p.update(1, 2.0, 1e-4, 100);                 // the first step: printed
            clock.addAndGet(500_000_000L);
            p.update(2, 2.0, 1e-4, 100);                 // half a heartbeat later: not printed
            clock.addAndGet(600_000_000L);
            p.update(3, 2.0, 1e-4, 100);                 // 1.1 s after the last line: printed
            clock.addAndGet(1_100_000_000L);
            p.update(4, 2.0, 1e-4, 100);                 // printed
        }
        List<String> lines = lines();
        assertEquals(3, lines.size(), String.join("\n", lines));
        assertTrue(lines.get(0).contains(" 1/1000 ") && lines.get(1).contains(" 3/1000 ") && lines.get(2).contains(" 4/1000 "),
                String.join("\n", lines));
    }

    @Test
    void resumedRunStartsAtItsStep() {
        try (ProgressDisplay p = display("train", 200, 150, false, Duration.ofHours(1))) {
            p.update(151, 1.5, 1e-5, 5000);
            p.update(200, 1.4, 1e-5, 5000);
        }
        List<String> lines = lines();
        assertTrue(lines.size() <= 2, lines.toString());
        assertTrue(lines.get(lines.size() - 1).contains("200/200"), lines.toString());
        assertTrue(lines.get(lines.size() - 1).contains("5,000 tok/s"), lines.toString());
    }

    @Test
    void closeWithoutUpdatesPrintsAtMostOneLine() {
        display("eval", 10, 0, false, Duration.ZERO).close();
        assertTrue(lines().size() <= 1, lines().toString());
    }

    @Test
    void interactiveMessagesGoAboveTheBar() {
        ProgressDisplay p = display("train", 10, 0, true, Duration.ZERO);
        p.update(5, 2.0, 1e-4, 100);
        p.message("eval loss 1.900");
        p.update(10, 1.8, 1e-4, 100);
        p.close();
        p.close(); // idempotent
        String text = buf.toString(StandardCharsets.UTF_8);
        // the message clears the bar's line, takes it, and the bar is redrawn below it
        int msg = text.indexOf("\r\033[2Keval loss 1.900\n");
        assertTrue(msg >= 0, text);
        String after = text.substring(msg + "\r\033[2Keval loss 1.900\n".length());
        assertTrue(after.startsWith("\rtrain"), after);
        assertTrue(text.contains("10/10"), text);
        assertTrue(text.endsWith("\n"), "the bar's line is ended on close");
    }
}
