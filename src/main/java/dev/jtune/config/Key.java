package dev.jtune.config;

import java.lang.annotation.ElementType;
import java.lang.annotation.Retention;
import java.lang.annotation.RetentionPolicy;
import java.lang.annotation.Target;

/**
 * Declares a record component of a {@link Section} as a key of the experiment file. The YAML name is the component
 * name in snake_case ({@code learningRate} is {@code learning_rate}); every component of a section record must carry
 * this annotation.
 *
 * <p>Supported component types: {@code String}, {@code java.nio.file.Path}, {@code double}, {@code int},
 * {@code long}, {@code boolean}, their boxed forms, enums (written in lower case in YAML), {@code List<String>}, {@code Map<String, Double>} and {@code Map<String, Boolean>} (YAML mappings).
 */
@Retention(RetentionPolicy.RUNTIME)
@Target(ElementType.RECORD_COMPONENT)
public @interface Key {
    /** Marks a key without a default: leaving it out is an error. */
    String REQUIRED = "\u0000required";

    /**
     * The default, written as it would be in the YAML file ({@code "5e-5"}, {@code "linear"}, {@code "null"}), or
     * {@link #REQUIRED}. Defaults are read exactly like values in the file, so they are checked the same way.
     */
    String value();

    /** Whether {@code null} (or {@code ~}, or nothing after the colon) is an accepted value. */
    boolean nullable() default false;
}
