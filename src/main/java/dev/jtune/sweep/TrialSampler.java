package dev.jtune.sweep;

import dev.jtune.config.SweepSection;
import dev.jtune.util.UserError;

import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Random;

/**
 * The trials' values (key → YAML text, in the spec's key order), decided before any trial runs so that sweep.json
 * holds the whole plan and a resumed sweep runs the same trials. Random search draws each trial from one generator
 * seeded with the sweep's seed; a grid is the product of the keys' values (the first key varying slowest), cut to
 * {@code trials}.
 */
final class TrialSampler {
    private TrialSampler() {}

    static List<Map<String, String>> plan(SweepSpec spec) {
        if (spec.params().isEmpty()) {
            throw new UserError("nothing to search: give --param KEY=SPEC (repeatable) or sweep.params in the experiment file");
        }
        return spec.method() == SweepSection.Method.GRID ? grid(spec) : random(spec);
    }

    private static List<Map<String, String>> random(SweepSpec spec) {
        if (spec.trials() == null) throw new UserError("random search needs a number of trials: --trials N (or sweep.trials)");
        Random rng = new Random(spec.seed());
        List<Map<String, String>> out = new ArrayList<>();
        for (int i = 0; i < spec.trials(); i++) {
            Map<String, String> t = new LinkedHashMap<>();
            for (ParamSpec p : spec.params()) t.put(p.key(), p.sample(rng));
            out.add(t);
        }
        return out;
    }

    private static List<Map<String, String>> grid(SweepSpec spec) {
        List<Map<String, String>> out = new ArrayList<>();
        out.add(new LinkedHashMap<>());
        for (ParamSpec p : spec.params()) {
            List<String> values = p.gridValues();
            List<Map<String, String>> next = new ArrayList<>();
            for (Map<String, String> partial : out) {
                for (String v : values) {
                    Map<String, String> t = new LinkedHashMap<>(partial);
                    t.put(p.key(), v);
                    next.add(t);
                }
            }
            out = next;
            if (out.size() > 100_000) throw new UserError("the grid has more than 100000 points; use fewer values or --method random");
        }
        return spec.trials() == null || spec.trials() >= out.size() ? out : out.subList(0, spec.trials());
    }
}
