package dev.jtune.config;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.node.JsonNodeFactory;
import com.fasterxml.jackson.databind.node.ObjectNode;
import dev.jtune.model.ModelConfig;
import dev.jtune.util.UserError;

import java.io.IOException;
import java.lang.reflect.Constructor;
import java.lang.reflect.InvocationTargetException;
import java.lang.reflect.RecordComponent;
import java.nio.charset.MalformedInputException;
import java.nio.file.AtomicMoveNotSupportedException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardCopyOption;
import java.util.ArrayList;
import java.util.Iterator;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Objects;

/**
 * An experiment file ({@code jtune train experiment.yaml}): immutable, complete (every default filled in) and
 * valid. {@link #load} refuses every mistake with one {@link UserError} that lists all of them, each naming the file,
 * the line and the dotted key ({@code training.learning_rate}), before any work starts.
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
                         SweepSection sweep) {

    /** Section name → record type, in the order of the components (and of the resolved file). */
    private static final Map<String, Class<? extends Section>> SECTIONS = sections();

    /** Names Hugging Face users reach for that jtune spells differently. */
    private static final Map<String, String> HINTS = Map.ofEntries(
            Map.entry("bf16", "use 'training.precision: bf16'"),
            Map.entry("fp16", "use 'training.precision: fp16'"),
            Map.entry("torch_dtype", "use 'model.dtype'"),
            Map.entry("model_name_or_path", "use 'model.path' (a local model directory)"),
            Map.entry("tokenizer_name", "use 'model.tokenizer'"),
            Map.entry("evaluation_strategy", "jtune evaluates every 'training.eval_steps' steps (0 = each epoch)"),
            Map.entry("eval_strategy", "jtune evaluates every 'training.eval_steps' steps (0 = each epoch)"),
            Map.entry("save_strategy", "jtune saves every 'training.save_steps' steps (0 = each epoch)"),
            Map.entry("logging_strategy", "jtune logs every 'training.logging_steps' steps"),
            Map.entry("use_cpu", "use 'training.device: cpu'"),
            Map.entry("lora_alpha", "use 'lora.alpha'"),
            Map.entry("lora_dropout", "use 'lora.dropout'"),
            Map.entry("lora_r", "use 'lora.r'"),
            Map.entry("no_cuda", "use 'training.device: cpu'"));

    public Experiment {
        Objects.requireNonNull(model, "model");
        Objects.requireNonNull(data, "data");
        Objects.requireNonNull(training, "training");
        Objects.requireNonNull(lora, "lora");
        Objects.requireNonNull(sweep, "sweep");
    }

    /** The names of the sections an experiment file may have, in order. */
    public static List<String> sectionNames() {
        return List.copyOf(SECTIONS.keySet());
    }

    /** The keys of a section, in order (YAML names, e.g. {@code learning_rate}). */
    public static List<String> keys(String section) {
        Class<? extends Section> type = SECTIONS.get(section);
        if (type == null) throw new IllegalArgumentException("no section " + section);
        List<String> out = new ArrayList<>();
        for (RecordComponent c : type.getRecordComponents()) out.add(Yaml.snake(c.getName()));
        return out;
    }

    /**
     * Reads, completes and validates an experiment file.
     *
     * @param yaml      the YAML file; relative paths inside it resolve against the working directory
     * @param overrides {@code section.key=value} strings (from {@code --set}), applied in order before validation;
     *                  values are YAML ({@code 1e-4}, {@code true}, {@code null}, {@code [q_proj, v_proj]})
     * @throws UserError listing every problem found, one per line
     */
    public static Experiment load(Path yaml, List<String> overrides) {
        Objects.requireNonNull(yaml, "yaml");
        Objects.requireNonNull(overrides, "overrides");
        String shown = yaml.toString();
        Path file = yaml.toAbsolutePath().normalize();
        if (!Files.exists(file)) {
            throw new UserError(shown + ": experiment file not found"
                    + (yaml.isAbsolute() ? "" : " (relative to the working directory " + Path.of("").toAbsolutePath() + ")"));
        }
        if (Files.isDirectory(file)) throw new UserError(shown + ": is a directory; expected a YAML experiment file");
        String text;
        try {
            text = Files.readString(file);
        } catch (MalformedInputException e) {
            throw new UserError(shown + ": not UTF-8 text; expected a YAML experiment file");
        } catch (IOException e) {
            throw new UserError(shown + ": cannot read: " + e.getMessage(), e);
        }

        Problems p = new Problems(shown);
        Yaml.Parsed parsed = Yaml.parse(text, "", p, "", true);
        if (!parsed.ok()) p.throwIfAny();   // nothing else is reliable after a syntax error
        JsonNode root = parsed.root();
        if (root == null) {
            throw new UserError(shown + ": the file is empty; expected a mapping with the sections "
                    + String.join(", ", SECTIONS.keySet()) + " (see configs/example-full.yaml)");
        }
        if (!root.isObject()) {
            throw new UserError(shown + ":" + parsed.rootLine() + ": the top level must be a mapping with the sections "
                    + String.join(", ", SECTIONS.keySet()) + ", got " + Yaml.describe(root));
        }
        ObjectNode top = (ObjectNode) root;
        applyOverrides(top, overrides, p);
        return bind(file, top, p);
    }

    private static void applyOverrides(ObjectNode top, List<String> overrides, Problems p) {
        for (String raw : overrides) {
            String where = " (--set " + raw + ")";
            int eq = raw.indexOf('=');
            String key = eq < 0 ? raw.strip() : raw.substring(0, eq).strip();
            String[] parts = key.split("\\.", -1);
            if (eq < 0 || parts.length != 2 || parts[0].isEmpty() || parts[1].isEmpty()) {
                String owner = SECTIONS.keySet().stream().filter(s -> keys(s).contains(key)).findFirst().orElse(null);
                p.general(where, Integer.MAX_VALUE, "expected section.key=value, e.g. training.learning_rate=1e-4"
                        + (eq < 0 ? " (no '=')" : "; '" + key + "' is not section.key")
                        + (owner != null ? "; did you mean '" + owner + "." + key + "'?" : ""));
                continue;
            }
            String section = parts[0], name = parts[1];
            if (!SECTIONS.containsKey(section)) {
                p.general(where, Integer.MAX_VALUE, "unknown section '" + section + "'; expected one of: "
                        + String.join(", ", SECTIONS.keySet()) + Yaml.didYouMean(section, SECTIONS.keySet()));
                continue;
            }
            List<String> keys = keys(section);
            if (!keys.contains(name)) {
                p.general(where, Integer.MAX_VALUE, "unknown key '" + key + "'" + suggestion(section, name));
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

    private static Experiment bind(Path file, ObjectNode top, Problems p) {
        for (Iterator<String> it = top.fieldNames(); it.hasNext(); ) {
            String name = it.next();
            if (!SECTIONS.containsKey(name)) {
                p.add(name, "unknown section; expected one of: " + String.join(", ", SECTIONS.keySet())
                        + topLevelSuggestion(name));
            }
        }
        Map<String, Section> bound = new LinkedHashMap<>();
        for (Map.Entry<String, Class<? extends Section>> e : SECTIONS.entrySet()) {
            String name = e.getKey();
            JsonNode node = top.get(name);
            if (node != null && !node.isNull() && !node.isObject()) {
                p.add(name, "expected a mapping of keys (" + String.join(", ", keys(name)) + "), got " + Yaml.describe(node));
                for (String k : keys(name)) p.markBad(name + "." + k);
                continue;
            }
            ObjectNode obj = node instanceof ObjectNode o ? o : JsonNodeFactory.instance.objectNode();
            Problems sp = p.section(name);
            Section s = bindSection(e.getValue(), name, obj, sp).withDerivedDefaults();
            s.validate(sp);
            bound.put(name, s);
        }
        if (bound.get("model") instanceof ModelSection m && bound.get("data") instanceof DataSection d
                && bound.get("training") instanceof TrainingSection t) {
            crossChecks(m, d, t, p);
        }
        p.throwIfAny();
        Object[] args = new Object[SECTIONS.size() + 1];
        args[0] = file;
        int i = 1;
        for (String name : SECTIONS.keySet()) args[i++] = bound.get(name);
        return construct(Experiment.class, args);
    }

    /** Checks that involve more than one section. */
    private static void crossChecks(ModelSection m, DataSection d, TrainingSection t, Problems p) {
        if (p.ok("model.path") && m.path() != null) {
            try {
                ModelConfig config = ModelConfig.read(m.path());
                if (config.family() == ModelConfig.Family.GPT2 && p.ok("data.max_seq_length")
                        && d.maxSeqLength() > config.maxPositions()) {
                    p.add("data.max_seq_length", d.maxSeqLength() + " is longer than the model's " + config.maxPositions()
                            + " learned positions (n_positions in " + m.path().resolve("config.json") + ")");
                }
            } catch (UserError e) {
                p.add("model.path", e.getMessage());
            }
        }
        boolean validation = p.ok("data.validation_file", "data.validation_split") && d.hasValidation();
        if (t.earlyStoppingPatience() != null && p.ok("training.early_stopping_patience")) {
            if (p.ok("data.validation_file", "data.validation_split") && !d.hasValidation()) {
                p.add("training.early_stopping_patience", "early stopping needs validation data, but data.validation_file "
                        + "is null and data.validation_split is 0");
            } else {
                p.check(t.loadBestModelAtEnd(), "training.early_stopping_patience",
                        "early stopping needs training.load_best_model_at_end: true (as Hugging Face's EarlyStoppingCallback)",
                        "training.load_best_model_at_end");
            }
        }
        if (validation && t.loadBestModelAtEnd() && p.ok("training.load_best_model_at_end", "training.eval_steps", "training.save_steps")) {
            int ev = t.evalSteps(), sv = t.saveSteps();
            boolean aligned = ev == 0 ? sv == 0 : sv > 0 && sv % ev == 0;
            if (!aligned) {
                p.add("training.save_steps", "with load_best_model_at_end, checkpoints must be saved when evaluating: "
                        + "save_steps (" + sv + ") must be a multiple of eval_steps (" + ev + "), both 0 meaning each epoch; "
                        + "or set load_best_model_at_end: false");
            }
        }
    }

    private static Section bindSection(Class<? extends Section> type, String section, ObjectNode node, Problems sp) {
        RecordComponent[] comps = type.getRecordComponents();
        List<String> names = keys(section);
        for (Iterator<String> it = node.fieldNames(); it.hasNext(); ) {
            String name = it.next();
            if (!names.contains(name)) sp.add(name, "unknown key" + suggestion(section, name));
        }
        Object[] args = new Object[comps.length];
        for (int i = 0; i < comps.length; i++) {
            RecordComponent c = comps[i];
            String name = names.get(i);
            Key key = c.getAnnotation(Key.class);
            if (key == null) throw new IllegalStateException(type.getSimpleName() + "." + c.getName() + " lacks @Key");
            args[i] = placeholder(c.getType());
            JsonNode v = node.get(name);
            if (v == null) {
                if (key.value().equals(Key.REQUIRED)) {
                    sp.add(name, "required key is missing");
                    continue;
                }
                v = Yaml.defaultNode(key.value());
            }
            if (v.isNull()) {
                if (key.nullable()) args[i] = null;
                else if (key.value().equals(Key.REQUIRED)) sp.add(name, "required key has no value");
                else sp.add(name, "expected a value, got null; leave the key out for the default (" + key.value() + ")");
                continue;
            }
            try {
                args[i] = Yaml.convert(v, c.getGenericType());
            } catch (Yaml.Mismatch m) {
                sp.add(name, m.getMessage() + (key.nullable() && m.getMessage().startsWith("expected ") ? " (or null)" : ""));
            }
        }
        return construct(type, args);
    }

    private static String suggestion(String section, String name) {
        String hint = HINTS.get(name);
        if (hint != null) return "; " + hint;
        String close = Yaml.closest(name, keys(section));
        if (close != null) return "; did you mean '" + close + "'?";
        for (String other : SECTIONS.keySet()) {
            if (!other.equals(section) && keys(other).contains(name)) return "; '" + name + "' belongs in the " + other + " section";
        }
        return "; valid keys: " + String.join(", ", keys(section));
    }

    private static String topLevelSuggestion(String name) {
        String hint = HINTS.get(name);
        if (hint != null) return "; " + hint;
        // a key first: a top-level 'seed:' is training.seed, not a misspelt 'sweep:'
        for (String s : SECTIONS.keySet()) {
            if (keys(s).contains(name)) return "; '" + name + "' is a key of the " + s + " section (indent it under " + s + ":)";
        }
        String close = Yaml.closest(name, SECTIONS.keySet());
        if (close != null) return "; did you mean '" + close + "'?";
        return "";
    }

    private static Object placeholder(Class<?> t) {
        if (t == int.class) return 0;
        if (t == long.class) return 0L;
        if (t == double.class) return 0.0;
        if (t == boolean.class) return false;
        return null;
    }

    private static <T> T construct(Class<T> type, Object[] args) {
        RecordComponent[] comps = type.getRecordComponents();
        Class<?>[] types = new Class<?>[comps.length];
        for (int i = 0; i < comps.length; i++) types[i] = comps[i].getType();
        try {
            Constructor<T> ctor = type.getDeclaredConstructor(types);
            return ctor.newInstance(args);
        } catch (InvocationTargetException e) {
            if (e.getCause() instanceof RuntimeException r) throw r;
            throw new IllegalStateException(e.getCause());
        } catch (ReflectiveOperationException e) {
            throw new IllegalStateException(e);
        }
    }

    @SuppressWarnings("unchecked")
    private static Map<String, Class<? extends Section>> sections() {
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

    /** The sections in order, as records. */
    private List<Section> sectionValues() {
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

    /**
     * The resolved experiment as YAML: every key of every section with its effective value (defaults and derived
     * defaults filled in, absolute paths), in the layout of an experiment file. {@link #load} reads it back to an
     * equal experiment.
     */
    public String toYaml() {
        StringBuilder b = new StringBuilder();
        b.append("# jtune experiment, resolved from ").append(file).append('\n');
        b.append("# Every key with its effective value; relative paths were resolved against the working directory.\n");
        List<String> names = new ArrayList<>(SECTIONS.keySet());
        List<Section> values = sectionValues();
        for (int s = 0; s < names.size(); s++) {
            Section section = values.get(s);
            if (section == null) continue;
            b.append(names.get(s)).append(":\n");
            RecordComponent[] comps = section.getClass().getRecordComponents();
            for (RecordComponent c : comps) {
                Object v;
                try {
                    v = c.getAccessor().invoke(section);
                } catch (ReflectiveOperationException e) {
                    throw new IllegalStateException(e);
                }
                b.append("  ").append(Yaml.snake(c.getName())).append(": ").append(Yaml.scalar(v)).append('\n');
            }
        }
        return b.toString();
    }

    /**
     * Writes {@link #toYaml()} to {@code target} (conventionally {@code output_dir/config.resolved.yaml}), creating
     * its directory; the file is replaced atomically where the file system allows.
     */
    public void writeResolved(Path target) {
        Path abs = target.toAbsolutePath().normalize();
        try {
            if (abs.getParent() != null) Files.createDirectories(abs.getParent());
            Path tmp = abs.resolveSibling(abs.getFileName() + ".tmp");
            Files.writeString(tmp, toYaml());
            try {
                Files.move(tmp, abs, StandardCopyOption.REPLACE_EXISTING, StandardCopyOption.ATOMIC_MOVE);
            } catch (AtomicMoveNotSupportedException e) {
                Files.move(tmp, abs, StandardCopyOption.REPLACE_EXISTING);
            }
        } catch (IOException e) {
            throw new UserError(target + ": cannot write the resolved experiment: " + e.getMessage(), e);
        }
    }

    /** A copy read from another file; the settings are unchanged. */
    public Experiment withFile(Path file) {
        return new Experiment(file, model, data, training, lora, sweep);
    }

    /** Equal when every section is equal; {@link #file()} is where it was read from, not part of the settings. */
    @Override
    public boolean equals(Object o) {
        return o instanceof Experiment e && sectionValues().equals(e.sectionValues());
    }

    @Override
    public int hashCode() {
        return sectionValues().hashCode();
    }
}
