package dev.jtune.sweep;

import dev.jtune.util.UserError;

import java.math.BigDecimal;
import java.math.MathContext;
import java.util.ArrayList;
import java.util.List;
import java.util.Locale;
import java.util.Random;
import java.util.regex.Matcher;
import java.util.regex.Pattern;

/**
 * One searched key, {@code KEY=SPEC} as {@code --param} (and {@code sweep.params}) write it:
 * {@code [a,b,c]} a choice, {@code uniform(lo,hi)}, {@code loguniform(lo,hi)}, {@code int(lo,hi)} (both ends included).
 * The plan keeps values as YAML text (sweep.json, the leaderboard); {@link #typed} gives the value a trial applies to its
 * experiment ({@link dev.jtune.api.Experiment#with(java.util.Map)}).
 *
 * @param raw     the entry as written, for messages ({@code --param training.learning_rate=loguniform(1e-5,1e-3)})
 * @param key     {@code section.key}
 * @param kind    the form of SPEC
 * @param choices the choices' YAML texts (CHOICE only)
 * @param lo      the lower end (ranges only)
 * @param hi      the upper end (ranges only)
 */
record ParamSpec(String raw, String key, Kind kind, List<String> choices, double lo, double hi) {
    public enum Kind { CHOICE, UNIFORM, LOGUNIFORM, INT }

    private static final Pattern RANGE = Pattern.compile("(uniform|loguniform|int)\\s*\\(\\s*([^,()]*?)\\s*,\\s*([^,()]*?)\\s*\\)",
            Pattern.CASE_INSENSITIVE);

    /** Parses {@code KEY=SPEC}; a malformed entry is a UserError naming it. */
    public static ParamSpec parse(String raw) {
        String shown = "--param " + raw;
        int eq = raw.indexOf('=');
        if (eq <= 0) throw new UserError(shown + ": expected KEY=SPEC, e.g. training.learning_rate=loguniform(1e-5,1e-3)");
        String key = raw.substring(0, eq).strip();
        String spec = raw.substring(eq + 1).strip();
        if (spec.startsWith("[")) {
            if (!spec.endsWith("]")) throw new UserError(shown + ": a choice must end with ']', e.g. [4,8,16]");
            List<String> choices = splitTopLevel(spec.substring(1, spec.length() - 1));
            if (choices.isEmpty() || choices.stream().anyMatch(String::isEmpty)) {
                throw new UserError(shown + ": the choice is empty or has an empty item; write values between the commas, e.g. [4,8,16]");
            }
            return new ParamSpec(raw, key, Kind.CHOICE, List.copyOf(choices), Double.NaN, Double.NaN);
        }
        Matcher m = RANGE.matcher(spec);
        if (!m.matches()) {
            throw new UserError(shown + ": unknown SPEC '" + spec + "'; expected [a,b,c], uniform(lo,hi), loguniform(lo,hi) or int(lo,hi)");
        }
        Kind kind = Kind.valueOf(m.group(1).toUpperCase(Locale.ROOT));
        double lo = number(m.group(2), shown, "lo"), hi = number(m.group(3), shown, "hi");
        if (kind == Kind.INT && (lo != Math.rint(lo) || hi != Math.rint(hi))) {
            throw new UserError(shown + ": int(lo,hi) needs whole numbers, got " + m.group(2) + " and " + m.group(3));
        }
        if (lo > hi) throw new UserError(shown + ": the range is empty: lo " + m.group(2) + " > hi " + m.group(3));
        if (kind != Kind.INT && lo == hi) throw new UserError(shown + ": the range is empty: lo = hi = " + m.group(2) + " (use [" + m.group(2) + "] for one value)");
        if (kind == Kind.LOGUNIFORM && !(lo > 0)) throw new UserError(shown + ": loguniform needs lo > 0, got " + m.group(2));
        return new ParamSpec(raw, key, kind, List.of(), lo, hi);
    }

    private static double number(String s, String shown, String what) {
        try {
            double d = Double.parseDouble(s);
            if (Double.isFinite(d)) return d;
        } catch (NumberFormatException e) {
            // fall through to the message
        }
        throw new UserError(shown + ": " + what + " '" + s + "' is not a finite number");
    }

    /** Splits on commas outside brackets and quotes, so that choices may be lists: {@code [[q_proj,v_proj],all-linear]}. */
    private static List<String> splitTopLevel(String s) {
        List<String> out = new ArrayList<>();
        if (s.isBlank()) return out;
        int depth = 0, start = 0;
        char quote = 0;
        for (int i = 0; i < s.length(); i++) {
            char c = s.charAt(i);
            if (quote != 0) {
                if (c == quote) quote = 0;
            } else if (c == '"' || c == '\'') {
                quote = c;
            } else if (c == '[' || c == '{') {
                depth++;
            } else if (c == ']' || c == '}') {
                depth--;
            } else if (c == ',' && depth == 0) {
                out.add(s.substring(start, i).strip());
                start = i + 1;
            }
        }
        out.add(s.substring(start).strip());
        return out;
    }

    /** A random value (YAML text): a choice, or a draw rounded to 4 significant digits so that it reads well. */
    public String sample(Random rng) {
        return switch (kind) {
            case CHOICE -> choices.get(rng.nextInt(choices.size()));
            case INT -> Long.toString((long) lo + (long) Math.floor(rng.nextDouble() * ((long) hi - (long) lo + 1)));
            case UNIFORM -> format(lo + rng.nextDouble() * (hi - lo));
            case LOGUNIFORM -> format(Math.exp(Math.log(lo) + rng.nextDouble() * (Math.log(hi) - Math.log(lo))));
        };
    }

    /** The values a grid takes: the choices, or every integer of int(lo,hi); a continuous range has none. */
    public List<String> gridValues() {
        return switch (kind) {
            case CHOICE -> choices;
            case INT -> {
                List<String> out = new ArrayList<>();
                for (long v = (long) lo; v <= (long) hi; v++) out.add(Long.toString(v));
                yield out;
            }
            case UNIFORM, LOGUNIFORM -> throw new UserError("--param " + raw + ": a grid needs choices ([a,b,c]) or int(lo,hi); "
                    + "a continuous " + kind.name().toLowerCase(Locale.ROOT) + " range has no grid (use --method random)");
        };
    }

    /** The ends of a range as YAML text (each is checked against the key before any trial runs); none for a choice. */
    public List<String> ends() {
        if (kind == Kind.CHOICE) return List.of();
        return kind == Kind.INT ? List.of(Long.toString((long) lo), Long.toString((long) hi)) : List.of(format(lo), format(hi));
    }

    private static final com.fasterxml.jackson.databind.ObjectMapper YAML =
            new com.fasterxml.jackson.databind.ObjectMapper(new com.fasterxml.jackson.dataformat.yaml.YAMLFactory());

    /**
     * A planned value ({@link #sample}, {@link #gridValues}, {@link #ends}) as the typed value a trial sets: a Long for
     * int(lo,hi), a Double for uniform and loguniform, a choice as YAML reads it (a String, Number, Boolean or List; a
     * plain scalar that is a number in exponent form, {@code 1e-4}, is a Double).
     */
    public Object typed(String text) {
        return switch (kind) {
            case INT -> Long.parseLong(text);
            case UNIFORM, LOGUNIFORM -> Double.parseDouble(text);
            case CHOICE -> {
                Object v;
                try {
                    v = YAML.readValue(text, Object.class);
                } catch (com.fasterxml.jackson.core.JsonProcessingException e) {
                    throw new UserError("--param " + raw + ": the choice " + text + " is not YAML: " + e.getOriginalMessage(), e);
                }
                if (v instanceof String str && !text.strip().startsWith("\"") && !text.strip().startsWith("'")
                        && str.matches("[-+]?(\\d+\\.?\\d*|\\.\\d+)[eE][-+]?\\d+")) {
                    v = Double.parseDouble(str);   // YAML 1.1 wants a dot in 1.0e-4; --set reads 1e-4 as a number too
                }
                yield v;
            }
        };
    }

    /** 4 significant digits, then Double.toString: a value that YAML reads back as this double. */
    static String format(double v) {
        return Double.toString(new BigDecimal(v).round(new MathContext(4)).doubleValue());
    }
}
