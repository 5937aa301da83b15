package dev.jtune.data;

import com.fasterxml.jackson.core.JacksonException;
import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import dev.jtune.data.RowReader.Row;
import dev.jtune.util.UserError;

import java.nio.file.Path;
import java.sql.Connection;
import java.sql.DriverManager;
import java.sql.ResultSet;
import java.sql.SQLException;
import java.sql.Statement;
import java.util.Iterator;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

/**
 * Reads a Parquet file through DuckDB's JDBC driver (an in-memory database per read): every compression codec
 * Parquet writers use (snappy, zstd, gzip, lz4, brotli), nested {@code list<struct<role, content>>} columns.
 * Each row comes back as JSON (DuckDB's {@code to_json}), so its values are the same {@link JsonNode}s a
 * JSON-lines row has; a row's "line" is its 1-based row number.
 */
final class ParquetRows {
    private static final ObjectMapper JSON = new ObjectMapper();

    private ParquetRows() {}

    static void read(Path file, Path shownAs, List<String> required, java.util.function.Consumer<Row> sink) {
        String source = "read_parquet('" + file.toAbsolutePath().toString().replace("'", "''") + "')";
        int rowNumber = 0;
        try (Connection c = DriverManager.getConnection("jdbc:duckdb:");
             Statement s = c.createStatement()) {
            Map<String, String> columns = new LinkedHashMap<>();
            try (ResultSet rs = s.executeQuery("DESCRIBE SELECT * FROM " + source)) {
                while (rs.next()) columns.put(rs.getString("column_name"), rs.getString("column_type"));
            }
            ColumnarRows.requireColumns(shownAs, columns, required);
            ColumnarRows.TypeCheck types = new ColumnarRows.TypeCheck(shownAs, columns, required);
            try (ResultSet rs = s.executeQuery("SELECT to_json(t)::VARCHAR FROM " + source + " t")) {
                while (rs.next()) {
                    rowNumber++;
                    Row row = Row.good(rowNumber, values(rs.getString(1)));
                    types.check(row);
                    sink.accept(row);
                }
            }
        } catch (SQLException e) {
            String where = rowNumber == 0 ? "" : " after row " + rowNumber;
            throw new UserError(shownAs + ": not a readable Parquet file" + where + ": " + firstLine(e.getMessage()), e);
        }
    }

    private static Map<String, JsonNode> values(String json) {
        JsonNode node;
        try {
            node = JSON.readTree(json);
        } catch (JacksonException e) {
            throw new IllegalStateException("DuckDB's to_json wrote invalid JSON: " + e.getOriginalMessage(), e);
        }
        Map<String, JsonNode> values = new LinkedHashMap<>();
        for (Iterator<Map.Entry<String, JsonNode>> it = node.fields(); it.hasNext(); ) {
            Map.Entry<String, JsonNode> e = it.next();
            values.put(e.getKey(), e.getValue());
        }
        return values;
    }

    private static String firstLine(String message) {
        if (message == null) return "unknown error";
        int nl = message.indexOf('\n');
        return (nl < 0 ? message : message.substring(0, nl)).strip();
    }
}
