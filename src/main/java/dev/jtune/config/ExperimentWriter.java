package dev.jtune.config;

import dev.jtune.util.UserError;

import java.io.IOException;
import java.lang.reflect.RecordComponent;
import java.nio.file.AtomicMoveNotSupportedException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardCopyOption;
import java.util.List;

/**
 * Writes an experiment back as YAML: every key of every section with its effective value (defaults and derived
 * defaults filled in, absolute paths), in the layout of an experiment file, so that {@link Experiment#load} reads
 * it back to an equal experiment.
 */
final class ExperimentWriter {
    private ExperimentWriter() {}

    static String toYaml(Experiment exp) {
        StringBuilder b = new StringBuilder();
        b.append("# jtune experiment, resolved from ").append(exp.file()).append('\n');
        b.append("# Every key with its effective value; relative paths were resolved against the working directory.\n");
        List<String> names = Experiment.sectionNames();
        List<Section> values = exp.sections();
        for (int s = 0; s < names.size(); s++) {
            Section section = values.get(s);
            if (section == null) continue;
            b.append(names.get(s)).append(":\n");
            for (RecordComponent c : section.getClass().getRecordComponents()) {
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

    /** Writes {@link #toYaml} to {@code target}, creating its directory; replaced atomically where the file system allows. */
    static void write(Experiment exp, Path target) {
        Path abs = target.toAbsolutePath().normalize();
        try {
            if (abs.getParent() != null) Files.createDirectories(abs.getParent());
            Path tmp = abs.resolveSibling(abs.getFileName() + ".tmp");
            Files.writeString(tmp, toYaml(exp));
            try {
                Files.move(tmp, abs, StandardCopyOption.REPLACE_EXISTING, StandardCopyOption.ATOMIC_MOVE);
            } catch (AtomicMoveNotSupportedException e) {
                Files.move(tmp, abs, StandardCopyOption.REPLACE_EXISTING);
            }
        } catch (IOException e) {
            throw new UserError(target + ": cannot write the resolved experiment: " + e.getMessage(), e);
        }
    }
}
