package dev.jtune.eval;

import java.util.List;
import java.util.regex.Pattern;

/**
 * sacreBLEU's default BLEU tokenizer, "13a" (mteval-v13a.pl), as in sacrebleu 2.x {@code tokenizers/tokenizer_13a.py}
 * and {@code tokenizer_re.py}: unescape four HTML entities, then space out ASCII punctuation and symbols, periods and
 * commas unless next to a digit, and a dash after a digit. Letters of any script, accents and "¿¡«»" are untouched.
 */
final class Tokenizer13a {
    private Tokenizer13a() {}

    // tokenizer_re.py, in order; Java's replaceAll, like re.sub, replaces non-overlapping matches left to right
    private static final Pattern SYMBOLS = Pattern.compile("([\\{-\\~\\[-\\` -\\&\\(-\\+\\:-\\@\\/])");
    private static final Pattern PERIOD_COMMA_AFTER_NON_DIGIT = Pattern.compile("([^0-9])([\\.,])");
    private static final Pattern PERIOD_COMMA_BEFORE_NON_DIGIT = Pattern.compile("([\\.,])([^0-9])");
    private static final Pattern DASH_AFTER_DIGIT = Pattern.compile("([0-9])(-)");

    /** The tokens of {@code line}. */
    static List<String> tokens(String line) {
        line = line.replace("<skipped>", "").replace("-\n", "").replace("\n", " ");
        if (line.indexOf('&') >= 0) {
            line = line.replace("&quot;", "\"").replace("&amp;", "&").replace("&lt;", "<").replace("&gt;", ">");
        }
        line = " " + line + " ";
        line = SYMBOLS.matcher(line).replaceAll(" $1 ");
        line = PERIOD_COMMA_AFTER_NON_DIGIT.matcher(line).replaceAll("$1 $2 ");
        line = PERIOD_COMMA_BEFORE_NON_DIGIT.matcher(line).replaceAll(" $1 $2");
        line = DASH_AFTER_DIGIT.matcher(line).replaceAll("$1 $2 ");
        return PyText.split(line);
    }
}
