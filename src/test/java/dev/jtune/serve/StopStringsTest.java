package dev.jtune.serve;

import org.junit.jupiter.api.Test;

import java.util.List;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

/** Stop strings across token boundaries: nothing of a stop string is ever emitted, nothing else is held back at the end. */
class StopStringsTest {
    static String feed(StopStrings s, String... pieces) {
        StringBuilder out = new StringBuilder();
        for (String p : pieces) {
            out.append(s.push(p));
            if (s.hit()) return out.toString();
        }
        return out.append(s.flush()).toString();
    }

    @Test
    void cutsBeforeAStopSplitOverTokens() {
        StopStrings s = new StopStrings(List.of("\nUser:"));
        assertEquals("Hello there", feed(s, "Hello", " there", "\nUs", "er:", " more"));
        assertTrue(s.hit());
    }

    @Test
    void holdsBackOnlyWhatCouldStartAStop() {
        StopStrings s = new StopStrings(List.of("END"));
        assertEquals("The ", s.push("The E"));   // "E" may be the start of END
        assertEquals("", s.push("N"));           // so may "EN"
        assertEquals("ENd", s.push("d"));        // "ENd" is not
    }

    @Test
    void releasesAFalseStartAndFlushesTheRest() {
        StopStrings s = new StopStrings(List.of("END", "###"));
        assertEquals("an ENtry # and #", feed(s, "an E", "N", "try #", " and #"));
        assertFalse(s.hit());
    }

    @Test
    void theEarliestOfSeveralStopsWins() {
        assertEquals("a", feed(new StopStrings(List.of("c", "b")), "abc"));
        assertEquals("xyz", feed(new StopStrings(List.of()), "x", "y", "z"));
    }
}
