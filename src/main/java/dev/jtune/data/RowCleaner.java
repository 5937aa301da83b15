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
import java.util.Map;
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
            case SHAREGPT -> List.of(d.conversationsColumn());
            case ALPACA -> List.of(d.instructionColumn(), d.outputColumn());   // input is optional
            case PREFERENCE, KTO -> throw new IllegalStateException("preference rows are read by PreferenceRows");
        };
    }

    /**
     * What cleaning made of one row: a {@link Candidate} whose key is the 128-bit hash of its text (also as the
     * two longs {@code hashHi}, {@code hashLo}), or the reason it is not one: a bad row (a {@link Reason#badRow}
     * reason: counted or fatal by {@code on_bad_row}) or a dropped one, with its line and what was wrong.
     */
    record Cleaned(Candidate candidate, long hashHi, long hashLo, Reason reason, int line, String detail) {
        /** Counts the row in {@code tally} when it is not a candidate; returns whether it is one. */
        boolean tallied(FileTally tally) {
            if (candidate != null) return true;
            if (reason.badRow) tally.badRow(reason, line, detail);
            else tally.drop(reason, line);
            return false;
        }
    }

    /** Reads {@code file} and returns its usable rows in file order; counts the others in {@code tally}. */
    List<Candidate> clean(Path file, FileTally tally) {
        List<Candidate> out = new ArrayList<>();
        Set<String> seen = new HashSet<>();
        RowReader.forEach(file, requiredColumns(), row -> {
            tally.rowsRead++;
            Cleaned c = clean(row);
            if (!c.tallied(tally)) return;
            if (d.dropDuplicates() && !seen.add(c.candidate().key())) {
                tally.drop(Reason.DUPLICATE, row.line());
                return;
            }
            out.add(c.candidate());
        });
        return out;
    }

    /** Cleans one row (thread-safe: rows are cleaned on the tokenising threads). */
    Cleaned clean(Row row) {
        if (row.isBad()) return new Cleaned(null, 0, 0, row.bad(), row.badLine(), row.detail());
        Candidate c;
        try {
            c = candidate(row);
        } catch (BadValue e) {
            return new Cleaned(null, 0, 0, e.reason, row.line(), e.getMessage());
        } catch (Dropped dropped) {
            return new Cleaned(null, 0, 0, dropped.reason, row.line(), null);
        }
        // duplicates and split groups go by a 128-bit hash of the row's text, not a copy of it
        byte[] h = SHA256.get().digest(c.key().getBytes(java.nio.charset.StandardCharsets.UTF_8));
        java.nio.ByteBuffer b = java.nio.ByteBuffer.wrap(h);
        long hi = b.getLong(), lo = b.getLong();
        return new Cleaned(new Candidate(c.line(), c.text(), c.messages(),
                new String(h, 0, 16, java.nio.charset.StandardCharsets.ISO_8859_1)), hi, lo, null, row.line(), null);
    }

    private static final ThreadLocal<java.security.MessageDigest> SHA256 = ThreadLocal.withInitial(() -> {
        try {
            return java.security.MessageDigest.getInstance("SHA-256");
        } catch (java.security.NoSuchAlgorithmException e) {
            throw new IllegalStateException(e);
        }
    });

    /**
     * Line endings to \n, then (with {@code collapse}) trailing blanks removed and runs of spaces/tabs inside a line
     * made one space, keeping each line's indentation (code) and the newlines (lists, code); finally trimmed.
     */
    static String normalize(String s, boolean collapse) {
        String t = s.indexOf('\r') >= 0 ? s.replace("\r\n", "\n").replace('\r', '\n') : s;
        if (collapse && hasBlanksToCollapse(t)) {   // most rows have none: skip the two regex passes
            t = TRAILING_BLANKS.matcher(t).replaceAll("");
            t = INNER_BLANKS.matcher(t).replaceAll(" ");
        }
        return t.strip();
    }

    /**
     * Whether either pattern of {@link #normalize} could match: a tab, two spaces in a row, or a space before a
     * newline or at the end (a superset of their matches, so skipping them otherwise changes nothing).
     */
    private static boolean hasBlanksToCollapse(String t) {
        int n = t.length();
        for (int i = 0; i < n; i++) {
            char c = t.charAt(i);
            if (c == '\t') return true;
            if (c == ' ' && (i + 1 == n || t.charAt(i + 1) == ' ' || t.charAt(i + 1) == '\n')) return true;
        }
        return false;
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
            case INSTRUCTION:
                return promptResponse(row, normalize(textValue(row, d.promptColumn()), ws),
                        normalize(textValue(row, d.responseColumn()), ws));
            case ALPACA: {
                // Stanford alpaca: the input, when there is one, is context for the instruction
                String instruction = normalize(textValue(row, d.instructionColumn()), ws);
                String input = optionalText(row, d.inputColumn(), ws);
                String prompt = input.isEmpty() || instruction.isEmpty() ? instruction : instruction + "\n\n" + input;
                return promptResponse(row, prompt, normalize(textValue(row, d.outputColumn()), ws));
            }
            case CHAT:
                return conversation(row, messages(row, d.messagesColumn(), "role", "content", ws, null));
            case SHAREGPT:
                return conversation(row, messages(row, d.conversationsColumn(), d.sharegptRoleKey(),
                        d.sharegptContentKey(), ws, SHAREGPT_ROLES));
            default:
                throw new IllegalStateException("RowCleaner has no rule for format " + d.format());
        }
    }

    /** ShareGPT speakers (from FastChat, LLaMA-Factory and axolotl data) to chat-template roles. */
    static final Map<String, String> SHAREGPT_ROLES = Map.ofEntries(
            Map.entry("human", "user"), Map.entry("user", "user"),
            Map.entry("gpt", "assistant"), Map.entry("assistant", "assistant"), Map.entry("chatgpt", "assistant"),
            Map.entry("bard", "assistant"), Map.entry("bing", "assistant"), Map.entry("model", "assistant"),
            Map.entry("system", "system"),
            Map.entry("tool", "tool"), Map.entry("function", "tool"), Map.entry("observation", "tool"));

    /** One prompt, one response, after the system prompt. */
    private Candidate promptResponse(Row row, String prompt, String response) throws Dropped {
        if (prompt.isEmpty()) throw new Dropped(Reason.EMPTY_PROMPT);
        if (response.isEmpty()) throw new Dropped(Reason.EMPTY_RESPONSE);
        List<ChatTemplate.Message> m = new ArrayList<>();
        if (system != null && !system.isEmpty()) m.add(new ChatTemplate.Message("system", system));
        m.add(new ChatTemplate.Message("user", prompt));
        m.add(new ChatTemplate.Message("assistant", response));
        return new Candidate(row.line(), null, m, prompt + '\u0000' + response);
    }

    /** A conversation: the system prompt unless it has its own; needs an assistant turn and no empty turn. */
    private Candidate conversation(Row row, List<ChatTemplate.Message> m) throws Dropped {
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

    /** A column that may be absent, null or empty (alpaca's input): its normalised text, or "". */
    private static String optionalText(Row row, String column, boolean ws) throws BadValue {
        JsonNode v = row.values().get(column);
        if (v == null || v.isNull()) return "";
        return normalize(textValue(row, column), ws);
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

    /** A chat row's messages: a JSON list of {role, content} (JSON text in CSV files); PreferenceRows reads its columns so. */
    static List<ChatTemplate.Message> messages(Row row, String column, boolean ws) throws BadValue {
        return messages(row, column, "role", "content", ws, null);
    }

    /**
     * A chat row's messages: a JSON list of {roleKey, contentKey} (JSON text in CSV files). With {@code roles},
     * speakers are mapped through it (ShareGPT's human/gpt) and one it lacks makes the row a bad row.
     */
    private static List<ChatTemplate.Message> messages(Row row, String column, String roleKey, String contentKey,
                                                       boolean ws, Map<String, String> roles) throws BadValue {
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
        String shape = "{\"" + roleKey + "\": ..., \"" + contentKey + "\": ...}";
        if (v == null || !v.isArray()) {
            throw new BadValue(Reason.BAD_MESSAGES, "column \"" + column + "\" must be a list of " + shape);
        }
        List<ChatTemplate.Message> out = new ArrayList<>();
        int i = 0;
        for (JsonNode m : v) {
            JsonNode role = m.get(roleKey);
            JsonNode content = m.get(contentKey);
            if (!m.isObject() || role == null || !role.isTextual()
                    || (content != null && !content.isNull() && !content.isTextual())) {
                throw new BadValue(Reason.BAD_MESSAGES, "message " + i + " of column \"" + column
                        + "\" must be {\"" + roleKey + "\": string, \"" + contentKey + "\": string}, found " + m);
            }
            String name = role.textValue().strip();
            if (roles != null) {
                String mapped = roles.get(name.toLowerCase(java.util.Locale.ROOT));
                if (mapped == null) {
                    throw new BadValue(Reason.BAD_MESSAGES, "message " + i + " of column \"" + column + "\": unknown "
                            + roleKey + " \"" + name + "\" (expected human, gpt, system or tool)");
                }
                name = mapped;
            }
            String text = content == null || content.isNull() ? "" : content.textValue();
            out.add(new ChatTemplate.Message(name, normalize(text, ws)));
            i++;
        }
        return out;
    }
}
