package dev.jtune.metrics;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ObjectNode;
import dev.jtune.io.WriteError;
import dev.jtune.util.UserError;
import java.io.BufferedWriter;
import java.io.IOException;
import java.io.RandomAccessFile;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;

/**
 * {@code output_dir/metrics.jsonl}: one JSON object per line, with the key names of Hugging Face
 * Trainer's {@code log_history} ({@code loss}, {@code learning_rate}, {@code grad_norm},
 * {@code eval_loss}, ...), so the same plotting scripts work on both.
 *
 * <p>Every line is flushed as soon as it is written: a crash loses nothing that was logged. JSON has
 * no NaN or Infinity, so a non-finite value is written as {@code null} and the line gets
 * {@code "nonfinite": true}; every line stays valid JSON.
 *
 * <p>A file that cannot be written (a full disk, a missing permission) is a {@link UserError} naming the file and
 * the operating system's reason.
 *
 * <p>Thread-safe.
 */
public final class MetricsLog implements AutoCloseable {
    private static final ObjectMapper MAPPER = new ObjectMapper();

    private final Path file;
    private final BufferedWriter out;

    /**
     * Opens (creating parent directories) the log. {@code append=true} keeps what a previous run
     * wrote, for resumed runs; if that run died in the middle of a line, the broken line is ended
     * first so the new lines stay parseable. {@code append=false} starts an empty file.
     */
    public MetricsLog(Path file, boolean append) {
        this.file = file;
        try {
            Path parent = file.toAbsolutePath().getParent();
            if (parent != null) {
                Files.createDirectories(parent);
            }
            boolean needsNewline = append && Files.exists(file) && !endsWithNewline(file);
            out = append
                    ? Files.newBufferedWriter(file, StandardCharsets.UTF_8, StandardOpenOption.CREATE, StandardOpenOption.APPEND)
                    : Files.newBufferedWriter(file, StandardCharsets.UTF_8, StandardOpenOption.CREATE,
                            StandardOpenOption.TRUNCATE_EXISTING, StandardOpenOption.WRITE);
            if (needsNewline) {
                out.write('\n');
                out.flush();
            }
        } catch (IOException e) {
            throw WriteError.writing(file, "the metrics log", e);
        }
    }

    public Path file() {
        return file;
    }

    /** {@code {"step", "epoch", "loss", "learning_rate", "grad_norm", "tokens_per_second"}}. */
    public void train(TrainPoint p) {
        train(p, Map.of());
    }

    /** As above, followed by the method's own metrics under their names (preference tuning: TRL's {@code rewards/chosen}, ...). */
    public void train(TrainPoint p, Map<String, Double> extra) {
        ObjectNode o = MAPPER.createObjectNode();
        o.put("step", p.step());
        boolean ok = put(o, "epoch", p.epoch());
        ok &= put(o, "loss", p.loss());
        ok &= put(o, "learning_rate", p.learningRate());
        ok &= put(o, "grad_norm", p.gradNorm());
        ok &= put(o, "tokens_per_second", p.tokensPerSecond());
        for (Map.Entry<String, Double> e : extra.entrySet()) ok &= put(o, e.getKey(), e.getValue());
        write(o, ok);
    }

    /** {@code {"step", "epoch", "eval_loss", "eval_perplexity"}}. */
    public void eval(EvalPoint p) {
        eval(p, Map.of());
    }

    /** As above, followed by the method's own metrics, each prefixed {@code eval_} ({@code eval_rewards/accuracies}). */
    public void eval(EvalPoint p, Map<String, Double> extra) {
        eval(p, extra, true);
    }

    /**
     * As above; without {@code eval_perplexity} when {@code perplexity} is false (a preference method, whose loss is not
     * a token cross-entropy).
     */
    public void eval(EvalPoint p, Map<String, Double> extra, boolean perplexity) {
        ObjectNode o = MAPPER.createObjectNode();
        o.put("step", p.step());
        boolean ok = put(o, "epoch", p.epoch());
        ok &= put(o, "eval_loss", p.loss());
        if (perplexity) ok &= put(o, "eval_perplexity", p.perplexity());
        for (Map.Entry<String, Double> e : extra.entrySet()) ok &= put(o, "eval_" + e.getKey(), e.getValue());
        write(o, ok);
    }

    /**
     * {@code {"step", "test_loss", "test_perplexity"}}: the final evaluation on the test split; without
     * {@code test_perplexity} when {@code perplexity} is null (a preference method).
     */
    public void test(double loss, Double perplexity, long step) {
        ObjectNode o = MAPPER.createObjectNode();
        o.put("step", step);
        boolean ok = put(o, "test_loss", loss);
        if (perplexity != null) ok &= put(o, "test_perplexity", perplexity);
        write(o, ok);
    }

    /**
     * Scores of generated answers: {@code {"step", "<prefix>_exact_match", ..., "<prefix>_generation_seconds",
     * "<prefix>_generation_tokens_per_second"}} with prefix {@code base_test}, {@code base_eval}, {@code eval} or
     * {@code test}; {@code values} maps the names without the prefix. {@link #read} skips these lines.
     */
    public void answers(String prefix, long step, Map<String, Double> values) {
        ObjectNode o = MAPPER.createObjectNode();
        o.put("step", step);
        boolean ok = true;
        for (Map.Entry<String, Double> e : values.entrySet()) ok &= put(o, prefix + "_" + e.getKey(), e.getValue());
        write(o, ok);
    }

    @Override
    public synchronized void close() {
        try {
            out.close();
        } catch (IOException e) {
            throw WriteError.writing(file, "the metrics log", e);
        }
    }

    /** Puts a number, or null when it is NaN or infinite; returns whether it was finite. */
    private static boolean put(ObjectNode o, String key, double value) {
        if (Double.isFinite(value)) {
            o.put(key, value);
            return true;
        }
        o.putNull(key);
        return false;
    }

    private synchronized void write(ObjectNode o, boolean allFinite) {
        if (!allFinite) {
            o.put("nonfinite", true);
        }
        try {
            out.write(MAPPER.writeValueAsString(o));
            out.write('\n');
            out.flush();
        } catch (IOException e) {
            throw WriteError.writing(file, "the metrics log", e);
        }
    }

    private static boolean endsWithNewline(Path file) throws IOException {
        try (RandomAccessFile raf = new RandomAccessFile(file.toFile(), "r")) {
            long n = raf.length();
            if (n == 0) {
                return true;
            }
            raf.seek(n - 1);
            return raf.read() == '\n';
        }
    }

    /**
     * What a metrics log holds, in file order; non-finite values read back as NaN. {@code malformedLines} counts
     * the lines that were skipped because they are not a JSON object with a {@code step} (a line cut short by a
     * crash, an edit by hand); {@code firstMalformedLine} is the 1-based line number of the first, 0 when none.
     */
    public record History(List<TrainPoint> train, List<EvalPoint> eval, Double testLoss, Double testPerplexity,
                          int malformedLines, int firstMalformedLine) {

        /** For the user: {@code "metrics.jsonl: 2 malformed lines skipped (first at line 17)"}, or null when none were. */
        public String malformedNote(Path file) {
            if (malformedLines == 0) return null;
            return file + ": " + malformedLines + " malformed line" + (malformedLines == 1 ? "" : "s")
                    + " skipped (first at line " + firstMalformedLine + ")";
        }
    }

    /**
     * Reads a log back, for example to draw the whole curve of a resumed run. Lines that are not JSON
     * objects with a {@code step} (a line cut short by a crash) are skipped and counted
     * ({@link History#malformedLines}); objects of a kind this version does not know are skipped silently.
     */
    public static History read(Path file) {
        List<TrainPoint> train = new ArrayList<>();
        List<EvalPoint> eval = new ArrayList<>();
        Double testLoss = null;
        Double testPerplexity = null;
        List<String> lines;
        try {
            lines = Files.readAllLines(file, StandardCharsets.UTF_8);
        } catch (IOException e) {
            throw new UserError(file + ": cannot read the metrics log: " + WriteError.reason(e), e);
        }
        int malformed = 0;
        int firstMalformed = 0;
        for (int i = 0; i < lines.size(); i++) {
            String line = lines.get(i);
            if (line.isBlank()) {
                continue;
            }
            JsonNode o;
            try {
                o = MAPPER.readTree(line);
            } catch (IOException e) {
                o = null;
            }
            if (o == null || !o.isObject() || !o.has("step")) {
                malformed++;
                if (firstMalformed == 0) {
                    firstMalformed = i + 1;
                }
                continue;
            }
            long step = o.get("step").asLong();
            if (o.has("loss")) {
                train.add(new TrainPoint(step, num(o, "epoch"), num(o, "loss"), num(o, "learning_rate"), num(o, "grad_norm"),
                        num(o, "tokens_per_second")));
            } else if (o.has("eval_loss")) {
                eval.add(new EvalPoint(step, num(o, "epoch"), num(o, "eval_loss"), num(o, "eval_perplexity")));
            } else if (o.has("test_loss")) {
                testLoss = num(o, "test_loss");
                testPerplexity = o.has("test_perplexity") ? num(o, "test_perplexity") : null;   // none for a preference run
            }
        }
        return new History(List.copyOf(train), List.copyOf(eval), testLoss, testPerplexity, malformed, firstMalformed);
    }

    /**
     * Step → {@code key} of each evaluation line of a metrics log ({@code eval_loss}, {@code eval_rewards/accuracies}, ...):
     * the lines that have it, in file order; a later line for the same step replaces an earlier one.
     */
    public static Map<Long, Double> evalSeries(Path file, String key) {
        Map<Long, Double> out = new java.util.LinkedHashMap<>();
        try {
            for (String line : Files.readAllLines(file, StandardCharsets.UTF_8)) {
                if (line.isBlank()) continue;
                JsonNode o;
                try {
                    o = MAPPER.readTree(line);
                } catch (IOException e) {
                    continue;   // read() reports malformed lines
                }
                if (o != null && o.isObject() && o.has("step") && o.has("eval_loss") && o.has(key)) {
                    out.put(o.get("step").asLong(), num(o, key));
                }
            }
        } catch (IOException e) {
            throw new UserError(file + ": cannot read the metrics log: " + WriteError.reason(e), e);
        }
        return out;
    }

    private static double num(JsonNode o, String key) {
        JsonNode v = o.get(key);
        return v != null && v.isNumber() ? v.asDouble() : Double.NaN;
    }
}
