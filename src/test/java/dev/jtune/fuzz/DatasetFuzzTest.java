package dev.jtune.fuzz;

import com.code_intelligence.jazzer.junit.FuzzTest;
import dev.jtune.config.DataSection;
import dev.jtune.data.DataReport;
import dev.jtune.data.DatasetPreparer;
import dev.jtune.data.PreparedData;
import dev.jtune.tokenizer.HfTokenizer;
import dev.jtune.util.UserError;

import java.io.IOException;
import java.io.OutputStream;
import java.io.PrintStream;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.regex.Matcher;
import java.util.regex.Pattern;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * The CSV and JSON-lines readers behind {@link DatasetPreparer#prepare}, on arbitrary bytes: only a {@link UserError}
 * may escape. Each input is prepared twice, format instruction with columns question/answer and the tiny
 * tokenizer: once as a run would by default (skip bad rows, truncate long ones, 10% validation), where the summary
 * must add up (rows read = kept + dropped, kept = train + validation + test examples); once strict (fail on a bad
 * row, drop long rows, no cleaning, a system prompt, no split). Seeds:
 * {@code src/test/resources/dev/jtune/fuzz/DatasetFuzzTestInputs/{csv,jsonl}/}. See README.md beside this class.
 */
class DatasetFuzzTest {

    private static final Path TOKENIZER = Path.of("src/test/resources/tokenizers/torchtune-tiny");
    private static final PrintStream NOWHERE = new PrintStream(OutputStream.nullOutputStream());
    /** The train file's line in the summary, also quoted by the "no training examples left" error. */
    private static final Pattern SUMMARY = Pattern.compile("(\\d+) rows? read, (\\d+) kept, (\\d+) dropped");

    private static HfTokenizer tokenizer;
    private static Path dir;

    private static synchronized HfTokenizer tokenizer() {
        if (tokenizer == null) tokenizer = HfTokenizer.load(TOKENIZER);
        return tokenizer;
    }

    private static synchronized Path dir() throws IOException {
        if (dir == null) {
            dir = Files.createTempDirectory("jtune-fuzz-data");
            dir.toFile().deleteOnExit();
        }
        return dir;
    }

    @FuzzTest(maxDuration = "5m")
    void csv(byte[] bytes) throws IOException {
        prepareBoth(bytes, "train.csv");
    }

    @FuzzTest(maxDuration = "5m")
    void jsonl(byte[] bytes) throws IOException {
        prepareBoth(bytes, "train.jsonl");
    }

    private static void prepareBoth(byte[] bytes, String name) throws IOException {
        Path file = dir().resolve(name);
        Files.write(file, bytes);
        skipMode(file);
        strictMode(file);
    }

    private static void skipMode(Path file) {
        DataSection o = DataSection.builder(file).format(DataSection.Format.INSTRUCTION)
                .promptColumn("question").responseColumn("answer").maxSeqLength(32).build();
        PreparedData data;
        try {
            data = DatasetPreparer.prepare(o, 42, tokenizer(), NOWHERE, 1);
        } catch (UserError e) {
            Matcher m = SUMMARY.matcher(e.getMessage());
            if (e.getMessage().contains("no training examples left") && m.find()) {
                int read = Integer.parseInt(m.group(1)), kept = Integer.parseInt(m.group(2));
                assertEquals(read, kept + Integer.parseInt(m.group(3)), e.getMessage());
            }
            return;
        }
        DataReport r = data.report();
        DataReport.FileReport f = r.file("train");
        assertEquals(f.rowsRead(), f.kept() + f.droppedTotal(), f.summary());
        assertEquals(f.kept(), r.trainExamples() + r.validationExamples() + r.testExamples(), f.summary());
        assertEquals(data.train().size(), r.trainExamples());
        assertTrue(r.trainExamples() > 0, f.summary());
        data.train().forEach(x -> assertTrue(x.length() <= o.maxSeqLength(), "longer than max_seq_length"));
    }

    private static void strictMode(Path file) {
        DataSection o = DataSection.builder(file).format(DataSection.Format.INSTRUCTION)
                .promptColumn("question").responseColumn("answer").systemPrompt("Answer briefly.")
                .validationSplit(0).maxSeqLength(64).trainOnInputs(true).onBadRow(DataSection.OnBadRow.FAIL)
                .onLongRow(DataSection.OnLongRow.DROP).normalizeWhitespace(false).dropDuplicates(false).build();
        try {
            DatasetPreparer.prepare(o, 7, tokenizer(), NOWHERE, 1);
        } catch (UserError expected) {
            // refused with a message: fine
        }
    }
}
