package dev.jtune.api;

import com.fasterxml.jackson.core.JsonProcessingException;
import com.fasterxml.jackson.databind.ObjectMapper;
import dev.jtune.util.UserError;

import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.Objects;

/**
 * An experiment: a YAML experiment file with its overrides, read, completed (every default filled in) and validated
 * exactly as {@code jtune train FILE --set KEY=VALUE} does it. Immutable: {@link #with} returns a new experiment.
 *
 * <pre>{@code
 * Experiment exp = Experiment.load(Path.of("configs/demo.yaml"))
 *         .with("training.max_steps", 4)
 *         .with("training.output_dir", "runs/api");
 * }</pre>
 *
 * <p>Every mistake is a {@link UserError} naming the file, the line or the key and what was expected; nothing is
 * trained or written before an experiment is valid.
 */
public final class Experiment {
    private static final ObjectMapper JSON = new ObjectMapper();

    private final Path file;
    private final List<String> overrides;
    private final dev.jtune.config.Experiment resolved;

    private Experiment(Path file, List<String> overrides) {
        this.file = file;
        this.overrides = List.copyOf(overrides);
        this.resolved = dev.jtune.config.Experiment.load(file, this.overrides);
    }

    /**
     * Reads and validates an experiment file (the checks against the model's config.json included).
     *
     * @param file the YAML file; relative paths inside it resolve against the working directory, as for the CLI
     * @throws UserError listing every problem found
     */
    public static Experiment load(Path file) {
        return new Experiment(Objects.requireNonNull(file, "file"), List.of());
    }

    /**
     * Reads an experiment file with {@code --set} overrides in their command-line form.
     *
     * @param overrides {@code section.key=value} strings, applied in order; values are YAML
     * @throws UserError listing every problem found, naming a bad key
     */
    public static Experiment load(Path file, List<String> overrides) {
        return new Experiment(Objects.requireNonNull(file, "file"), Objects.requireNonNull(overrides, "overrides"));
    }

    /**
     * The same experiment with one key set, as {@code --set key=value} sets it, validated again.
     *
     * @param key   a dotted key, {@code section.key} ({@code training.learning_rate}); the keys of docs/configuration.md
     * @param value a String, Number, Boolean, a List of them, or null (the key's default)
     * @throws UserError naming the key when it does not exist or the value does not fit it
     */
    public Experiment with(String key, Object value) {
        Objects.requireNonNull(key, "key");
        List<String> next = new ArrayList<>(overrides);
        next.add(key + "=" + yamlValue(key, value));
        return new Experiment(file, next);
    }

    /**
     * The same experiment with several keys set at once (in the map's order), validated once: for values that are
     * only valid together.
     *
     * @param values dotted keys to values, each as {@link #with(String, Object)} takes them
     * @throws UserError naming every key that does not exist or whose value does not fit it
     */
    public Experiment with(Map<String, ?> values) {
        Objects.requireNonNull(values, "values");
        List<String> next = new ArrayList<>(overrides);
        values.forEach((key, value) -> next.add(Objects.requireNonNull(key, "key") + "=" + yamlValue(key, value)));
        return new Experiment(file, next);
    }

    /** The experiment file it was read from. */
    public Path file() {
        return file;
    }

    /** The overrides applied on top of the file, in order, as {@code section.key=value}. */
    public List<String> overrides() {
        return overrides;
    }

    /** Where the run writes: {@code training.output_dir}, absolute. */
    public Path outputDir() {
        return resolved.training().outputDir();
    }

    /** The resolved experiment as YAML: every key with its effective value, as config.resolved.yaml holds it. */
    public String toYaml() {
        return resolved.toYaml();
    }

    /** The validated settings (internal: {@code dev.jtune.config} is not a stable API). */
    public dev.jtune.config.Experiment settings() {
        return resolved;
    }

    /** A value as a YAML scalar or flow sequence: JSON, which is YAML, so strings with ':' or '#' stay strings. */
    private static String yamlValue(String key, Object value) {
        if (value == null) return "null";
        if (!(value instanceof String || value instanceof Number || value instanceof Boolean || value instanceof List<?>
                || value instanceof Path)) {
            throw new UserError(key + ": expected a String, Number, Boolean or List value, got " + value.getClass().getSimpleName());
        }
        try {
            return JSON.writeValueAsString(value instanceof Path p ? p.toString() : value);
        } catch (JsonProcessingException e) {
            throw new UserError(key + ": cannot write the value " + value + " as YAML: " + e.getOriginalMessage(), e);
        }
    }

    @Override
    public String toString() {
        return file + (overrides.isEmpty() ? "" : " " + String.join(" ", overrides));
    }
}
