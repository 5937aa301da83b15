package dev.jtune.data;

import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Collections;
import java.util.EnumMap;
import java.util.List;
import java.util.Locale;
import java.util.Map;

/**
 * What {@link DatasetPreparer} did: per file, the rows read, kept and dropped (by reason, with the first line of
 * each kind of bad row), then the split sizes and token counts. {@link #lines()} are the summary lines printed.
 */
public record DataReport(List<FileReport> files, int trainExamples, int validationExamples, int testExamples,
                         long trainTokens, long trainTargetTokens, int longest, int truncated, int maxSeqLength,
                         List<String> notes) {

    /** Why a row was not kept, in the order the summary lists them. */
    public enum Reason {
        DUPLICATE("duplicate", "duplicates", false),
        EMPTY_TEXT("empty text", "empty texts", false),
        EMPTY_PROMPT("empty prompt", "empty prompts", false),
        EMPTY_RESPONSE("empty response", "empty responses", false),
        NO_ASSISTANT("without assistant message", "without assistant message", false),
        TOO_LONG("too long", "too long", false),
        PROMPT_TOO_LONG("prompt too long", "prompts too long", false),
        BAD_QUOTING("bad quoting", "bad quoting", true),
        INVALID_UTF8("invalid UTF-8", "invalid UTF-8", true),
        WRONG_COLUMN_COUNT("wrong column count", "wrong column count", true),
        BAD_JSON("bad JSON", "bad JSON", true),
        MISSING_VALUE("missing value", "missing values", true),
        BAD_MESSAGES("bad messages", "bad messages", true),
        TEMPLATE_ERROR("chat template error", "chat template errors", true),
        // preference data (PreferenceRows)
        CHOSEN_EQUALS_REJECTED("pair whose chosen equals rejected", "pairs whose chosen equals rejected", false),
        EMPTY_CHOSEN("empty chosen", "empty chosen", false),
        EMPTY_REJECTED("empty rejected", "empty rejected", false),
        EMPTY_COMPLETION("empty completion", "empty completions", false),
        CONFLICTING_LABEL("completion labelled both desirable and undesirable", "completions labelled both desirable and undesirable", false),
        BAD_LABEL("bad label", "bad labels", true);

        private final String singular;
        private final String plural;
        /** A row that could not be read (counted with its first line), as opposed to one cleaning removed. */
        public final boolean badRow;

        Reason(String singular, String plural, boolean badRow) {
            this.singular = singular;
            this.plural = plural;
            this.badRow = badRow;
        }

        public String label(int count) {
            return count == 1 ? singular : plural;
        }
    }

    /**
     * One input file. {@code role} is "train", "validation" or "test"; {@code firstLine} holds, for each reason,
     * the line where the first such row starts.
     */
    public record FileReport(Path file, String role, int rowsRead, int kept, Map<Reason, Integer> dropped,
                             Map<Reason, Integer> firstLine, int truncated) {
        public FileReport {
            dropped = Collections.unmodifiableMap(new EnumMap<>(dropped.isEmpty() ? new EnumMap<>(Reason.class) : dropped));
            firstLine = Collections.unmodifiableMap(firstLine.isEmpty() ? new EnumMap<>(Reason.class)
                    : new EnumMap<>(firstLine));
        }

        public int droppedTotal() {
            return dropped.values().stream().mapToInt(Integer::intValue).sum();
        }

        public int dropped(Reason r) {
            return dropped.getOrDefault(r, 0);
        }

        /** {@code 1200 rows read, 1187 kept, 13 dropped (9 duplicates, 1 bad quoting at line 512)} */
        public String summary() {
            StringBuilder sb = new StringBuilder();
            sb.append(rowsRead).append(rowsRead == 1 ? " row read, " : " rows read, ")
                    .append(kept).append(" kept, ").append(droppedTotal()).append(" dropped");
            List<String> parts = new ArrayList<>();
            for (Reason r : Reason.values()) {
                int n = dropped(r);
                if (n == 0) continue;
                String part = n + " " + r.label(n);
                if (r.badRow && firstLine.containsKey(r)) {
                    part += " at line " + firstLine.get(r);
                }
                parts.add(part);
            }
            if (!parts.isEmpty()) {
                sb.append(" (").append(String.join(", ", parts)).append(')');
            }
            return sb.toString();
        }
    }

    public DataReport {
        files = List.copyOf(files);
        notes = List.copyOf(notes);
    }

    public FileReport file(String role) {
        return files.stream().filter(f -> f.role().equals(role)).findFirst().orElse(null);
    }

    /** The summary lines, as printed: one per file, then the splits and tokens, then any notes. */
    public List<String> lines() {
        List<String> out = new ArrayList<>();
        boolean mixture = files.stream().filter(f -> f.role().equals("train")).count() > 1;
        for (FileReport f : files) {
            String prefix = f.role().equals("train") && !mixture ? "data: "
                    : "data: " + f.role() + " file " + f.file().getFileName() + ": ";
            out.add(prefix + f.summary());
        }
        StringBuilder sb = new StringBuilder();
        sb.append(String.format(Locale.ROOT, "data: %d train / %d validation / %d test examples, %s train tokens, longest %d",
                trainExamples, validationExamples, testExamples, String.format(Locale.US, "%,d", trainTokens), longest));
        if (truncated > 0) {
            sb.append(", ").append(truncated).append(" truncated to ").append(maxSeqLength);
        }
        out.add(sb.toString());
        for (String n : notes) {
            out.add("data: note: " + n);
        }
        return out;
    }
}
