package dev.jtune.sweep;

import dev.jtune.config.SweepSection;

import java.nio.file.Path;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

/**
 * What a sweep searches and how: the experiment's {@code sweep:} section with the command line's options over it
 * (a {@code --param} replaces the section's entry for the same key).
 *
 * @param experiment the experiment file (absolute)
 * @param sets       {@code --set} overrides applied to every trial, before the trial's own values
 * @param params     the searched keys, in order
 * @param trials     how many trials (for a grid: a cap; null = the whole grid)
 */
public record SweepSpec(Path experiment, List<String> sets, List<ParamSpec> params, SweepSection.Method method, Integer trials,
                        SweepSection.Prune prune, String metric, SweepSection.Direction direction, long seed, int eta) {

    public SweepSpec {
        sets = List.copyOf(sets);
        params = List.copyOf(params);
    }

    public boolean minimize() {
        return direction == SweepSection.Direction.MINIMIZE;
    }

    /** The section's params with the command line's over them: one entry per key, the command line's winning. */
    public static List<ParamSpec> merge(List<String> section, List<String> cli) {
        Map<String, ParamSpec> byKey = new LinkedHashMap<>();
        for (String raw : section) {
            ParamSpec p = ParamSpec.parse(raw);
            byKey.put(p.key(), p);
        }
        for (String raw : cli) {
            ParamSpec p = ParamSpec.parse(raw);
            byKey.put(p.key(), p);
        }
        return new ArrayList<>(byKey.values());
    }
}
