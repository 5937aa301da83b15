package dev.jtune.config;

import com.fasterxml.jackson.core.JacksonException;
import com.fasterxml.jackson.core.JsonLocation;
import com.fasterxml.jackson.core.JsonParser;
import com.fasterxml.jackson.core.JsonToken;
import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ArrayNode;
import com.fasterxml.jackson.databind.node.JsonNodeFactory;
import com.fasterxml.jackson.databind.node.ObjectNode;
import com.fasterxml.jackson.dataformat.yaml.YAMLFactory;
import org.yaml.snakeyaml.error.MarkedYAMLException;

import java.io.IOException;
import java.io.UncheckedIOException;
import java.lang.reflect.ParameterizedType;
import java.lang.reflect.Type;
import java.nio.file.InvalidPathException;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Collection;
import java.util.Iterator;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.concurrent.ConcurrentHashMap;
import java.util.regex.Pattern;
import java.util.stream.Collectors;

/** YAML reading with line numbers, value conversion with readable type errors, and round-trip-safe scalar writing. */
final class Yaml {
    private Yaml() {}

    /** Not YAMLFactory.builder().build(): that leaves out the parser's default EMPTY_STRING_AS_NULL ("key:" is null). */
    private static final YAMLFactory FACTORY = new YAMLFactory();
    private static final JsonNodeFactory NODES = JsonNodeFactory.instance;
    private static final ObjectMapper JSON = new ObjectMapper();
    private static final Map<String, JsonNode> DEFAULTS = new ConcurrentHashMap<>();

    /** A parsed document: {@code root} is null for an empty one; {@code ok} is false after a syntax error. */
    record Parsed(JsonNode root, int rootLine, boolean ok) {}

    /** Raised by {@link #convert} with the whole message ("expected a number, got a string ('fast')"). */
    static final class Mismatch extends Exception {
        Mismatch(String message) {
            super(message, null, false, false);
        }
    }

    /**
     * Parses one YAML document. Keys get their line recorded (when {@code recordLines}) under dotted names starting
     * at {@code keyPrefix}; duplicate keys and syntax errors are reported to {@code problems}, syntax errors with
     * {@code where} after the file name and, when {@code recordLines}, the line and column.
     */
    static Parsed parse(String text, String keyPrefix, Problems problems, String where, boolean recordLines) {
        try (JsonParser p = FACTORY.createParser(text)) {
            JsonToken t = p.nextToken();
            if (t == null) return new Parsed(null, 0, true);
            int rootLine = p.currentTokenLocation().getLineNr();
            JsonNode root = read(p, keyPrefix, problems, recordLines);
            if (p.nextToken() != null) {
                int line = p.currentTokenLocation().getLineNr();
                problems.general(where + (recordLines ? ":" + line : ""), line,
                        "a second YAML document starts here; an experiment is one document");
                return new Parsed(root, rootLine, false);
            }
            return new Parsed(root, rootLine, true);
        } catch (JacksonException e) {
            JsonLocation loc = e.getLocation();
            int line = loc == null ? -1 : loc.getLineNr(), column = loc == null ? -1 : loc.getColumnNr();
            String msg = e.getOriginalMessage() == null ? "unreadable" : e.getOriginalMessage().strip().lines().findFirst().orElse("");
            if (e.getCause() instanceof MarkedYAMLException y && y.getProblemMark() != null) {
                // SnakeYAML knows where the problem is; Jackson's location is where the construct began
                line = y.getProblemMark().getLine() + 1;
                column = y.getProblemMark().getColumn() + 1;
                if (y.getProblem() != null) msg = y.getProblem() + (y.getContext() != null ? " (" + y.getContext() + ")" : "");
            }
            boolean located = recordLines && line > 0;
            problems.general(where + (located ? ":" + line + ":" + column : ""),
                    located ? line : Integer.MAX_VALUE, "YAML syntax error: " + msg);
            return new Parsed(null, 0, false);
        } catch (IOException e) {
            throw new UncheckedIOException(e);   // reading from a String
        }
    }

    private static JsonNode read(JsonParser p, String key, Problems problems, boolean recordLines) throws IOException {
        switch (p.currentToken()) {
            case START_OBJECT: {
                ObjectNode o = NODES.objectNode();
                while (p.nextToken() == JsonToken.FIELD_NAME) {
                    String name = p.currentName();
                    int line = p.currentTokenLocation().getLineNr();
                    String child = key.isEmpty() ? name : key + "." + name;
                    p.nextToken();
                    JsonNode value = read(p, child, problems, recordLines);
                    if (o.has(name)) {
                        Integer first = problems.lineOf(child);
                        problems.add(child, "given twice" + (first != null && recordLines ? " (lines " + first + " and " + line + ")" : "")
                                + "; keep one");
                    } else if (recordLines) {
                        problems.line(child, line);
                    }
                    o.set(name, value);
                }
                return o;
            }
            case START_ARRAY: {
                ArrayNode a = NODES.arrayNode();
                int i = 0;
                while (p.nextToken() != JsonToken.END_ARRAY) a.add(read(p, key + "[" + i++ + "]", problems, recordLines));
                return a;
            }
            case VALUE_STRING:
                problems.rawText(key, p.getText());
                return NODES.textNode(p.getText());
            case VALUE_NUMBER_INT:
                switch (p.getNumberType()) {
                    case INT: return NODES.numberNode(p.getIntValue());
                    case LONG: return NODES.numberNode(p.getLongValue());
                    default: return NODES.numberNode(p.getBigIntegerValue());
                }
            case VALUE_NUMBER_FLOAT: {
                String text = p.getText();
                try {
                    return NODES.numberNode(p.getDoubleValue());
                } catch (JacksonException e) {   // .inf, .nan: YAML floats Java does not parse
                    problems.add(key, "'" + text + "' is not a finite number");
                    return NODES.nullNode();
                }
            }
            case VALUE_TRUE: return NODES.booleanNode(true);
            case VALUE_FALSE: return NODES.booleanNode(false);
            case VALUE_NULL: return NODES.nullNode();
            default: return NODES.textNode(p.getText());
        }
    }

    /** A {@link Key} default as a node (parsed as YAML, like a value in the file). */
    static JsonNode defaultNode(String literal) {
        return DEFAULTS.computeIfAbsent(literal, l -> {
            Problems scratch = new Problems("@Key default");
            Parsed parsed = parse(l, "default", scratch, "", false);
            if (!parsed.ok() || !scratch.isEmpty()) throw new IllegalStateException("bad @Key default '" + l + "': " + scratch.messages());
            return parsed.root() == null ? NODES.nullNode() : parsed.root();
        });
    }

    /** The value of a non-null node as {@code type}, or a Mismatch saying what was expected. */
    static Object convert(JsonNode n, Type type) throws Mismatch {
        if (type == String.class) {
            if (n.isTextual()) return n.textValue();
            throw mismatch("a string", n);
        }
        if (type == Path.class) {
            if (!n.isTextual()) throw mismatch("a path", n);
            if (n.textValue().isBlank()) throw new Mismatch("expected a path, got an empty string");
            try {
                return Path.of(n.textValue()).toAbsolutePath().normalize();
            } catch (InvalidPathException e) {
                throw new Mismatch("not a valid path: " + e.getReason());
            }
        }
        if (type == double.class || type == Double.class) {
            if (!n.isNumber()) throw mismatch("a number", n);
            double d = n.doubleValue();
            if (!Double.isFinite(d)) throw new Mismatch("expected a finite number, got " + n.asText());
            return d;
        }
        if (type == int.class || type == Integer.class) return (int) integral(n, Integer.MIN_VALUE, Integer.MAX_VALUE);
        if (type == long.class || type == Long.class) return integral(n, Long.MIN_VALUE, Long.MAX_VALUE);
        if (type == boolean.class || type == Boolean.class) {
            if (n.isBoolean()) return n.booleanValue();
            throw mismatch("true or false", n);
        }
        if (type instanceof Class<?> c && c.isEnum()) return enumValue(n, c);
        if (type instanceof ParameterizedType pt && pt.getRawType() == List.class
                && pt.getActualTypeArguments()[0] == String.class) {
            if (n.isTextual()) return List.of(n.textValue());   // one name, as PEFT's target_modules="all-linear"
            if (!n.isArray()) throw mismatch("a list of strings", n);
            List<String> out = new ArrayList<>();
            for (JsonNode e : n) {
                if (!e.isTextual()) throw mismatch("a list of strings", e);
                out.add(e.textValue());
            }
            return List.copyOf(out);
        }
        if (type instanceof ParameterizedType pt && pt.getRawType() == Map.class
                && pt.getActualTypeArguments()[0] == String.class && pt.getActualTypeArguments()[1] == Double.class) {
            if (!n.isObject()) throw mismatch("a mapping of names to numbers, e.g. {min_lr_rate: 0.1}", n);
            Map<String, Double> out = new java.util.LinkedHashMap<>();
            for (Iterator<Map.Entry<String, JsonNode>> it = n.fields(); it.hasNext(); ) {
                Map.Entry<String, JsonNode> e = it.next();
                if (!e.getValue().isNumber() || !Double.isFinite(e.getValue().doubleValue())) {
                    throw new Mismatch(e.getKey() + ": expected a finite number, got " + describe(e.getValue()));
                }
                out.put(e.getKey(), e.getValue().doubleValue());
            }
            return java.util.Collections.unmodifiableMap(out);
        }
        if (type instanceof ParameterizedType pt && pt.getRawType() == Map.class
                && pt.getActualTypeArguments()[0] == String.class && pt.getActualTypeArguments()[1] == Boolean.class) {
            if (!n.isObject()) throw mismatch("a mapping of names to true or false, e.g. {offload: true}", n);
            Map<String, Boolean> out = new java.util.LinkedHashMap<>();
            for (Iterator<Map.Entry<String, JsonNode>> it = n.fields(); it.hasNext(); ) {
                Map.Entry<String, JsonNode> e = it.next();
                if (!e.getValue().isBoolean()) throw new Mismatch(e.getKey() + ": expected true or false, got " + describe(e.getValue()));
                out.put(e.getKey(), e.getValue().booleanValue());
            }
            return java.util.Collections.unmodifiableMap(out);
        }
        throw new IllegalStateException("unsupported @Key type " + type);
    }

    private static long integral(JsonNode n, long min, long max) throws Mismatch {
        if (n.isIntegralNumber()) {
            if (n.bigIntegerValue().bitLength() < 64) {
                long v = n.longValue();
                if (v >= min && v <= max) return v;
            }
            throw new Mismatch("expected an integer between " + min + " and " + max + ", got " + n.asText());
        }
        if (n.isFloatingPointNumber()) {   // 1e3 is a float in YAML; accept it where it is a whole number
            double d = n.doubleValue();
            if (d == Math.rint(d) && d >= min && d <= max) return (long) d;
        }
        throw mismatch("an integer", n);
    }

    private static Object enumValue(JsonNode n, Class<?> c) throws Mismatch {
        List<String> names = enumNames(c);
        if (n.isTextual()) {
            String s = n.textValue().strip().toLowerCase(Locale.ROOT);
            int i = names.indexOf(s);
            if (i >= 0) return c.getEnumConstants()[i];
            throw new Mismatch("unknown value '" + n.textValue() + "'; expected one of: " + String.join(", ", names)
                    + didYouMean(s, names));
        }
        if (n.isBoolean()) {
            // YAML 1.1 reads unquoted on/off/yes/no as booleans: `kernels: off` arrives as false
            int i = names.indexOf(n.booleanValue() ? "on" : "off");
            if (i >= 0) return c.getEnumConstants()[i];
            throw new Mismatch("expected one of: " + String.join(", ", names) + ", got " + n.asText()
                    + " (YAML reads unquoted on/off/yes/no/true/false as a boolean)");
        }
        throw mismatch("one of: " + String.join(", ", names), n);
    }

    static List<String> enumNames(Class<?> c) {
        List<String> out = new ArrayList<>();
        for (Object e : c.getEnumConstants()) out.add(((Enum<?>) e).name().toLowerCase(Locale.ROOT));
        return out;
    }

    private static Mismatch mismatch(String expected, JsonNode got) {
        String hint = got.isObject() && expected.contains("string") || got.isObject() && expected.equals("a path")
                ? " (quote the value if it contains ': ')" : "";
        return new Mismatch("expected " + expected + ", got " + describe(got) + hint);
    }

    /** "a string ('fast')", "a list", "a mapping", "null", "a number (1.5)". */
    static String describe(JsonNode n) {
        if (n == null || n.isNull() || n.isMissingNode()) return "null";
        if (n.isTextual()) return "a string ('" + n.textValue() + "')";
        if (n.isIntegralNumber()) return "an integer (" + n.asText() + ")";
        if (n.isNumber()) return "a number (" + n.asText() + ")";
        if (n.isBoolean()) return n.asText();
        if (n.isArray()) return "a list";
        if (n.isObject()) return "a mapping";
        return n.getNodeType().toString().toLowerCase(Locale.ROOT);
    }

    // ---- writing -------------------------------------------------------------------------------------------

    private static final Pattern PLAIN = Pattern.compile("[A-Za-z0-9_./][A-Za-z0-9_./+ -]*");

    /** A value as a YAML scalar (or flow list) that reads back as the same value. */
    static String scalar(Object v) {
        if (v == null) return "null";
        if (v instanceof Enum<?> e) return e.name().toLowerCase(Locale.ROOT);
        if (v instanceof Path p) return string(p.toString());
        if (v instanceof String s) return string(s);
        if (v instanceof Collection<?> c) return c.stream().map(Yaml::scalar).collect(Collectors.joining(", ", "[", "]"));
        if (v instanceof Record r) {   // a nested mapping of keys (model.quantization)
            StringBuilder b = new StringBuilder("{");
            for (java.lang.reflect.RecordComponent c : r.getClass().getRecordComponents()) {
                try {
                    b.append(b.length() > 1 ? ", " : "").append(snake(c.getName())).append(": ").append(scalar(c.getAccessor().invoke(r)));
                } catch (ReflectiveOperationException e) {
                    throw new IllegalStateException(e);
                }
            }
            return b.append('}').toString();
        }
        if (v instanceof Map<?, ?> m) {
            return m.entrySet().stream().map(e -> string(e.getKey().toString()) + ": " + scalar(e.getValue()))
                    .collect(Collectors.joining(", ", "{", "}"));
        }
        return v.toString();   // numbers (Double.toString reads back exactly), booleans
    }

    /** Plain when that reads back as the same string (not a number, boolean, null, comment...), else double-quoted. */
    static String string(String s) {
        if (PLAIN.matcher(s).matches() && !s.endsWith(" ")) {
            Problems scratch = new Problems("scalar");
            Parsed parsed = parse("k: " + s, "", scratch, "", false);
            if (parsed.ok() && parsed.root() != null && scratch.isEmpty()) {
                JsonNode back = parsed.root().get("k");
                if (back != null && back.isTextual() && back.textValue().equals(s)) return s;
            }
        }
        try {
            return JSON.writeValueAsString(s);   // JSON string escapes are valid in YAML double-quoted scalars
        } catch (IOException e) {
            throw new UncheckedIOException(e);
        }
    }

    // ---- names ---------------------------------------------------------------------------------------------

    /** learningRate → learning_rate, adamBeta1 → adam_beta1. */
    static String snake(String camel) {
        StringBuilder b = new StringBuilder();
        for (char ch : camel.toCharArray()) {
            if (Character.isUpperCase(ch)) b.append('_').append(Character.toLowerCase(ch));
            else b.append(ch);
        }
        return b.toString();
    }

    /** "; did you mean 'x'?" for the closest candidate, or "" when none is close. */
    static String didYouMean(String wrong, Collection<String> candidates) {
        String best = closest(wrong, candidates);
        return best == null ? "" : "; did you mean '" + best + "'?";
    }

    static String closest(String wrong, Collection<String> candidates) {
        String w = wrong.toLowerCase(Locale.ROOT);
        String best = null;
        int bestD = Integer.MAX_VALUE;
        for (String c : candidates) {
            int d = levenshtein(w, c);
            if (d < bestD) {
                bestD = d;
                best = c;
            }
        }
        if (best != null && bestD <= Math.max(2, w.length() / 3)) return best;
        for (String c : candidates) {   // batch_size → per_device_train_batch_size
            if (w.length() >= 4 && (c.endsWith(w) || c.startsWith(w))) return c;
        }
        return null;
    }

    static int levenshtein(String a, String b) {
        int[] prev = new int[b.length() + 1], cur = new int[b.length() + 1];
        for (int j = 0; j <= b.length(); j++) prev[j] = j;
        for (int i = 1; i <= a.length(); i++) {
            cur[0] = i;
            for (int j = 1; j <= b.length(); j++) {
                int sub = prev[j - 1] + (a.charAt(i - 1) == b.charAt(j - 1) ? 0 : 1);
                cur[j] = Math.min(sub, Math.min(prev[j] + 1, cur[j - 1] + 1));
            }
            int[] t = prev;
            prev = cur;
            cur = t;
        }
        return prev[b.length()];
    }
}
