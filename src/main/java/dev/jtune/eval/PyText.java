package dev.jtune.eval;

import java.util.ArrayList;
import java.util.List;
import java.util.Locale;

/**
 * The few Python {@code str} behaviours the reference metrics depend on, by code point (Python indexes strings by
 * code point, Java by UTF-16 unit): {@code isspace}, {@code split()}, the {@code \w} class of {@code re}, and
 * {@code lower()}.
 */
final class PyText {
    private PyText() {}

    /**
     * Python's {@code str.isspace}: bidirectional class WS, B or S, or category Zs. Java's
     * {@link Character#isWhitespace} leaves out the no-break spaces (U+00A0, U+2007, U+202F) and U+0085.
     */
    static boolean isSpace(int cp) {
        return Character.isWhitespace(cp) || Character.getType(cp) == Character.SPACE_SEPARATOR || cp == 0x85;
    }

    /** Python's {@code str.split()}: runs of whitespace separate, none empty. */
    static List<String> split(String s) {
        List<String> out = new ArrayList<>();
        int start = -1;
        for (int i = 0; i < s.length(); ) {
            int cp = s.codePointAt(i);
            if (isSpace(cp)) {
                if (start >= 0) out.add(s.substring(start, i));
                start = -1;
            } else if (start < 0) {
                start = i;
            }
            i += Character.charCount(cp);
        }
        if (start >= 0) out.add(s.substring(start));
        return out;
    }

    /** Python's {@code str.rstrip()}. */
    static String rstrip(String s) {
        int end = s.length();
        while (end > 0) {
            int cp = s.codePointBefore(end);
            if (!isSpace(cp)) break;
            end -= Character.charCount(cp);
        }
        return s.substring(0, end);
    }

    /**
     * A word character of Python's {@code re} on str patterns ({@code \w}, and so {@code \b}): {@code str.isalnum()}
     * (letters Lu Ll Lt Lm Lo, numbers Nd Nl No) or the underscore. Combining marks (Mn) are not.
     */
    static boolean isWord(int cp) {
        if (cp == '_') return true;
        return switch (Character.getType(cp)) {
            case Character.UPPERCASE_LETTER, Character.LOWERCASE_LETTER, Character.TITLECASE_LETTER,
                    Character.MODIFIER_LETTER, Character.OTHER_LETTER, Character.DECIMAL_DIGIT_NUMBER,
                    Character.LETTER_NUMBER, Character.OTHER_NUMBER -> true;
            default -> false;
        };
    }

    /** Python's {@code str.lower()}: full Unicode lowercase mapping, independent of the locale. */
    static String lower(String s) {
        return s.toLowerCase(Locale.ROOT);
    }

    static int[] codePoints(String s) {
        return s.codePoints().toArray();
    }
}
