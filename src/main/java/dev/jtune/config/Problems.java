package dev.jtune.config;

import dev.jtune.util.UserError;

import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Comparator;
import java.util.HashMap;
import java.util.HashSet;
import java.util.List;
import java.util.Map;
import java.util.Set;

/**
 * Collects every mistake found in an experiment file so that they are reported together, one per line, each naming
 * the file, the line (or the {@code --set} override) and the dotted key:
 *
 * <pre>
 * experiment.yaml:12: training.learning_rat: unknown key; did you mean 'learning_rate'?
 * experiment.yaml (--set data.format=xml): data.format: unknown value 'xml'; expected one of: text, instruction, chat
 * </pre>
 *
 * A key reports at most one problem: once a key is wrong (say, not a number), checks that involve it are skipped
 * instead of piling up consequences.
 */
final class Problems {
    private record Entry(int line, String text) {}

    private static final class Shared {
        final String fileName;
        final Map<String, Integer> lines = new HashMap<>();
        final Map<String, String> overrides = new HashMap<>();
        final Map<String, String> rawText = new HashMap<>();
        final List<Entry> entries = new ArrayList<>();
        final Set<String> bad = new HashSet<>();

        Shared(String fileName) {
            this.fileName = fileName;
        }
    }

    private final Shared shared;
    private final String prefix;

    Problems(String fileName) {
        this(new Shared(fileName), "");
    }

    private Problems(Shared shared, String prefix) {
        this.shared = shared;
        this.prefix = prefix;
    }

    /** A view whose keys are relative to {@code section} ({@code "learning_rate"} in {@code "training"}). */
    public Problems section(String section) {
        return new Problems(shared, prefix + section + ".");
    }

    /** The full dotted key for a key relative to this view. */
    public String key(String key) {
        return prefix + key;
    }

    /** Reports a problem with {@code key}, unless that key already has one. */
    public void add(String key, String message) {
        String full = key(key);
        if (!shared.bad.add(full)) return;
        String override = shared.overrides.get(full);
        Integer line = override == null ? shared.lines.get(full) : null;
        String where = override != null ? shared.fileName + " (--set " + override + ")"
                : line != null ? shared.fileName + ":" + line : shared.fileName;
        shared.entries.add(new Entry(line == null ? Integer.MAX_VALUE : line, where + ": " + full + ": " + message));
    }

    /** Reports {@code message} for {@code key} when {@code ok} is false and none of {@code involved} is already wrong. */
    public void check(boolean ok, String key, String message, String... involved) {
        if (!ok && ok(involved)) add(key, message);
    }

    /** Whether none of these keys (relative to this view) has been reported. */
    public boolean ok(String... keys) {
        for (String k : keys) {
            if (shared.bad.contains(key(k))) return false;
        }
        return true;
    }

    /**
     * A path for a message: as written, plus where it resolved to when it was relative (relative paths resolve
     * against the working directory, which surprises people who expect the experiment file's directory).
     */
    public String describePath(String key, Path resolved) {
        String raw = shared.rawText.get(key(key));
        if (raw != null && !Path.of(raw).isAbsolute()) {
            return "'" + raw + "' (relative to the working directory: " + resolved + ")";
        }
        return "'" + resolved + "'";
    }

    /** A problem that is not about one key (a syntax error, a malformed --set). {@code where} follows the file name. */
    void general(String where, int line, String message) {
        shared.entries.add(new Entry(line, shared.fileName + where + ": " + message));
    }

    void markBad(String fullKey) {
        shared.bad.add(fullKey);
    }

    void line(String fullKey, int line) {
        shared.lines.put(fullKey, line);
    }

    void override(String fullKey, String rawOverride) {
        shared.overrides.put(fullKey, rawOverride);
    }

    void rawText(String fullKey, String text) {
        shared.rawText.put(fullKey, text);
    }

    Integer lineOf(String fullKey) {
        return shared.lines.get(fullKey);
    }

    boolean isEmpty() {
        return shared.entries.isEmpty();
    }

    /** The problems, sorted by line (those without a line last), one per string. */
    List<String> messages() {
        return shared.entries.stream().sorted(Comparator.comparingInt(Entry::line)).map(Entry::text).toList();
    }

    /** Throws a {@link UserError} listing every problem, if there is any. */
    void throwIfAny() {
        if (isEmpty()) return;
        List<String> m = messages();
        String text = m.size() == 1 ? m.get(0)
                : shared.fileName + ": " + m.size() + " problems:\n" + String.join("\n", m);
        throw new UserError(text);
    }
}
