package dev.jtune.data;

import com.fasterxml.jackson.core.JacksonException;
import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import dev.jtune.config.DataSection;
import dev.jtune.data.DataReport.Reason;
import dev.jtune.data.RowReader.Row;

import java.nio.file.Path;
import java.util.ArrayList;
import java.util.HashSet;
import java.util.List;
import java.util.Set;
import java.util.regex.Pattern;

/**
 * From the rows of one data file to {@link Candidate}s: takes the columns the format reads, normalises whitespace
 * ({@code normalize_whitespace}), adds the system prompt, and drops rows that cannot train (empty prompt or answer,
 * no assistant turn) and exact duplicates ({@code drop_duplicates}). Rows that cannot be read go to
 * {@link FileTally#badRow} ({@code on_bad_row}).
 */
final class RowCleaner {
    private static final ObjectMapper JSON = new ObjectMapper();
    private static final Pattern INNER_BLANKS = Pattern.compile("(?<=\\S)[ \\t]{2,}|(?<=\\S)\\t");
    private static final Pattern TRAILING_BLANKS = Pattern.compile("[ \\t]+(?=\\n|$)");

    private final DataSection d;
    /** The system prompt, normalised like the rows, or null. */
    private final String system;

    RowCleaner(DataSection d) {
        this.d = d;
        this.system = d.systemPrompt() == null ? null : normalize(d.systemPrompt(), d.normalizeWhitespace());
    }

    /** The columns the format reads. */
    List<String> requiredColumns() {
        return switch (d.format()) {
            case TEXT -> List.of(d.textColumn());
            case INSTRUCTION -> List.of(d.promptColumn(), d.responseColumn());
            case CHAT -> List.of(d.messagesColumn());
            case PREFERENCE, KTO -> throw new IllegalStateException("preference rows are read by PreferenceRows");
        };
    }

    /** Reads {@code file} and returns its usable rows in file order; counts the others in {@code tally}. */
    List<Candidate> clean(Path file, FileTally tally) {
        List<Row> rows = RowReader.read(file, requiredColumns());
        tally.rowsRead = rows.size();
        List<Candidate> out = new ArrayList<>();
        Set<String> seen = new HashSet<>();
        for (Row row : rows) {
            if (row.isBad()) {
                tally.badRow(row.bad(), row.badLine(), row.detail());
                continue;
            }
            Candidate c;
            try {
                c = candidate(row);
            } catch (BadValue e) {
                tally.badRow(e.reason, row.line(), e.getMessage());
                continue;
            } catch (Dropped dropped) {
                tally.drop(dropped.reason, row.line());
                continue;
            }
            if (d.dropDuplicates() && !seen.add(c.key())) {
                tally.drop(Reason.DUPLICATE, row.line());
                continue;
            }
            out.add(c);
        }
        return out;
    }

    /**
     * Line endings to \n, then (with {@code collapse}) trailing blanks removed and runs of spaces/tabs inside a line
     * made one space, keeping each line's indentation (code) and the newlines (lists, code); finally trimmed.
     */
    static String normalize(String s, boolean collapse) {
        String t = s.indexOf('\r') >= 0 ? s.replace("\r\n", "\n").replace('\r', '\n') : s;
        if (collapse) {
            t = TRAILING_BLANKS.matcher(t).replaceAll("");
            t = INNER_BLANKS.matcher(t).replaceAll(" ");
        }
        return t.strip();
    }

    /** A value that makes the row unreadable (a bad row). */
    static final class BadValue extends Exception {
        final Reason reason;

        BadValue(Reason reason, String message) {
            super(message, null, false, false);
            this.reason = reason;
        }
    }

    /** A readable row that cannot train (dropped and counted, never an error). */
    private static final class Dropped extends Exception {
        final Reason reason;

        Dropped(Reason reason) {
            super(reason.name(), null, false, false);
            this.reason = reason;
        }
    }

    private Candidate candidate(Row row) throws BadValue, Dropped {
        boolean ws = d.normalizeWhitespace();
        switch (d.format()) {
            case TEXT: {
                String text = normalize(textValue(row, d.textColumn()), ws);
                if (text.isEmpty()) throw new Dropped(Reason.EMPTY_TEXT);
                return new Candidate(row.line(), text, null, text);
            }
            case INSTRUCTION: {
                String prompt = normalize(textValue(row, d.promptColumn()), ws);
                String response = normalize(textValue(row, d.responseColumn()), ws);
                if (prompt.isEmpty()) throw new Dropped(Reason.EMPTY_PROMPT);
                if (response.isEmpty()) throw new Dropped(Reason.EMPTY_RESPONSE);
                List<ChatTemplate.Message> m = new ArrayList<>();
                if (system != null && !system.isEmpty()) m.add(new ChatTemplate.Message("system", system));
                m.add(new ChatTemplate.Message("user", prompt));
                m.add(new ChatTemplate.Message("assistant", response));
                return new Candidate(row.line(), null, m, prompt + '\u0000' + response);
            }
            default: {
                List<ChatTemplate.Message> m = messages(row, d.messagesColumn(), ws);
                if (system != null && !system.isEmpty() && (m.isEmpty() || !m.get(0).role().equals("system"))) {
                    m.add(0, new ChatTemplate.Message("system", system));
                }
                boolean assistant = false;
                StringBuilder key = new StringBuilder();
                for (ChatTemplate.Message msg : m) {
                    if (msg.role().equals("assistant")) {
                        assistant = true;
                        if (msg.content().isEmpty()) throw new Dropped(Reason.EMPTY_RESPONSE);
                    } else if (msg.role().equals("user") && msg.content().isEmpty()) {
                        throw new Dropped(Reason.EMPTY_PROMPT);
                    }
                    key.append(msg.role()).append('\u0001').append(msg.content()).append('\u0000');
                }
                if (!assistant) throw new Dropped(Reason.NO_ASSISTANT);
                return new Candidate(row.line(), null, m, key.toString());
            }
        }
    }

    static String textValue(Row row, String column) throws BadValue {
        JsonNode v = row.values().get(column);
        if (v == null || v.isNull() || v.isMissingNode()) {
            throw new BadValue(Reason.MISSING_VALUE, "no value for column \"" + column + "\"");
        }
        if (v.isContainerNode()) {
            throw new BadValue(Reason.MISSING_VALUE, "column \"" + column + "\" holds "
                    + (v.isArray() ? "an array" : "an object") + ", expected text");
        }
        return v.asText();
    }

    /** A chat row's messages: a JSON list of {role, content} (JSON text in CSV files). */
    static List<ChatTemplate.Message> messages(Row row, String column, boolean ws) throws BadValue {
        JsonNode v = row.values().get(column);
        if (v == null || v.isNull()) {
            throw new BadValue(Reason.MISSING_VALUE, "no value for column \"" + column + "\"");
        }
        if (v.isTextual()) {
            if (v.textValue().isBlank()) {
                throw new BadValue(Reason.MISSING_VALUE, "no value for column \"" + column + "\"");
            }
            try {
                v = JSON.readTree(v.textValue());
            } catch (JacksonException e) {
                throw new BadValue(Reason.BAD_MESSAGES, "column \"" + column + "\" is not valid JSON: "
                        + e.getOriginalMessage());
            }
        }
        if (v == null || !v.isArray()) {
            throw new BadValue(Reason.BAD_MESSAGES, "column \"" + column
                    + "\" must be a list of {\"role\": ..., \"content\": ...}");
        }
        List<ChatTemplate.Message> out = new ArrayList<>();
        int i = 0;
        for (JsonNode m : v) {
            JsonNode role = m.get("role");
            JsonNode content = m.get("content");
            if (!m.isObject() || role == null || !role.isTextual()
                    || (content != null && !content.isNull() && !content.isTextual())) {
                throw new BadValue(Reason.BAD_MESSAGES, "message " + i + " of column \"" + column
                        + "\" must be {\"role\": string, \"content\": string}, found " + m);
            }
            String text = content == null || content.isNull() ? "" : content.textValue();
            out.add(new ChatTemplate.Message(role.textValue().strip(), normalize(text, ws)));
            i++;
        }
        return out;
    }
}
