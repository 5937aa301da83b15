package dev.jtune.data;

import com.fasterxml.jackson.databind.JsonNode;
import dev.jtune.config.DataSection;
import dev.jtune.config.PreferenceSection;
import dev.jtune.data.DataReport.FileReport;
import dev.jtune.data.DataReport.Reason;
import dev.jtune.tokenizer.HfTokenizer;
import dev.jtune.util.Labels;
import dev.jtune.util.UserError;

import java.io.PrintStream;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.HashMap;
import java.util.HashSet;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Set;

/**
 * Preference data ({@code data.format: preference}: prompt, chosen, rejected; {@code kto}: prompt, completion, label)
 * read, cleaned, split and tokenised the way TRL's trainers tokenise non-conversational rows: the prompt's tokens (its
 * last {@code preference.max_prompt_length}) then the completion's tokens then EOS, labels -100 over the prompt, no
 * special tokens added. Conversational rows (prompt and completions as lists of role/content messages) are first
 * rendered with the chat template as TRL's {@code maybe_apply_chat_template} does: the prompt with the generation
 * prompt, the completion as what the whole conversation adds after it.
 *
 * <p>Layout: every item is two consecutive examples, which {@link Batcher} keeps in the same micro-batch
 * ({@code itemSize} 2): a pair is (chosen, rejected); a KTO item is (the completion, its KL example: the same prompt
 * with the completion of the previous row of its chunk of {@code per_device_train_batch_size} rows, as TRL's
 * {@code _get_kl_dataset} rotates them).
 *
 * <p>Cleaning counts (per file, in the data summary): pairs whose chosen equals rejected, empty prompts and sides,
 * duplicates, prompts cut to max_prompt_length, items with a sequence cut to max_seq_length ({@code on_long_row:
 * truncate}) or dropped ({@code drop}). A sequence longer than max_seq_length keeps its end ({@code
 * preference.truncation_mode: keep_end}, TRL's default: the prompt's first tokens go, then the completion's) or its start
 * ({@code keep_start}: the completion's end goes; a prompt that alone fills max_seq_length drops its row).
 */
public final class PreferenceRows {
    /**
     * @param data      the examples as items of two (see the class comment)
     * @param desirable KTO: each completion example's label, by its tokens (empty for pairs)
     */
    public record Prepared(PreparedData data, Map<SequenceKey, Boolean> desirable) {}

    /** One cleaned row: prompt and one or two completions as text (after the chat template), and a KTO label. */
    private record Row(int line, String prompt, String first, String second, Boolean label, String key) {}

    /** A row's tokens: the prompt's and each completion's (with EOS). */
    private record Tokens(long[] prompt, long[] first, long[] second) {}

    private final DataSection d;
    private final PreferenceSection pref;
    private final boolean kto;
    private final HfTokenizer tok;
    private final ChatTemplate template;
    private final long eos;
    private final int maxPromptLength;
    private final boolean keepEnd;
    private int promptsCut;

    private PreferenceRows(DataSection d, PreferenceSection pref, HfTokenizer tok) {
        this.d = d;
        this.pref = pref;
        this.kto = d.format() == DataSection.Format.KTO;
        this.tok = tok;
        this.template = ChatTemplate.forTokenizer(tok);
        Set<Long> eosIds = tok.eosTokenIds();
        this.eos = eosIds.isEmpty() ? -1 : eosIds.iterator().next();   // a tokenizer without EOS: none appended (as for SFT rows)
        this.maxPromptLength = pref.maxPromptLength() == null ? Integer.MAX_VALUE : pref.maxPromptLength();
        this.keepEnd = pref.truncationMode() != PreferenceSection.TruncationMode.KEEP_START;
    }

    /**
     * @param trainBatch per_device_train_batch_size: the chunk size of KTO's KL rotation on the train split
     * @param evalBatch  per_device_eval_batch_size: the same for evaluation splits
     */
    public static Prepared prepare(DataSection d, PreferenceSection pref, long seed, int trainBatch, int evalBatch,
                                   HfTokenizer tok, PrintStream log) {
        return new PreferenceRows(d, pref, tok).prepare(seed, trainBatch, evalBatch, log);
    }

    private Prepared prepare(long seed, int trainBatch, int evalBatch, PrintStream log) {
        boolean failOnBadRow = d.onBadRow() == DataSection.OnBadRow.FAIL;
        List<FileReport> reports = new ArrayList<>();
        Map<SequenceKey, Boolean> desirable = new HashMap<>();

        FileTally trainTally = new FileTally(d.trainFile(), "train", failOnBadRow);
        List<Row> rows = clean(d.trainFile(), trainTally);
        Map<Integer, Row> byLine = new HashMap<>();
        List<Candidate> cands = new ArrayList<>();
        for (Row r : rows) {
            byLine.put(r.line(), r);
            cands.add(new Candidate(r.line(), r.key(), null, r.key()));
        }
        List<List<Candidate>> parts = DataSplitter.split(cands, d.effectiveValidationSplit(), d.effectiveTestSplit(), seed, d.trainFile());
        List<Example> train = encodeAll(rowsOf(parts.get(0), byLine), trainTally, trainBatch, desirable);
        List<Example> validation = encodeAll(rowsOf(parts.get(1), byLine), trainTally, evalBatch, desirable);
        List<Example> test = encodeAll(rowsOf(parts.get(2), byLine), trainTally, evalBatch, desirable);
        reports.add(trainTally.report((train.size() + validation.size() + test.size()) / 2));
        int truncated = trainTally.truncated;
        if (d.validationFile() != null) {
            FileTally t = new FileTally(d.validationFile(), "validation", failOnBadRow);
            validation = encodeAll(clean(d.validationFile(), t), t, evalBatch, desirable);
            reports.add(t.report(validation.size() / 2));
            truncated += t.truncated;
        }
        if (d.testFile() != null) {
            FileTally t = new FileTally(d.testFile(), "test", failOnBadRow);
            test = encodeAll(clean(d.testFile(), t), t, evalBatch, desirable);
            reports.add(t.report(test.size() / 2));
            truncated += t.truncated;
        }
        long tokens = 0, targets = 0;
        int longest = 0;
        for (Example e : train) {
            tokens += e.length();
            targets += e.targetTokens();
            longest = Math.max(longest, e.length());
        }
        List<String> notes = new ArrayList<>();
        notes.add(kto ? "kto: each example is trained with a KL example (its prompt with the previous row's completion, "
                + "rotated within chunks of per_device_train_batch_size rows as TRL does)"
                : "preference pairs: chosen and rejected of a pair are always in the same micro-batch");
        if (promptsCut > 0) notes.add(promptsCut + " prompts cut to their last " + maxPromptLength + " tokens (preference.max_prompt_length)");
        if (truncated > 0) {
            String items = truncated == 1 ? (kto ? " example" : " pair") : (kto ? " examples" : " pairs");
            notes.add(truncated + items + " with a sequence over max_seq_length " + d.maxSeqLength() + (truncated == 1 ? " keeps" : " keep")
                    + (keepEnd ? " its last tokens (preference.truncation_mode keep_end: the prompt's start is cut first)"
                    : " its first tokens (preference.truncation_mode keep_start: the completion's end is cut)"));
        }
        DataReport report = new DataReport(reports, train.size() / 2, validation.size() / 2, test.size() / 2, tokens, targets,
                longest, truncated, d.maxSeqLength(), notes);
        if (log != null) report.lines().forEach(l -> log.println(l.replace(" examples,", kto ? " examples," : " pairs,")));
        if (train.isEmpty()) throw new UserError(d.trainFile() + ": no training " + (kto ? "examples" : "pairs") + " left ("
                + reports.get(0).summary() + ")");
        return new Prepared(new PreparedData(List.copyOf(train), List.copyOf(validation), List.copyOf(test), report,
                template), Map.copyOf(desirable));
    }

    private static List<Row> rowsOf(List<Candidate> part, Map<Integer, Row> byLine) {
        List<Row> out = new ArrayList<>(part.size());
        for (Candidate c : part) out.add(byLine.get(c.line()));
        return out;
    }

    private List<String> columns() {
        return kto ? List.of(d.promptColumn(), pref.completionColumn(), pref.labelColumn())
                : List.of(d.promptColumn(), pref.chosenColumn(), pref.rejectedColumn());
    }

    /** Reads {@code file}: its usable rows in file order; the others counted in {@code tally}. */
    private List<Row> clean(Path file, FileTally tally) {
        List<RowReader.Row> read = RowReader.read(file, columns());
        tally.rowsRead = read.size();
        List<Row> out = new ArrayList<>();
        Set<String> seen = new HashSet<>();
        for (RowReader.Row r : read) {
            if (r.isBad()) {
                tally.badRow(r.bad(), r.badLine(), r.detail());
                continue;
            }
            Row row;
            try {
                row = row(r);
            } catch (RowCleaner.BadValue e) {
                tally.badRow(e.reason, r.line(), e.getMessage());
                continue;
            }
            Reason drop = dropReason(row);
            if (drop != null) {
                tally.drop(drop, r.line());
                continue;
            }
            if (d.dropDuplicates() && !seen.add(row.key())) {
                tally.drop(Reason.DUPLICATE, r.line());
                continue;
            }
            out.add(row);
        }
        return out;
    }

    private Reason dropReason(Row row) {
        if (row.prompt().isEmpty()) return Reason.EMPTY_PROMPT;
        if (kto) return row.first().isEmpty() ? Reason.EMPTY_COMPLETION : null;
        if (row.first().isEmpty()) return Reason.EMPTY_CHOSEN;
        if (row.second().isEmpty()) return Reason.EMPTY_REJECTED;
        return row.first().equals(row.second()) ? Reason.CHOSEN_EQUALS_REJECTED : null;
    }

    /** A row's prompt and completions as text: plain values as they are, conversations through the chat template. */
    private Row row(RowReader.Row r) throws RowCleaner.BadValue {
        boolean ws = d.normalizeWhitespace();
        String promptCol = d.promptColumn();
        String firstCol = kto ? pref.completionColumn() : pref.chosenColumn();
        String secondCol = kto ? null : pref.rejectedColumn();
        Boolean label = kto ? label(r, pref.labelColumn()) : null;
        if (!isConversation(r.values().get(firstCol))) {
            String prompt = RowCleaner.normalize(RowCleaner.textValue(r, promptCol), ws);
            String first = RowCleaner.normalize(RowCleaner.textValue(r, firstCol), ws);
            String second = kto ? null : RowCleaner.normalize(RowCleaner.textValue(r, secondCol), ws);
            return new Row(r.line(), prompt, first, second, label, key(prompt, first, second, label));
        }
        List<ChatTemplate.Message> prompt = RowCleaner.messages(r, promptCol, ws);
        if (d.systemPrompt() != null && (prompt.isEmpty() || !prompt.get(0).role().equals("system"))) {
            prompt.add(0, new ChatTemplate.Message("system", RowCleaner.normalize(d.systemPrompt(), ws)));
        }
        String promptText = render(prompt, List.of(), true);
        String first = completion(prompt, promptText, RowCleaner.messages(r, firstCol, ws));
        String second = kto ? null : completion(prompt, promptText, RowCleaner.messages(r, secondCol, ws));
        boolean noUser = prompt.stream().noneMatch(m -> m.role().equals("user") && !m.content().isEmpty());
        return new Row(r.line(), noUser ? "" : promptText, first, second, label, key(promptText, first, second, label));
    }

    private static String key(String prompt, String first, String second, Boolean label) {
        return prompt + '\u0000' + first + '\u0000' + second + '\u0000' + label;
    }

    /** Whether a completion column holds messages: a JSON array, or text that is one. */
    private static boolean isConversation(JsonNode v) {
        if (v == null) return false;
        if (v.isArray()) return true;
        return v.isTextual() && v.textValue().stripLeading().startsWith("[{");
    }

    /** The text the completion's messages add to the rendered prompt (empty when they are all empty). */
    private String completion(List<ChatTemplate.Message> prompt, String promptText, List<ChatTemplate.Message> completion)
            throws RowCleaner.BadValue {
        if (completion.stream().allMatch(m -> m.content().isEmpty())) return "";
        String full = render(prompt, completion, false);
        if (!full.startsWith(promptText)) {
            throw new RowCleaner.BadValue(Reason.TEMPLATE_ERROR, "the chat template renders the prompt differently once the "
                    + "completion follows, so the completion cannot be cut off after the prompt");
        }
        return full.substring(promptText.length());
    }

    private String render(List<ChatTemplate.Message> prompt, List<ChatTemplate.Message> more, boolean generationPrompt)
            throws RowCleaner.BadValue {
        List<ChatTemplate.Message> all = new ArrayList<>(prompt);
        all.addAll(more);
        try {
            return template.render(all, generationPrompt);
        } catch (UserError e) {
            throw new RowCleaner.BadValue(Reason.TEMPLATE_ERROR, e.getMessage());
        }
    }

    /** A KTO label: true/false, 1/0 (JSON booleans or numbers, or those words in CSV). */
    private static boolean label(RowReader.Row r, String column) throws RowCleaner.BadValue {
        JsonNode v = r.values().get(column);
        if (v == null || v.isNull()) throw new RowCleaner.BadValue(Reason.MISSING_VALUE, "no value for column \"" + column + "\"");
        if (v.isBoolean()) return v.booleanValue();
        String s = v.asText().strip().toLowerCase(java.util.Locale.ROOT);
        return switch (s) {
            case "true", "1", "1.0" -> true;
            case "false", "0", "0.0" -> false;
            default -> throw new RowCleaner.BadValue(Reason.BAD_LABEL, "column \"" + column + "\" must be true or false (or 1 or 0), got " + v);
        };
    }

    /** Tokenises rows into items of two examples; KTO labels go into {@code desirable}. */
    private List<Example> encodeAll(List<Row> rows, FileTally tally, int chunk, Map<SequenceKey, Boolean> desirable) {
        List<Tokens> tokens = new ArrayList<>(rows.size());
        for (Row r : rows) tokens.add(new Tokens(promptIds(r.prompt()), completionIds(r.first()),
                r.second() == null ? null : completionIds(r.second())));
        List<Example> out = new ArrayList<>();
        Map<SequenceKey, Boolean> labels = new LinkedHashMap<>();
        Set<SequenceKey> conflicting = new HashSet<>();
        for (int i = 0; i < rows.size(); i++) {
            Tokens t = tokens.get(i);
            // KTO: the KL completion is the previous row's within the chunk (the chunk's first takes its last)
            int start = i / chunk * chunk, end = Math.min(rows.size(), start + chunk);
            long[] second = kto ? tokens.get(i == start ? end - 1 : i - 1).first() : t.second();
            Example a = fit(t.prompt(), t.first()), b = fit(t.prompt(), second);
            if (a == null || b == null) {
                tally.drop(!keepEnd && t.prompt().length >= d.maxSeqLength() ? Reason.PROMPT_TOO_LONG : Reason.TOO_LONG, rows.get(i).line());
                continue;
            }
            if (a.length() < t.prompt().length + t.first().length || b.length() < t.prompt().length + second.length) tally.truncated++;
            if (kto) {
                SequenceKey k = SequenceKey.of(a);
                Boolean was = labels.putIfAbsent(k, rows.get(i).label());
                if (was != null && !was.equals(rows.get(i).label())) conflicting.add(k);
            }
            out.add(a);
            out.add(b);
        }
        if (!conflicting.isEmpty()) {
            List<Example> kept = new ArrayList<>();
            for (int i = 0; i < out.size(); i += 2) {
                if (conflicting.contains(SequenceKey.of(out.get(i)))) {
                    tally.drop(Reason.CONFLICTING_LABEL, 0);
                    continue;
                }
                kept.add(out.get(i));
                kept.add(out.get(i + 1));
            }
            out = kept;
            conflicting.forEach(labels::remove);
        }
        desirable.putAll(labels);
        return out;
    }

    private long[] promptIds(String prompt) {
        long[] ids = tok.encode(prompt, false).ids();
        if (ids.length <= maxPromptLength) return ids;
        promptsCut++;
        return Arrays.copyOfRange(ids, ids.length - maxPromptLength, ids.length);   // TRL keeps the prompt's end
    }

    private long[] completionIds(String completion) {
        long[] ids = tok.encode(completion, false).ids();
        if (eos < 0) return ids;
        long[] out = Arrays.copyOf(ids, ids.length + 1);
        out[ids.length] = eos;
        return out;
    }

    /**
     * prompt + completion with the prompt masked, cut to max_seq_length by {@code truncation_mode} (keep_end: the last
     * tokens, keep_start: the first), or null: dropped by on_long_row, or (keep_start) no completion token left.
     */
    private Example fit(long[] prompt, long[] completion) {
        int n = prompt.length + completion.length, max = d.maxSeqLength();
        if (n > max && d.onLongRow() == DataSection.OnLongRow.DROP) return null;
        if (!keepEnd && prompt.length >= max) return null;
        int len = Math.min(n, max), start = keepEnd ? n - len : 0;   // the kept window [start, start + len) of the sequence
        long[] ids = new long[len], labels = new long[len];
        for (int i = 0; i < len; i++) {
            int at = start + i;
            boolean inPrompt = at < prompt.length;
            ids[i] = inPrompt ? prompt[at] : completion[at - prompt.length];
            labels[i] = inPrompt ? Labels.IGNORE_INDEX : ids[i];
        }
        if (start > 0) labels[0] = Labels.IGNORE_INDEX;   // cut inside: nothing before the first kept token predicts it
        return new Example(ids, labels);
    }
}
