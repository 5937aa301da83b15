/**
 * Experiment files: the YAML schema as one record per section ({@code model}, {@code data}, {@code lora},
 * {@code training}, ...), loading with {@code --set} overrides, defaults, validation that names every problem, and the
 * resolved YAML a run writes. {@link dev.jtune.api.Experiment} is the stable face of this package. Internal: not a
 * stable API.
 */
package dev.jtune.config;
