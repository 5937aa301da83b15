package dev.jtune.data;

import com.fasterxml.jackson.core.JacksonException;
import com.fasterxml.jackson.databind.DeserializationFeature;
import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.TextNode;
import dev.jtune.data.DataReport.Reason;
import dev.jtune.util.UserError;
import java.io.IOException;
import java.io.InputStream;
import java.util.zip.GZIPInputStream;
import java.nio.ByteBuffer;
import java.nio.CharBuffer;
import java.nio.charset.CharacterCodingException;
import java.nio.charset.CharsetDecoder;
import java.nio.charset.CodingErrorAction;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Iterator;
import com.fasterxml.jackson.databind.MappingIterator;
import com.fasterxml.jackson.dataformat.csv.CsvMapper;
import com.fasterxml.jackson.dataformat.csv.CsvParser;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.function.Consumer;

/**
 * Reads the rows of a CSV (RFC 4180, header row) or JSON-lines file. Every record comes back, either with its
 * values or as a bad row (reason, first line, what was wrong); nothing is dropped silently.
 *
 * <p>CSV is read in two layers. A strict RFC 4180 scanner here finds where each record starts and ends and refuses
 * what Jackson's CsvParser would accept silently (a quote inside an unquoted field, text after a closing quote) or
 * recover from badly (a missing closing quote swallows the rest of the file): a quoting error makes only the record
 * where it starts a bad row, and reading resumes on the next line. The fields of every record that passes are then
 * decoded by Jackson's CsvParser (jackson-dataformat-csv), the library of record for CSV values; the scanner's own
 * split is only the cross-check. Bytes are decoded strictly as UTF-8, line by line, so an invalid sequence is
 * reported with its line.
 */
final class RowReader {
    /** One record: its first line, and either values (column name to value) or a bad-row reason and detail. */
    record Row(int line, Map<String, JsonNode> values, Reason bad, int badLine, String detail) {
        boolean isBad() {
            return bad != null;
        }

        static Row good(int line, Map<String, JsonNode> values) {
            return new Row(line, values, null, line, null);
        }

        static Row bad(int line, Reason reason, int badLine, String detail) {
            return new Row(line, null, reason, badLine, detail);
        }
    }

    /** JSON covers JSON lines and a JSON array of objects (told apart by the first character). */
    enum Kind { CSV, JSON, PARQUET, ARROW }

    private static final ObjectMapper JSON = new ObjectMapper()
            .enable(DeserializationFeature.FAIL_ON_TRAILING_TOKENS);

    /** Reads one array element at a time (JSON's FAIL_ON_TRAILING_TOKENS would refuse the next element). */
    private static final ObjectMapper ELEMENTS = new ObjectMapper();

    private RowReader() {}

    /** The kind of a data file by its name ({@code .gz} aside); a directory is a datasets.save_to_disk one (Arrow). */
    static Kind kindOf(Path file) {
        if (Files.isDirectory(file)) return Kind.ARROW;
        String name = file.getFileName().toString().toLowerCase(Locale.ROOT);
        if (name.endsWith(".gz")) name = name.substring(0, name.length() - 3);
        if (name.endsWith(".csv")) return Kind.CSV;
        if (name.endsWith(".jsonl") || name.endsWith(".ndjson") || name.endsWith(".json")) return Kind.JSON;
        if (name.endsWith(".parquet") || name.endsWith(".pq")) return Kind.PARQUET;
        if (name.endsWith(".arrow") || name.endsWith(".feather") || name.endsWith(".ipc")) return Kind.ARROW;
        throw new UserError(file + ": unknown data file type; expected .csv (with a header row), .jsonl (one JSON"
                + " object per line), .json (JSON lines or an array of objects), .parquet, .arrow (Arrow IPC), each"
                + " optionally .gz, or a datasets.save_to_disk directory");
    }

    static boolean gzipped(Path file) {
        return file.getFileName().toString().toLowerCase(Locale.ROOT).endsWith(".gz");
    }

    /**
     * Reads all rows into a list (small files, tests); {@link #forEach} streams them. {@code required} are the columns
     * the format needs: a CSV header, Parquet or Arrow schema without one of them, or a JSON file where no object
     * has it, is a UserError.
     */
    static List<Row> read(Path file, List<String> required) {
        List<Row> rows = new ArrayList<>();
        forEach(file, required, rows::add);
        return rows;
    }

    /**
     * Hands each row of {@code file} to {@code sink} in file order, holding only the current record (CSV, JSON
     * lines, Parquet, Arrow; a JSON array is parsed whole). A file-level problem is a UserError, possibly after
     * rows were handed on (a JSON file none of whose objects has a required key is found out at its end).
     */
    static void forEach(Path file, List<String> required, Consumer<Row> sink) {
        if (!Files.exists(file)) throw new UserError(file + ": data file not found");
        Kind kind = kindOf(file);
        if (kind == Kind.PARQUET || kind == Kind.ARROW) {
            readColumnar(file, kind, required, sink);
            return;
        }
        try (InputStream raw = Files.newInputStream(file);
             InputStream in = gzipped(file) ? new GZIPInputStream(raw, 1 << 16) : raw) {
            LineSource lines = new LineSource(in, kind == Kind.CSV);
            if (kind == Kind.CSV) readCsv(file, lines, required, sink);
            else readJsonl(file, lines, required, sink);
        } catch (java.util.zip.ZipException | java.io.EOFException e) {
            throw new UserError(file + ": not a complete gzip file: " + e.getMessage(), e);
        } catch (java.io.UncheckedIOException e) {
            Throwable c = e.getCause();
            if (c instanceof java.util.zip.ZipException || c instanceof java.io.EOFException) {
                throw new UserError(file + ": not a complete gzip file: " + c.getMessage(), e);
            }
            throw new UserError(file + ": cannot read: " + c.getMessage(), e);
        } catch (IOException e) {
            throw new UserError(file + ": cannot read: " + e.getMessage(), e);
        }
    }

    /** Parquet and Arrow; a {@code .gz} one is unpacked to a temporary file first (both formats need random access). */
    private static void readColumnar(Path file, Kind kind, List<String> required, Consumer<Row> sink) {
        Path plain = file;
        try {
            if (gzipped(file)) {
                plain = Files.createTempFile("jtune-data-", kind == Kind.PARQUET ? ".parquet" : ".arrow");
                try (InputStream in = new GZIPInputStream(Files.newInputStream(file), 1 << 16)) {
                    Files.copy(in, plain, java.nio.file.StandardCopyOption.REPLACE_EXISTING);
                } catch (java.util.zip.ZipException | java.io.EOFException e) {
                    throw new UserError(file + ": not a complete gzip file: " + e.getMessage(), e);
                }
            }
            if (kind == Kind.PARQUET) ParquetRows.read(plain, file, required, sink);
            else ArrowRows.read(plain, file, required, sink);
        } catch (IOException e) {
            throw new UserError(file + ": cannot read: " + e.getMessage(), e);
        } finally {
            if (plain != file) {
                try {
                    Files.deleteIfExists(plain);
                } catch (IOException ignored) {
                    // a temporary copy; the OS cleans its temp directory
                }
            }
        }
    }

    /** A physical line (without its \n and a trailing \r), decoded; {@code utf8Error} when the bytes were invalid. */
    record Line(int number, String text, String utf8Error) {}

    // ---------------------------------------------------------------- CSV

    private static final class CsvError extends Exception {
        final int line;

        CsvError(int line, String message) {
            super(message, null, false, false);
            this.line = line;
        }
    }

    /** Parses one record starting at lines[index]; returns the fields and sets next[0] to the following line index. */
    private static List<String> parseRecord(LineSource lines, int index, int[] next) throws CsvError {
        List<String> fields = new ArrayList<>();
        StringBuilder field = new StringBuilder();
        final int start = 0, unquoted = 1, quoted = 2, quoteInQuoted = 3;
        int state = start;
        int i = index;
        while (true) {
            Line line = lines.get(i);
            String s = line.text();
            for (int k = 0; k < s.length(); k++) {
                char c = s.charAt(k);
                switch (state) {
                    case start:
                        if (c == '"') {
                            state = quoted;
                        } else if (c == ',') {
                            fields.add("");
                        } else {
                            field.append(c);
                            state = unquoted;
                        }
                        break;
                    case unquoted:
                        if (c == ',') {
                            fields.add(field.toString());
                            field.setLength(0);
                            state = start;
                        } else if (c == '"') {
                            throw new CsvError(line.number(), "quote inside an unquoted field (column " + (fields.size() + 1)
                                    + "); quote the whole field and double the inner quotes");
                        } else {
                            field.append(c);
                        }
                        break;
                    case quoted:
                        if (c == '"') {
                            state = quoteInQuoted;
                        } else {
                            field.append(c);
                        }
                        break;
                    default: // quoteInQuoted
                        if (c == '"') {
                            field.append('"');
                            state = quoted;
                        } else if (c == ',') {
                            fields.add(field.toString());
                            field.setLength(0);
                            state = start;
                        } else {
                            throw new CsvError(line.number(), "text after the closing quote of column " + (fields.size() + 1)
                                    + " ('" + c + "'); double the quotes inside a quoted field");
                        }
                }
            }
            if (state == quoted) {
                // a quoted field goes on over the newline
                if (!lines.has(i + 1)) {
                    throw new CsvError(lines.get(index).number(), "quoted field of column " + (fields.size() + 1)
                            + " is never closed");
                }
                field.append('\n');
                i++;
                continue;
            }
            fields.add(field.toString());
            next[0] = i + 1;
            return fields;
        }
    }

    private static final CsvMapper CSV = CsvMapper.builder().enable(CsvParser.Feature.WRAP_AS_ARRAY).build();

    /**
     * The fields of the record on lines [from, to), decoded by Jackson's CsvParser. {@code scanned} is the
     * scanner's split of the same text; the two must agree (they implement the same grammar), and a
     * disagreement is a bug worth a loud failure rather than a silently different value.
     */
    private static List<String> decodeFields(LineSource lines, int from, int to, List<String> scanned) {
        StringBuilder text = new StringBuilder();
        for (int k = from; k < to; k++) {
            if (k > from) text.append('\n');
            text.append(lines.get(k).text());
        }
        List<String> fields;
        try (MappingIterator<String[]> it = CSV.readerFor(String[].class).readValues(text.toString())) {
            fields = it.hasNext() ? List.of(it.next()) : List.of("");
        } catch (IOException e) {
            throw new IllegalStateException("line " + lines.get(from).number() + ": Jackson refused a record the scanner accepted: " + e.getMessage(), e);
        }
        if (fields.isEmpty()) fields = List.of("");
        if (!fields.equals(scanned)) {
            throw new IllegalStateException("line " + lines.get(from).number() + ": CSV decoders disagree: " + fields + " vs " + scanned);
        }
        return fields;
    }

    private static void readCsv(Path file, LineSource lines, List<String> required, Consumer<Row> sink) {
        int i = 0;
        while (lines.has(i) && lines.get(i).text().isBlank() && lines.get(i).utf8Error() == null) i++;
        if (!lines.has(i)) {
            throw new UserError(file + ": empty CSV file; expected a header row naming the columns " + required);
        }
        int[] next = new int[1];
        List<String> header;
        Line headerLine = lines.get(i);
        if (headerLine.utf8Error() != null) {
            throw new UserError(file + ":" + headerLine.number() + ": header row: " + headerLine.utf8Error());
        }
        try {
            header = parseRecord(lines, i, next);
        } catch (CsvError e) {
            throw new UserError(file + ":" + e.line + ": header row: bad quoting: " + e.getMessage());
        }
        List<String> names = new ArrayList<>();
        for (String h : header) names.add(h.strip());
        for (String r : required) {
            if (!names.contains(r)) {
                throw new UserError(file + ": no column \"" + r + "\" in the header (line " + headerLine.number()
                        + "); it has " + names);
            }
        }
        i = next[0];
        while (lines.has(i)) {
            lines.dropBefore(i);
            Line first = lines.get(i);
            if (first.text().isEmpty() && first.utf8Error() == null) {
                i++; // blank line between records: not a row
                continue;
            }
            List<String> fields;
            try {
                fields = parseRecord(lines, i, next);
            } catch (CsvError e) {
                sink.accept(Row.bad(first.number(), Reason.BAD_QUOTING, e.line, e.getMessage()));
                i++; // resume on the next physical line: a stray quote spoils one record, not the rest of the file
                continue;
            }
            int end = next[0];
            fields = decodeFields(lines, i, end, fields);
            Line badUtf8 = null;
            for (int k = i; k < end; k++) {
                if (lines.get(k).utf8Error() != null) {
                    badUtf8 = lines.get(k);
                    break;
                }
            }
            if (badUtf8 != null) {
                sink.accept(Row.bad(first.number(), Reason.INVALID_UTF8, badUtf8.number(), badUtf8.utf8Error()));
            } else if (fields.size() != names.size()) {
                sink.accept(Row.bad(first.number(), Reason.WRONG_COLUMN_COUNT, first.number(),
                        fields.size() + " fields, the header has " + names.size()));
            } else {
                Map<String, JsonNode> values = new LinkedHashMap<>();
                for (int k = 0; k < names.size(); k++) {
                    values.putIfAbsent(names.get(k), TextNode.valueOf(fields.get(k)));
                }
                sink.accept(Row.good(first.number(), values));
            }
            i = end;
        }
    }

    // ---------------------------------------------------------------- JSON lines

    private static void readJsonl(Path file, LineSource lines, List<String> required, Consumer<Row> sink) {
        int first = 0;
        while (lines.has(first) && lines.get(first).text().strip().isEmpty()) first++;
        KeyCheck keys = new KeyCheck(file, required, sink);
        if (lines.has(first) && lines.get(first).text().strip().startsWith("[")) {
            readJsonArray(file, lines).forEach(keys::accept);
            keys.end();
            return;
        }
        for (int i = 0; lines.has(i); i++) {
            lines.dropBefore(i);
            Line l = lines.get(i);
            if (l.text().isBlank() && l.utf8Error() == null) continue;
            if (l.utf8Error() != null) {
                keys.accept(Row.bad(l.number(), Reason.INVALID_UTF8, l.number(), l.utf8Error()));
                continue;
            }
            JsonNode node;
            try {
                node = JSON.readTree(l.text());
            } catch (JacksonException e) {
                keys.accept(Row.bad(l.number(), Reason.BAD_JSON, l.number(), e.getOriginalMessage()
                        + (e.getLocation() == null ? "" : " at column " + e.getLocation().getColumnNr())));
                continue;
            }
            if (node == null || !node.isObject()) {
                keys.accept(Row.bad(l.number(), Reason.BAD_JSON, l.number(), "not a JSON object"));
                continue;
            }
            Map<String, JsonNode> values = new LinkedHashMap<>();
            for (Iterator<Map.Entry<String, JsonNode>> it = node.fields(); it.hasNext(); ) {
                Map.Entry<String, JsonNode> e = it.next();
                values.put(e.getKey(), e.getValue());
            }
            keys.accept(Row.good(l.number(), values));
        }
        keys.end();
    }

    /**
     * A UserError when no good row of a JSON file has one of the required keys. Rows are held back only until
     * every key has been seen (the first row, in a well-formed file), then passed on as they come.
     */
    private static final class KeyCheck {
        private final Path file;
        private final Consumer<Row> sink;
        private final java.util.Set<String> unseen;
        private final List<Row> held = new ArrayList<>();
        private List<String> firstKeys;

        KeyCheck(Path file, List<String> required, Consumer<Row> sink) {
            this.file = file;
            this.sink = sink;
            this.unseen = new java.util.LinkedHashSet<>(required);
        }

        void accept(Row row) {
            if (!unseen.isEmpty() && !row.isBad()) {
                if (firstKeys == null) firstKeys = new ArrayList<>(row.values().keySet());
                unseen.removeIf(k -> row.values().containsKey(k));
            }
            if (unseen.isEmpty()) {
                if (!held.isEmpty()) {
                    held.forEach(sink);
                    held.clear();
                }
                sink.accept(row);
            } else {
                held.add(row);
            }
        }

        void end() {
            if (!unseen.isEmpty() && firstKeys != null) {
                throw new UserError(file + ": no object has the key \"" + unseen.iterator().next() + "\"; the first one has "
                        + firstKeys);
            }
            held.forEach(sink);   // only bad rows: no object to check
            held.clear();
        }
    }

    /**
     * A JSON array of objects (what {@code datasets}' to_json(lines=False) and many scripts write): each element
     * is a row numbered by the line it starts on. An element that is not an object is a bad row; broken JSON
     * syntax ends the array, so it is the file's error, with its line.
     */
    private static List<Row> readJsonArray(Path file, LineSource lines) {
        StringBuilder text = new StringBuilder();
        for (int i = 0; lines.has(i); i++) {
            Line l = lines.get(i);
            if (l.utf8Error() != null) throw new UserError(file + ":" + l.number() + ": " + l.utf8Error());
            text.append(l.text()).append('\n');
        }
        List<Row> rows = new ArrayList<>();
        try (com.fasterxml.jackson.core.JsonParser p = ELEMENTS.createParser(text.toString())) {
            p.nextToken(); // START_ARRAY
            while (p.nextToken() != com.fasterxml.jackson.core.JsonToken.END_ARRAY) {
                if (p.currentToken() == null) throw new UserError(file + ": the JSON array is never closed");
                int line = p.currentTokenLocation().getLineNr();
                JsonNode node = p.readValueAsTree();
                if (node == null || !node.isObject()) {
                    rows.add(Row.bad(line, Reason.BAD_JSON, line, "not a JSON object"));
                    continue;
                }
                Map<String, JsonNode> values = new LinkedHashMap<>();
                for (Iterator<Map.Entry<String, JsonNode>> it = node.fields(); it.hasNext(); ) {
                    Map.Entry<String, JsonNode> e = it.next();
                    values.put(e.getKey(), e.getValue());
                }
                rows.add(Row.good(line, values));
            }
            if (p.nextToken() != null) {
                throw new UserError(file + ":" + p.currentTokenLocation().getLineNr() + ": text after the JSON array");
            }
        } catch (JacksonException e) {
            int line = e.getLocation() == null ? 0 : e.getLocation().getLineNr();
            throw new UserError(file + ":" + line + ": bad JSON inside the array: " + e.getOriginalMessage(), e);
        } catch (IOException e) {
            throw new UserError(file + ": cannot read: " + e.getMessage(), e);
        }
        return rows;
    }
}
