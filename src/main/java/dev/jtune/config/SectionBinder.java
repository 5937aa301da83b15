package dev.jtune.config;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.node.ObjectNode;

import java.lang.reflect.Constructor;
import java.lang.reflect.InvocationTargetException;
import java.lang.reflect.RecordComponent;
import java.util.Iterator;
import java.util.List;

/**
 * Binds one YAML mapping to a {@link Section} record by reflection: each record component is a key (its name in
 * snake_case), its {@link Key} annotation gives the default and whether null is allowed, and the component's type
 * says how the YAML value converts ({@link Yaml#convert}). Every mistake goes to {@link Problems}; a key that fails
 * to bind gets a placeholder (0, false, null) so the record can still be built and the other keys checked.
 */
final class SectionBinder {
    private SectionBinder() {}

    /** Binds {@code node} (the mapping under {@code section:}) to a record of {@code type}. */
    static Section bind(Class<? extends Section> type, String section, ObjectNode node, Problems sp) {
        RecordComponent[] comps = type.getRecordComponents();
        List<String> names = keys(type);
        boolean nested = section.contains(".");
        for (Iterator<String> it = node.fieldNames(); it.hasNext(); ) {
            String name = it.next();
            if (!names.contains(name)) {
                sp.add(name, "unknown key" + (nested ? KeyHints.forNestedKey(names, name) : KeyHints.forKey(section, name)));
            }
        }
        Object[] args = new Object[comps.length];
        for (int i = 0; i < comps.length; i++) {
            RecordComponent c = comps[i];
            String name = names.get(i);
            Key key = key(type, c);
            args[i] = placeholder(c.getType());
            JsonNode v = node.get(name);
            if (isNested(c.getType())) {
                args[i] = bindNested(c.getType().asSubclass(Section.class), section + "." + name, name, v, sp);
                continue;
            }
            Class<? extends Section> element = listOfSections(c.getGenericType());
            if (element != null && v != null && !v.isNull()) {
                args[i] = bindList(element, section + "." + name, name, v, sp);
                continue;
            }
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

    /** The keys of a section record, in order: its component names in snake_case. */
    static List<String> keys(Class<?> type) {
        List<String> out = new java.util.ArrayList<>();
        for (RecordComponent c : type.getRecordComponents()) out.add(Yaml.snake(c.getName()));
        return out;
    }

    /** A key whose value is itself a mapping of keys bound to a record ({@code model.quantization:}). */
    static boolean isNested(Class<?> t) {
        return t.isRecord() && Section.class.isAssignableFrom(t);
    }

    /** The element type of a {@code List<SomeSection>} component; null for any other type. */
    static Class<? extends Section> listOfSections(java.lang.reflect.Type t) {
        if (t instanceof java.lang.reflect.ParameterizedType pt && pt.getRawType() == List.class
                && pt.getActualTypeArguments()[0] instanceof Class<?> e && isNested(e)) {
            return e.asSubclass(Section.class);
        }
        return null;
    }

    /** Binds a list of mappings ({@code data.datasets}); problems go under {@code name[i].key}. */
    private static List<Section> bindList(Class<? extends Section> type, String path, String name, JsonNode v, Problems sp) {
        if (!v.isArray()) {
            sp.add(name, "expected a list of mappings (" + String.join(", ", keys(type)) + "), got " + Yaml.describe(v));
            return null;
        }
        List<Section> out = new java.util.ArrayList<>();
        for (int i = 0; i < v.size(); i++) {
            JsonNode e = v.get(i);
            String item = name + "[" + i + "]";
            if (!e.isObject()) {
                sp.add(item, "expected a mapping of keys (" + String.join(", ", keys(type)) + "), got " + Yaml.describe(e));
                continue;
            }
            Problems sub = sp.section(item);
            Section s = bind(type, path + "[" + i + "]", (ObjectNode) e, sub).withDerivedDefaults();
            s.validate(sub);
            out.add(s);
        }
        return List.copyOf(out);
    }

    /**
     * Binds, completes and validates the nested mapping {@code v} under key {@code name} (absent: every default);
     * problems are reported under the dotted key ({@code model.quantization.bnb_4bit_quant_type}).
     */
    private static Section bindNested(Class<? extends Section> type, String path, String name, JsonNode v, Problems sp) {
        if (v == null) return defaults(type);
        if (!v.isObject()) {
            sp.add(name, "expected a mapping of keys (" + String.join(", ", keys(type)) + "), got " + Yaml.describe(v));
            for (String k : keys(type)) sp.markBad(sp.key(name + "." + k));
            return defaults(type);
        }
        Problems sub = sp.section(name);
        Section s = bind(type, path, (ObjectNode) v, sub).withDerivedDefaults();
        s.validate(sub);
        return s;
    }

    /**
     * A record of {@code type} with every key at its {@link Key} default and required keys null, as a file that
     * leaves every key out would give (before {@link Section#withDerivedDefaults}). For builders and tests.
     */
    static <T extends Section> T defaults(Class<T> type) {
        RecordComponent[] comps = type.getRecordComponents();
        Object[] args = new Object[comps.length];
        for (int i = 0; i < comps.length; i++) {
            Key key = key(type, comps[i]);
            args[i] = placeholder(comps[i].getType());
            if (isNested(comps[i].getType())) {
                args[i] = defaults(comps[i].getType().asSubclass(Section.class));
                continue;
            }
            if (key.value().equals(Key.REQUIRED)) continue;
            JsonNode v = Yaml.defaultNode(key.value());
            if (v.isNull()) {
                args[i] = null;
                continue;
            }
            try {
                args[i] = Yaml.convert(v, comps[i].getGenericType());
            } catch (Yaml.Mismatch m) {
                throw new IllegalStateException(type.getSimpleName() + "." + comps[i].getName() + ": bad default: " + m.getMessage());
            }
        }
        return construct(type, args);
    }

    private static Key key(Class<?> type, RecordComponent c) {
        Key key = c.getAnnotation(Key.class);
        if (key == null) throw new IllegalStateException(type.getSimpleName() + "." + c.getName() + " lacks @Key");
        return key;
    }

    private static Object placeholder(Class<?> t) {
        if (t == int.class) return 0;
        if (t == long.class) return 0L;
        if (t == double.class) return 0.0;
        if (t == boolean.class) return false;
        return null;
    }

    /** Calls the canonical constructor of a record with {@code args} in component order. */
    static <T> T construct(Class<T> type, Object[] args) {
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
}
