package dev.jtune.data;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.node.JsonNodeType;
import dev.jtune.data.RowReader.Row;
import dev.jtune.util.UserError;

import java.nio.file.Path;
import java.util.List;
import java.util.Map;

/**
 * Checks shared by the readers of typed, columnar files (Parquet, Arrow): there a column has one type for every
 * row, so a required column that is missing or of a type no format reads (numbers, booleans) is the file's error,
 * reported once with the file, the column and the first row, not as a bad row per row.
 */
final class ColumnarRows {
    private ColumnarRows() {}

    /** A UserError unless every required column is among {@code columns} (name to the file's type name). */
    static void requireColumns(Path file, Map<String, String> columns, List<String> required) {
        for (String r : required) {
            if (!columns.containsKey(r)) {
                throw new UserError(file + ": no column \"" + r + "\"; it has " + describe(columns));
            }
        }
    }

    /**
     * A UserError when a required column of the first row with a value holds a number or a boolean: formats read
     * text, or lists of messages. Told each row as it is read; checks each column once.
     */
    static final class TypeCheck {
        private final Path file;
        private final Map<String, String> columns;
        private final java.util.Set<String> unchecked;

        TypeCheck(Path file, Map<String, String> columns, List<String> required) {
            this.file = file;
            this.columns = columns;
            this.unchecked = new java.util.LinkedHashSet<>(required);
        }

        void check(Row row) {
            if (unchecked.isEmpty() || row.isBad()) return;
            for (java.util.Iterator<String> it = unchecked.iterator(); it.hasNext(); ) {
                String r = it.next();
                JsonNode v = row.values().get(r);
                if (v == null || v.isNull()) continue;
                JsonNodeType t = v.getNodeType();
                if (t == JsonNodeType.NUMBER || t == JsonNodeType.BOOLEAN || t == JsonNodeType.BINARY) {
                    throw new UserError(file + ": column \"" + r + "\" is " + columns.get(r) + " (row " + row.line()
                            + " holds " + v + "); expected text, or for chat data a list of {role, content}");
                }
                it.remove();
            }
        }
    }

    static String describe(Map<String, String> columns) {
        StringBuilder sb = new StringBuilder("[");
        for (Map.Entry<String, String> e : columns.entrySet()) {
            if (sb.length() > 1) sb.append(", ");
            sb.append(e.getKey()).append(": ").append(e.getValue());
        }
        return sb.append(']').toString();
    }
}
