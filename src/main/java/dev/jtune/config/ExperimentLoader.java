package dev.jtune.config;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.node.JsonNodeFactory;
import com.fasterxml.jackson.databind.node.ObjectNode;
import dev.jtune.util.UserError;

import java.io.IOException;
import java.nio.charset.MalformedInputException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Iterator;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

/**
 * Reads an experiment file, step by step, collecting every mistake in one {@link Problems}: read the text → parse
 * the YAML (recording each key's line) → apply the {@code --set} overrides → bind each section
 * ({@link SectionBinder}) → validate each section → {@link ModelChecks} (config.json) → {@link CrossChecks} → throw
 * everything found, or build the {@link Experiment}.
 */
final class ExperimentLoader {
    private ExperimentLoader() {}

    static Experiment load(Path yaml, List<String> overrides) {
        String shown = yaml.toString();
        Path file = yaml.toAbsolutePath().normalize();
        String text = read(yaml, file);

        Problems p = new Problems(shown);
        Yaml.Parsed parsed = Yaml.parse(text, "", p, "", true);
        if (!parsed.ok()) p.throwIfAny();   // nothing else is reliable after a syntax error
        JsonNode root = parsed.root();
        String sections = String.join(", ", Experiment.sectionNames());
        if (root == null) {
            throw new UserError(shown + ": the file is empty; expected a mapping with the sections "
                    + sections + " (see configs/example-full.yaml)");
        }
        if (!root.isObject()) {
            throw new UserError(shown + ":" + parsed.rootLine() + ": the top level must be a mapping with the sections "
                    + sections + ", got " + Yaml.describe(root));
        }
        ObjectNode top = (ObjectNode) root;
        applyOverrides(top, overrides, p);
        Map<String, Section> bound = bindSections(top, p);
        if (bound.get("model") instanceof ModelSection m && bound.get("data") instanceof DataSection d
                && bound.get("training") instanceof TrainingSection t) {
            ModelChecks.check(m, d, p);
            CrossChecks.check(d, t, p);
            if (bound.get("lora") instanceof LoraSection l) CrossChecks.quantizedBase(m, l, p);
            if (bound.get("preference") instanceof PreferenceSection pref) {
                CrossChecks.preference(d, t, pref, p);
                bound.put("preference", pref.resolvedFor(t.method() == null ? TrainingSection.Method.SFT : t.method()));
            }
        }
        p.throwIfAny();
        Object[] args = new Object[bound.size() + 1];
        args[0] = file;
        int i = 1;
        for (Section s : bound.values()) args[i++] = s;
        return SectionBinder.construct(Experiment.class, args);
    }

    private static String read(Path yaml, Path file) {
        String shown = yaml.toString();
        if (!Files.exists(file)) {
            throw new UserError(shown + ": experiment file not found"
                    + (yaml.isAbsolute() ? "" : " (relative to the working directory " + Path.of("").toAbsolutePath() + ")"));
        }
        if (Files.isDirectory(file)) throw new UserError(shown + ": is a directory; expected a YAML experiment file");
        try {
            return Files.readString(file);
        } catch (MalformedInputException e) {
            throw new UserError(shown + ": not UTF-8 text; expected a YAML experiment file");
        } catch (IOException e) {
            throw new UserError(shown + ": cannot read: " + e.getMessage(), e);
        }
    }

    /** Each {@code section.key=value} replaces (or adds) that key in the parsed tree; values are YAML. */
    private static void applyOverrides(ObjectNode top, List<String> overrides, Problems p) {
        List<String> sections = Experiment.sectionNames();
        for (String raw : overrides) {
            String where = " (--set " + raw + ")";
            int eq = raw.indexOf('=');
            String key = eq < 0 ? raw.strip() : raw.substring(0, eq).strip();
            String[] parts = key.split("\\.", -1);
            if (eq >= 0 && parts.length == 3 && nestedOverride(top, parts, raw, where, p)) continue;
            if (eq < 0 || parts.length != 2 || parts[0].isEmpty() || parts[1].isEmpty()) {
                String owner = sections.stream().filter(s -> Experiment.keys(s).contains(key)).findFirst().orElse(null);
                p.general(where, Integer.MAX_VALUE, "expected section.key=value, e.g. training.learning_rate=1e-4"
                        + (eq < 0 ? " (no '=')" : "; '" + key + "' is not section.key")
                        + (owner != null ? "; did you mean '" + owner + "." + key + "'?" : ""));
                continue;
            }
            String section = parts[0], name = parts[1];
            if (!sections.contains(section)) {
                p.general(where, Integer.MAX_VALUE, "unknown section '" + section + "'; expected one of: "
                        + String.join(", ", sections) + Yaml.didYouMean(section, sections));
                continue;
            }
            if (!Experiment.keys(section).contains(name)) {
                p.general(where, Integer.MAX_VALUE, "unknown key '" + key + "'" + KeyHints.forKey(section, name));
                continue;
            }
            p.override(key, raw);
            Yaml.Parsed value = Yaml.parse(raw.substring(eq + 1), key, p, where, false);
            if (!value.ok()) continue;
            JsonNode current = top.get(section);
            if (current == null || current.isNull()) top.set(section, current = JsonNodeFactory.instance.objectNode());
            if (current.isObject()) {
                ((ObjectNode) current).set(name, value.root() == null ? JsonNodeFactory.instance.nullNode() : value.root());
            }
        }
    }

    /**
     * {@code section.key.subkey=value} for a key whose value is a mapping ({@code model.quantization.load_in_4bit=true}):
     * sets that one entry of the mapping. Returns false when {@code section.key} is not such a key (the caller then
     * reports the override as malformed).
     */
    private static boolean nestedOverride(ObjectNode top, String[] parts, String raw, String where, Problems p) {
        String section = parts[0], name = parts[1], sub = parts[2];
        if (!Experiment.sectionNames().contains(section) || !Experiment.keys(section).contains(name)) return false;
        Class<?> type = Experiment.sectionType(section).getRecordComponents()[Experiment.keys(section).indexOf(name)].getType();
        if (!SectionBinder.isNested(type)) return false;
        List<String> keys = SectionBinder.keys(type);
        String key = section + "." + name + "." + sub;
        if (!keys.contains(sub)) {
            p.general(where, Integer.MAX_VALUE, "unknown key '" + key + "'" + KeyHints.forNestedKey(keys, sub));
            return true;
        }
        p.override(key, raw);
        Yaml.Parsed value = Yaml.parse(raw.substring(raw.indexOf('=') + 1), key, p, where, false);
        if (!value.ok()) return true;
        JsonNode sec = top.get(section);
        if (sec == null || sec.isNull()) top.set(section, sec = JsonNodeFactory.instance.objectNode());
        if (!sec.isObject()) return true;
        JsonNode map = sec.get(name);
        if (map == null || map.isNull()) ((ObjectNode) sec).set(name, map = JsonNodeFactory.instance.objectNode());
        if (map.isObject()) {
            ((ObjectNode) map).set(sub, value.root() == null ? JsonNodeFactory.instance.nullNode() : value.root());
        }
        return true;
    }

    /** Every section bound, completed and validated, in the order of {@link Experiment#sectionNames()}. */
    private static Map<String, Section> bindSections(ObjectNode top, Problems p) {
        List<String> sections = Experiment.sectionNames();
        for (Iterator<String> it = top.fieldNames(); it.hasNext(); ) {
            String name = it.next();
            if (!sections.contains(name)) {
                p.add(name, "unknown section; expected one of: " + String.join(", ", sections) + KeyHints.forSection(name));
            }
        }
        Map<String, Section> bound = new LinkedHashMap<>();
        for (String name : sections) {
            JsonNode node = top.get(name);
            if (node != null && !node.isNull() && !node.isObject()) {
                p.add(name, "expected a mapping of keys (" + String.join(", ", Experiment.keys(name)) + "), got " + Yaml.describe(node));
                for (String k : Experiment.keys(name)) p.markBad(name + "." + k);
                bound.put(name, null);
                continue;
            }
            ObjectNode obj = node instanceof ObjectNode o ? o : JsonNodeFactory.instance.objectNode();
            Problems sp = p.section(name);
            Section s = SectionBinder.bind(Experiment.sectionType(name), name, obj, sp).withDerivedDefaults();
            s.validate(sp);
            bound.put(name, s);
        }
        return bound;
    }
}
