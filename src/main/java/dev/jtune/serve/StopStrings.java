package dev.jtune.serve;

import java.util.List;

/**
 * OpenAI's {@code stop}: generation ends before the first occurrence of any stop string, which is not returned. While
 * streaming, text that could still become the start of a stop string is held back until it cannot.
 */
final class StopStrings {
    private final List<String> stops;
    private final StringBuilder pending = new StringBuilder();
    private boolean hit;

    StopStrings(List<String> stops) {
        this.stops = List.copyOf(stops);
    }

    /** Takes newly decoded text; returns what is safe to emit now. After a hit, {@link #hit()} is true. */
    String push(String delta) {
        if (stops.isEmpty()) return delta;
        pending.append(delta);
        int at = -1;
        for (String s : stops) {
            int i = pending.indexOf(s);
            if (i >= 0 && (at < 0 || i < at)) at = i;
        }
        if (at >= 0) {
            hit = true;
            String out = pending.substring(0, at);
            pending.setLength(0);
            return out;
        }
        int keep = 0;   // the longest tail of pending that begins some stop string
        for (String s : stops) {
            for (int k = Math.min(s.length() - 1, pending.length()); k > keep; k--) {
                if (pending.toString().regionMatches(pending.length() - k, s, 0, k)) {
                    keep = k;
                    break;
                }
            }
        }
        String out = pending.substring(0, pending.length() - keep);
        pending.delete(0, pending.length() - keep);
        return out;
    }

    /** What is still held back, once generation has ended without a stop string. */
    String flush() {
        String out = pending.toString();
        pending.setLength(0);
        return out;
    }

    boolean hit() {
        return hit;
    }
}
