package dev.jtune.config;

/**
 * One top-level section of an experiment file ({@code model:}, {@code data:}, {@code training:}). A section is an
 * immutable record whose components are all annotated with {@link Key}; {@link SectionBinder} binds it and
 * {@link ExperimentLoader} fills in and validates it.
 *
 * <p>To add a section (say {@code lora:}): write {@code record LoraSection(@Key("8") int r, ...) implements Section}
 * and add it as a component of {@link Experiment} (the component name is the section name). Nothing else needs to
 * know about it; until then {@code lora:} in a file is refused as an unknown section.
 */
interface Section {
    /**
     * This section with defaults that depend on other keys of the same section filled in (for example the
     * tokenizer defaults to the model path). Called after binding and before {@link #validate}; must accept nulls
     * where a required key was missing.
     */
    default Section withDerivedDefaults() {
        return this;
    }

    /**
     * Checks ranges, combinations and files, reporting every problem to {@code problems} (keys relative to the
     * section, e.g. {@code "learning_rate"}). Keys that already failed to bind are skipped by {@link Problems}.
     */
    void validate(Problems problems);
}
