package dev.jtune.config;

import dev.jtune.util.UserError;

import java.lang.reflect.RecordComponent;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Objects;

/**
 * An experiment file ({@code jtune train experiment.yaml}): immutable, complete (every default filled in) and
 * valid. {@link #load} refuses every mistake with one {@link UserError} that lists all of them, each naming the file,
 * the line and the dotted key ({@code training.learning_rate}), before any work starts.
 *
 * <p>The jobs live in their own files: {@link ExperimentLoader} (reading, {@code --set}, the order of the checks),
 * {@link SectionBinder} (YAML mapping → section record), {@link CrossChecks} (between sections),
 * {@link ModelChecks} (against the model's config.json) and {@link ExperimentWriter} (the resolved YAML).
 *
 * <p><b>Paths.</b> Relative paths in the file (and in {@code --set}) resolve against the current working directory,
 * as in Hugging Face scripts and axolotl, not against the directory of the experiment file. The records hold
 * absolute, normalised paths, so the resolved file ({@link #writeResolved}) means the same from any directory.
 *
 * <p><b>Sections.</b> Each record component after {@code file} is a section; its name is the YAML section name
 * and its type a {@link Section} record. Adding a section (say {@code lora:}) is one record plus one component
 * here; until then an unknown top-level section is refused like any unknown key.
 *
 * <p><b>Equality</b> ignores {@link #file()}: the same settings read from two files are the same experiment, so
 * {@code load(x).writeResolved(r)} followed by {@code load(r)} gives an equal experiment.
 *
 * @param file the experiment file it was read from (absolute), for messages
 */
public record Experiment(Path file, ModelSection model, DataSection data, TrainingSection training, LoraSection lora,
                         SweepSection sweep, PreferenceSection preference) {

    /** Section name → record type, in the order of the components (and of the resolved file). */
    private static final Map<String, Class<? extends Section>> SECTIONS = sectionTypes();

    public Experiment {
        Objects.requireNonNull(model, "model");
        Objects.requireNonNull(data, "data");
        Objects.requireNonNull(training, "training");
        Objects.requireNonNull(lora, "lora");
        Objects.requireNonNull(sweep, "sweep");
        Objects.requireNonNull(preference, "preference");
    }

    /** The names of the sections an experiment file may have, in order. */
    public static List<String> sectionNames() {
        return List.copyOf(SECTIONS.keySet());
    }

    /** The keys of a section, in order (YAML names, e.g. {@code learning_rate}). */
    public static List<String> keys(String section) {
        List<String> out = new ArrayList<>();
        for (RecordComponent c : sectionType(section).getRecordComponents()) out.add(Yaml.snake(c.getName()));
        return out;
    }

    /** The record type of a section ({@code "data"} → {@link DataSection}). */
    static Class<? extends Section> sectionType(String section) {
        Class<? extends Section> type = SECTIONS.get(section);
        if (type == null) throw new IllegalArgumentException("no section " + section);
        return type;
    }

    /**
     * Reads, completes and validates an experiment file, including the checks against the model's config.json
     * ({@link ModelChecks}).
     *
     * @param yaml      the YAML file; relative paths inside it resolve against the working directory
     * @param overrides {@code section.key=value} strings (from {@code --set}), applied in order before validation;
     *                  values are YAML ({@code 1e-4}, {@code true}, {@code null}, {@code [q_proj, v_proj]})
     * @throws UserError listing every problem found, one per line
     */
    public static Experiment load(Path yaml, List<String> overrides) {
        Objects.requireNonNull(yaml, "yaml");
        Objects.requireNonNull(overrides, "overrides");
        return ExperimentLoader.load(yaml, overrides);
    }

    /**
     * The resolved experiment as YAML: every key of every section with its effective value (defaults and derived
     * defaults filled in, absolute paths), in the layout of an experiment file. {@link #load} reads it back to an
     * equal experiment.
     */
    public String toYaml() {
        return ExperimentWriter.toYaml(this);
    }

    /**
     * Writes {@link #toYaml()} to {@code target} (conventionally {@code output_dir/config.resolved.yaml}), creating
     * its directory; the file is replaced atomically where the file system allows.
     */
    public void writeResolved(Path target) {
        ExperimentWriter.write(this, target);
    }

    /** A copy read from another file; the settings are unchanged. */
    public Experiment withFile(Path file) {
        return new Experiment(file, model, data, training, lora, sweep, preference);
    }

    /** The sections in order, as records. */
    List<Section> sections() {
        List<Section> out = new ArrayList<>();
        RecordComponent[] comps = Experiment.class.getRecordComponents();
        for (int i = 1; i < comps.length; i++) {
            try {
                out.add((Section) comps[i].getAccessor().invoke(this));
            } catch (ReflectiveOperationException e) {
                throw new IllegalStateException(e);
            }
        }
        return out;
    }

    /** Equal when every section is equal; {@link #file()} is where it was read from, not part of the settings. */
    @Override
    public boolean equals(Object o) {
        return o instanceof Experiment e && sections().equals(e.sections());
    }

    @Override
    public int hashCode() {
        return sections().hashCode();
    }

    @SuppressWarnings("unchecked")
    private static Map<String, Class<? extends Section>> sectionTypes() {
        Map<String, Class<? extends Section>> out = new LinkedHashMap<>();
        RecordComponent[] comps = Experiment.class.getRecordComponents();
        for (int i = 1; i < comps.length; i++) {
            Class<?> t = comps[i].getType();
            if (!Section.class.isAssignableFrom(t) || !t.isRecord()) {
                throw new IllegalStateException("Experiment." + comps[i].getName() + " must be a Section record");
            }
            out.put(Yaml.snake(comps[i].getName()), (Class<? extends Section>) t);
        }
        return out;
    }
}
