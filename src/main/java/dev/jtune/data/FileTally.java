package dev.jtune.data;

import dev.jtune.data.DataReport.FileReport;
import dev.jtune.data.DataReport.Reason;
import dev.jtune.util.UserError;

import java.nio.file.Path;
import java.util.EnumMap;
import java.util.Map;

/**
 * What happened to the rows of one data file (read, dropped and why, truncated), for its summary line; and the
 * {@code data.on_bad_row} policy: a row that cannot be read is either counted here or stops the run.
 */
final class FileTally {
    final Path file;
    final String role;
    private final boolean failOnBadRow;
    int rowsRead;
    int truncated;
    private final Map<Reason, Integer> dropped = new EnumMap<>(Reason.class);
    private final Map<Reason, Integer> firstLine = new EnumMap<>(Reason.class);

    /** @param role "train", "validation" or "test" */
    FileTally(Path file, String role, boolean failOnBadRow) {
        this.file = file;
        this.role = role;
        this.failOnBadRow = failOnBadRow;
    }

    /** Counts a dropped row (an empty answer, a duplicate, an over-long example). */
    void drop(Reason r, int line) {
        dropped.merge(r, 1, Integer::sum);
        firstLine.merge(r, line, Math::min);
    }

    /** A row that cannot be read: with {@code on_bad_row: fail} a {@link UserError} naming file and line, else counted. */
    void badRow(Reason reason, int line, String detail) {
        if (failOnBadRow) {
            throw new UserError(file + ":" + line + ": " + reason.label(1) + ": " + detail
                    + " (data.on_bad_row is fail; set it to skip to drop such rows)");
        }
        drop(reason, line);
    }

    FileReport report(int kept) {
        return new FileReport(file, role, rowsRead, kept, dropped, firstLine, truncated);
    }
}
