package dev.jtune.data;

import com.fasterxml.jackson.core.JacksonException;
import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import dev.jtune.data.DataReport.FileReport;
import dev.jtune.data.DataReport.Reason;
import dev.jtune.data.RowReader.Row;
import dev.jtune.tokenizer.HfTokenizer;
import dev.jtune.util.UserError;
import java.io.PrintStream;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.Collections;
import java.util.EnumMap;
import java.util.HashSet;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Random;
import java.util.Set;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;
import java.util.concurrent.atomic.AtomicInteger;
import java.util.regex.Pattern;

/**
 * From data files to tokenised examples: read (CSV / JSON lines) → clean (whitespace, empties, duplicates) →
 * split (seeded, by distinct row) → render (chat template) and tokenise → truncate or drop over-long examples.
 * Prints the summary lines to the log.
 *
 * <p>Loss masks: {@code text} rows train on every token. {@code instruction} and {@code chat} rows are rendered with
 * the chat template; the text before each assistant turn (the render with {@code add_generation_prompt}) gets label
 * -100 unless {@code trainOnInputs}, the assistant turns (with the template's end-of-turn text) are trained on.
 * Segments are tokenised separately without special tokens (templates write BOS themselves, as HF's
 * apply_chat_template assumes). An EOS id is appended when the last trained segment contains none of the
 * tokenizer's EOS ids (for ChatML templates whose end-of-turn token is the EOS, nothing is added).
 */
public final class DatasetPreparer {
    private static final ObjectMapper JSON = new ObjectMapper();
    private static final Pattern INNER_BLANKS = Pattern.compile("(?<=\\S)[ \\t]{2,}|(?<=\\S)\\t");
    private static final Pattern TRAILING_BLANKS = Pattern.compile("[ \\t]+(?=\\n|$)");

    private DatasetPreparer() {}

    /** A cleaned row, before tokenisation. */
    record Candidate(int line, String text, List<ChatTemplate.Message> messages, String key) {}

    /** Outcome of tokenising one candidate: an example, or a reason it was dropped. */
    record Encoded(Example example, Reason dropped, boolean truncated, boolean lastTurnOnly, String templateError) {}

    /** Per-file bookkeeping. */
    static final class Tally {
        final Path file;
        final String role;
        int rowsRead;
        final Map<Reason, Integer> dropped = new EnumMap<>(Reason.class);
        final Map<Reason, Integer> firstLine = new EnumMap<>(Reason.class);
        int truncated;

        Tally(Path file, String role) {
            this.file = file;
            this.role = role;
        }

        void drop(Reason r, int line) {
            dropped.merge(r, 1, Integer::sum);
            firstLine.merge(r, line, Math::min);
        }

        FileReport report(int kept) {
            return new FileReport(file, role, rowsRead, kept, dropped, firstLine, truncated);
        }
    }

    public static PreparedData prepare(DataOptions o, HfTokenizer tok, PrintStream log) {
        return prepare(o, tok, log, Math.max(1, Math.min(4, Runtime.getRuntime().availableProcessors())));
    }

    /** @param workers threads that tokenise rows (training.dataloader_num_workers; 0 means 1) */
    public static PreparedData prepare(DataOptions o, HfTokenizer tok, PrintStream log, int workers) {
        ChatTemplate template = o.format() == DataOptions.Format.TEXT ? null : ChatTemplate.forTokenizer(tok);
        Encoder encoder = new Encoder(o, tok, template);
        List<FileReport> reports = new ArrayList<>();
        AtomicInteger lastTurnOnly = new AtomicInteger();

        int threads = Math.max(1, workers);
        ExecutorService pool = Executors.newFixedThreadPool(threads, r -> {
            Thread t = new Thread(r, "jtune-tokenize");
            t.setDaemon(true);
            return t;
        });
        try {
            // train file: clean, split by distinct row, then tokenise each part
            Tally trainTally = new Tally(o.trainFile(), "train");
            List<Candidate> trainCands = clean(o, o.trainFile(), trainTally);
            List<List<Candidate>> parts = split(trainCands, o.validationFile() == null ? o.validationSplit() : 0,
                    o.testFile() == null ? o.testSplit() : 0, o.seed(), o.trainFile());
            List<Example> train = encodeAll(parts.get(0), encoder, trainTally, o, pool, lastTurnOnly);
            List<Example> validation = encodeAll(parts.get(1), encoder, trainTally, o, pool, lastTurnOnly);
            List<Example> test = encodeAll(parts.get(2), encoder, trainTally, o, pool, lastTurnOnly);
            int keptTrainFile = train.size() + validation.size() + test.size();
            reports.add(trainTally.report(keptTrainFile));
            int truncated = trainTally.truncated;

            if (o.validationFile() != null) {
                Tally t = new Tally(o.validationFile(), "validation");
                validation = encodeAll(clean(o, o.validationFile(), t), encoder, t, o, pool, lastTurnOnly);
                reports.add(t.report(validation.size()));
                truncated += t.truncated;
            }
            if (o.testFile() != null) {
                Tally t = new Tally(o.testFile(), "test");
                test = encodeAll(clean(o, o.testFile(), t), encoder, t, o, pool, lastTurnOnly);
                reports.add(t.report(test.size()));
                truncated += t.truncated;
            }

            long trainTokens = 0;
            long targets = 0;
            int longest = 0;
            for (Example e : train) {
                trainTokens += e.length();
                targets += e.targetTokens();
                longest = Math.max(longest, e.length());
            }
            List<String> notes = new ArrayList<>();
            if (lastTurnOnly.get() > 0) {
                notes.add(lastTurnOnly.get() + " chat rows train on their last assistant turn only: the chat template"
                        + " renders earlier turns differently once later messages follow");
            }
            DataReport report = new DataReport(reports, train.size(), validation.size(), test.size(), trainTokens,
                    targets, longest, truncated, o.maxSeqLength(), notes);
            if (log != null) {
                for (String line : report.lines()) log.println(line);
            }
            if (train.isEmpty()) {
                throw new UserError(o.trainFile() + ": no training examples left (" + reports.get(0).summary() + ")");
            }
            return new PreparedData(List.copyOf(train), List.copyOf(validation), List.copyOf(test), report, template);
        } finally {
            pool.shutdownNow();
        }
    }

    // ------------------------------------------------------------------ reading and cleaning

    static List<String> requiredColumns(DataOptions o) {
        return switch (o.format()) {
            case TEXT -> List.of(o.textColumn());
            case INSTRUCTION -> List.of(o.promptColumn(), o.responseColumn());
            case CHAT -> List.of(o.messagesColumn());
        };
    }

    static List<Candidate> clean(DataOptions o, Path file, Tally tally) {
        List<Row> rows = RowReader.read(file, requiredColumns(o));
        tally.rowsRead = rows.size();
        List<Candidate> out = new ArrayList<>();
        Set<String> seen = new HashSet<>();
        String system = o.systemPrompt() == null ? null : normalize(o.systemPrompt(), o.normalizeWhitespace());
        for (Row row : rows) {
            if (row.isBad()) {
                badRow(o, file, tally, row.line(), row.bad(), row.badLine(), row.detail());
                continue;
            }
            Candidate c;
            try {
                c = candidate(o, row, system);
            } catch (BadValue e) {
                badRow(o, file, tally, row.line(), e.reason, row.line(), e.getMessage());
                continue;
            } catch (Dropped d) {
                tally.drop(d.reason, row.line());
                continue;
            }
            if (o.dropDuplicates() && !seen.add(c.key())) {
                tally.drop(Reason.DUPLICATE, row.line());
                continue;
            }
            out.add(c);
        }
        return out;
    }

    private static void badRow(DataOptions o, Path file, Tally tally, int line, Reason reason, int badLine, String detail) {
        if (o.failOnBadRow()) {
            throw new UserError(file + ":" + badLine + ": " + reason.label(1) + ": " + detail
                    + " (fail_on_bad_row is on; turn it off to skip such rows)");
        }
        tally.drop(reason, badLine);
    }

    private static final class BadValue extends Exception {
        final Reason reason;

        BadValue(Reason reason, String message) {
            super(message, null, false, false);
            this.reason = reason;
        }
    }

    private static final class Dropped extends Exception {
        final Reason reason;

        Dropped(Reason reason) {
            super(reason.name(), null, false, false);
            this.reason = reason;
        }
    }

    private static String textValue(Row row, String column) throws BadValue {
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

    private static Candidate candidate(DataOptions o, Row row, String system) throws BadValue, Dropped {
        boolean ws = o.normalizeWhitespace();
        switch (o.format()) {
            case TEXT: {
                String text = normalize(textValue(row, o.textColumn()), ws);
                if (text.isEmpty()) throw new Dropped(Reason.EMPTY_TEXT);
                return new Candidate(row.line(), text, null, text);
            }
            case INSTRUCTION: {
                String prompt = normalize(textValue(row, o.promptColumn()), ws);
                String response = normalize(textValue(row, o.responseColumn()), ws);
                if (prompt.isEmpty()) throw new Dropped(Reason.EMPTY_PROMPT);
                if (response.isEmpty()) throw new Dropped(Reason.EMPTY_RESPONSE);
                List<ChatTemplate.Message> m = new ArrayList<>();
                if (system != null && !system.isEmpty()) m.add(new ChatTemplate.Message("system", system));
                m.add(new ChatTemplate.Message("user", prompt));
                m.add(new ChatTemplate.Message("assistant", response));
                return new Candidate(row.line(), null, m, prompt + '\u0000' + response);
            }
            default: {
                List<ChatTemplate.Message> m = messages(row, o.messagesColumn(), ws);
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

    private static List<ChatTemplate.Message> messages(Row row, String column, boolean ws) throws BadValue {
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

    /**
     * Line endings to \n, then (with {@code collapse}) trailing blanks removed and runs of spaces/tabs inside a line
     * made one space, keeping each line's indentation (code) and the newlines (lists, code); finally trimmed.
     */
    public static String normalize(String s, boolean collapse) {
        String t = s.indexOf('\r') >= 0 ? s.replace("\r\n", "\n").replace('\r', '\n') : s;
        if (collapse) {
            t = TRAILING_BLANKS.matcher(t).replaceAll("");
            t = INNER_BLANKS.matcher(t).replaceAll(" ");
        }
        return t.strip();
    }

    // ------------------------------------------------------------------ split

    /**
     * Splits candidates into train / validation / test by a seeded shuffle of the distinct rows (identical rows
     * share a key and so a split). Each part keeps file order.
     */
    static List<List<Candidate>> split(List<Candidate> all, double validation, double test, long seed, Path file) {
        Map<String, List<Integer>> groups = new LinkedHashMap<>();
        for (int i = 0; i < all.size(); i++) {
            groups.computeIfAbsent(all.get(i).key(), k -> new ArrayList<>()).add(i);
        }
        List<List<Integer>> order = new ArrayList<>(groups.values());
        Collections.shuffle(order, new Random(seed));
        int n = all.size();
        int nTest = holdOut(n, test);
        int nVal = holdOut(n, validation);
        if (n > 0 && nTest + nVal >= n) {
            throw new UserError(file + ": only " + n + " usable rows; validation_split " + validation + " and test_split "
                    + test + " would leave nothing to train on");
        }
        int[] where = new int[n]; // 0 train, 1 validation, 2 test
        int taken = 0;
        for (List<Integer> g : order) {
            int part = taken < nTest ? 2 : taken < nTest + nVal ? 1 : 0;
            for (int i : g) where[i] = part;
            taken += g.size();
        }
        List<List<Candidate>> parts = List.of(new ArrayList<>(), new ArrayList<>(), new ArrayList<>());
        for (int i = 0; i < n; i++) parts.get(where[i]).add(all.get(i));
        return parts;
    }

    private static int holdOut(int n, double fraction) {
        if (fraction <= 0 || n == 0) return 0;
        return (int) Math.max(1, Math.round(n * fraction));
    }

    // ------------------------------------------------------------------ tokenisation

    private static List<Example> encodeAll(List<Candidate> cands, Encoder encoder, Tally tally, DataOptions o,
                                           ExecutorService pool, AtomicInteger lastTurnOnly) {
        int chunk = 64;
        List<Future<Encoded[]>> futures = new ArrayList<>();
        for (int from = 0; from < cands.size(); from += chunk) {
            List<Candidate> part = cands.subList(from, Math.min(cands.size(), from + chunk));
            futures.add(pool.submit(() -> {
                Encoded[] out = new Encoded[part.size()];
                for (int i = 0; i < out.length; i++) out[i] = encoder.encode(part.get(i));
                return out;
            }));
        }
        List<Example> examples = new ArrayList<>();
        int k = 0;
        for (Future<Encoded[]> f : futures) {
            Encoded[] results;
            try {
                results = f.get();
            } catch (InterruptedException e) {
                Thread.currentThread().interrupt();
                throw new IllegalStateException("interrupted while tokenising " + tally.file, e);
            } catch (ExecutionException e) {
                if (e.getCause() instanceof RuntimeException re) throw re;
                throw new IllegalStateException(e.getCause());
            }
            for (Encoded r : results) {
                Candidate c = cands.get(k++);
                if (r.templateError() != null) {
                    badRow(o, tally.file, tally, c.line(), Reason.TEMPLATE_ERROR, c.line(), r.templateError());
                } else if (r.dropped() != null) {
                    tally.drop(r.dropped(), c.line());
                } else {
                    if (r.truncated()) tally.truncated++;
                    if (r.lastTurnOnly()) lastTurnOnly.incrementAndGet();
                    examples.add(r.example());
                }
            }
        }
        return examples;
    }

    /** Renders and tokenises one candidate. Thread-safe. */
    static final class Encoder {
        private final DataOptions o;
        private final HfTokenizer tok;
        private final ChatTemplate template;
        private final Set<Long> eosIds;
        private final long eos;

        Encoder(DataOptions o, HfTokenizer tok, ChatTemplate template) {
            this.o = o;
            this.tok = tok;
            this.template = template;
            this.eosIds = tok.eosTokenIds();
            this.eos = eosIds.isEmpty() ? -1 : eosIds.iterator().next();
        }

        Encoded encode(Candidate c) {
            if (c.text() != null) {
                long[] ids = tok.encode(c.text(), true).ids();
                if (eos >= 0 && (ids.length == 0 || ids[ids.length - 1] != eos)) {
                    ids = Arrays.copyOf(ids, ids.length + 1);
                    ids[ids.length - 1] = eos;
                }
                return finish(ids, ids.clone(), 0);
            }
            List<String[]> segments; // {text, "p" | "r"}
            boolean lastOnly = false;
            try {
                segments = incremental(c.messages());
                if (segments == null) {
                    segments = lastTurn(c.messages());
                    lastOnly = true;
                }
            } catch (UserError e) {
                return new Encoded(null, null, false, false, e.getMessage());
            }
            List<long[]> idParts = new ArrayList<>();
            List<Boolean> trained = new ArrayList<>();
            int total = 0;
            int promptLen = -1;
            for (String[] s : segments) {
                if (s[0].isEmpty()) continue;
                long[] ids = tok.encode(s[0], false).ids();
                boolean isResponse = s[1].equals("r");
                if (isResponse && promptLen < 0) promptLen = total;
                idParts.add(ids);
                trained.add(isResponse || o.trainOnInputs());
                total += ids.length;
            }
            long[] lastResponse = null;
            for (int i = segments.size() - 1; i >= 0; i--) {
                if (segments.get(i)[1].equals("r") && !segments.get(i)[0].isEmpty()) {
                    lastResponse = tok.encode(segments.get(i)[0], false).ids();
                    break;
                }
            }
            boolean needEos = eos >= 0 && (lastResponse == null
                    || Arrays.stream(lastResponse).noneMatch(eosIds::contains));
            long[] ids = new long[total + (needEos ? 1 : 0)];
            long[] labels = new long[ids.length];
            int p = 0;
            for (int i = 0; i < idParts.size(); i++) {
                long[] part = idParts.get(i);
                System.arraycopy(part, 0, ids, p, part.length);
                if (trained.get(i)) {
                    System.arraycopy(part, 0, labels, p, part.length);
                } else {
                    Arrays.fill(labels, p, p + part.length, dev.jtune.util.Labels.IGNORE_INDEX);
                }
                p += part.length;
            }
            if (needEos) {
                ids[p] = eos;
                labels[p] = eos;
            }
            Encoded e = finish(ids, labels, Math.max(0, promptLen));
            return lastOnly && e.example() != null ? new Encoded(e.example(), null, e.truncated(), true, null) : e;
        }

        private Encoded finish(long[] ids, long[] labels, int promptLen) {
            int max = o.maxSeqLength();
            if (ids.length <= max) {
                return new Encoded(new Example(ids, labels), null, false, false, null);
            }
            if (promptLen >= max) {
                return new Encoded(null, Reason.PROMPT_TOO_LONG, false, false, null);
            }
            if (!o.truncateLongRows()) {
                return new Encoded(null, Reason.TOO_LONG, false, false, null);
            }
            return new Encoded(new Example(Arrays.copyOf(ids, max), Arrays.copyOf(labels, max)), null, true, false, null);
        }

        /**
         * Segments by rendering incrementally: for each assistant turn i, the render of messages[0, i) with the
         * generation prompt must extend the render through turn i-1, and the render through turn i must extend it.
         * Returns null when the template is not prefix-consistent (e.g. Qwen3 drops earlier reasoning).
         */
        private List<String[]> incremental(List<ChatTemplate.Message> msgs) {
            int last = lastAssistant(msgs);
            List<String[]> out = new ArrayList<>();
            String prev = "";
            for (int i = 0; i <= last; i++) {
                if (!msgs.get(i).role().equals("assistant")) continue;
                String prompt = template.render(msgs.subList(0, i), true);
                String full = template.render(msgs.subList(0, i + 1), false);
                if (!prompt.startsWith(prev) || !full.startsWith(prompt)) return null;
                out.add(new String[] {prompt.substring(prev.length()), "p"});
                out.add(new String[] {full.substring(prompt.length()), "r"});
                prev = full;
            }
            return out;
        }

        private List<String[]> lastTurn(List<ChatTemplate.Message> msgs) {
            int last = lastAssistant(msgs);
            String prompt = template.render(msgs.subList(0, last), true);
            String full = template.render(msgs.subList(0, last + 1), false);
            if (!full.startsWith(prompt)) {
                throw new UserError(template.isDefault() ? "default chat template" : "chat template"
                        + ": the render with add_generation_prompt is not a prefix of the render with the answer;"
                        + " cannot tell prompt from response");
            }
            List<String[]> out = new ArrayList<>();
            out.add(new String[] {prompt, "p"});
            out.add(new String[] {full.substring(prompt.length()), "r"});
            return out;
        }

        private static int lastAssistant(List<ChatTemplate.Message> msgs) {
            for (int i = msgs.size() - 1; i >= 0; i--) {
                if (msgs.get(i).role().equals("assistant")) return i;
            }
            throw new IllegalStateException("no assistant message"); // filtered out during cleaning
        }
    }
}
