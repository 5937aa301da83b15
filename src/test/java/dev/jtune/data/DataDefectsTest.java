package dev.jtune.data;

import static dev.jtune.data.TestData.instruction;
import static dev.jtune.data.TestData.prepare;
import static dev.jtune.data.TestData.write;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.jtune.config.DataSection;
import dev.jtune.util.UserError;
import java.io.ByteArrayOutputStream;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/** Each kind of bad row, skipped (exact summary) and with on_bad_row: fail (file:line message). */
class DataDefectsTest {
    @TempDir
    Path dir;

    static final String HEADER = "prompt,response\n";
    static final String GOOD = "What is a mean?,The average of the values.\n"
            + "\"What is a median, exactly?\",\"The middle value; with \"\"ties\"\" too.\"\n"
            + "What is SQL?,\"A query language.\nIt has SELECT.\"\n"; // lines 2, 3, 4-5

    private String summary(Path file) {
        return prepare(instruction(file, 128), TestData.gpt2()).lines().get(0);
    }

    private UserError fail(Path file) {
        DataSection o = instruction(file, 128).toBuilder().onBadRow(DataSection.OnBadRow.FAIL).build();
        return assertThrows(UserError.class, () -> DatasetPreparer.prepare(o, TestData.SEED, TestData.gpt2(), null));
    }

    @Test
    void badQuoting() throws Exception {
        Path f = write(dir, "q.csv", HEADER + GOOD + "\"What is \"variance\"?,Spread around the mean.\n"
                + "What is a \"mode\"?,The most frequent value.\n" + "Is this fine?,Yes.\n");
        assertEquals("data: 6 rows read, 4 kept, 2 dropped (2 bad quoting at line 6)", summary(f));
        UserError e = fail(f);
        assertTrue(e.getMessage().startsWith(f + ":6: bad quoting: text after the closing quote"), e.getMessage());
    }

    @Test
    void unclosedQuoteSpoilsOnlyItsRecord() throws Exception {
        Path f = write(dir, "q.csv", HEADER + GOOD + "\"Never closed,answer\n" + "Next row?,Still read.\n");
        assertEquals("data: 5 rows read, 4 kept, 1 dropped (1 bad quoting at line 6)", summary(f));
    }

    @Test
    void invalidUtf8() throws Exception {
        Path f = dir.resolve("u.csv");
        ByteArrayOutputStream b = new ByteArrayOutputStream();
        b.writeBytes((HEADER + GOOD).getBytes(StandardCharsets.UTF_8));
        b.writeBytes("Caf".getBytes(StandardCharsets.UTF_8));
        b.writeBytes(new byte[] {(byte) 0xC3, (byte) 0x28});
        b.writeBytes(",bad bytes\nOK?,Yes.\n".getBytes(StandardCharsets.UTF_8));
        Files.write(f, b.toByteArray());
        assertEquals("data: 5 rows read, 4 kept, 1 dropped (1 invalid UTF-8 at line 6)", summary(f));
        assertTrue(fail(f).getMessage().startsWith(f + ":6: invalid UTF-8: invalid UTF-8 byte sequence at byte 4"),
                fail(f).getMessage());
    }

    /**
     * Found by DatasetFuzzTest: a lone \r inside a row made the strict scanner (one field "a\rb") and Jackson's
     * CsvParser (a record ends at the \r) disagree, and reading failed with an IllegalStateException. A lone \r now
     * ends a line, as in Python's csv module and pandas: old Mac files read, and a stray \r splits its row.
     */
    @Test
    void loneCarriageReturnEndsALine() throws Exception {
        Path f = write(dir, "cr.csv", "prompt,response\rOld Mac line ends?,Read.\rStray CR?,Splits\rthe row.\r\n"
                + "\"Quoted\rCR?\",\"Becomes a newline.\"\r\n");
        TestData.Run run = prepare(instruction(f, 128), TestData.gpt2());
        assertEquals("data: 4 rows read, 3 kept, 1 dropped (1 wrong column count at line 4)", run.lines().get(0));
        UserError e = fail(f);
        assertTrue(e.getMessage().startsWith(f + ":4: wrong column count: 1 fields, the header has 2"), e.getMessage());
    }

    @Test
    void wrongColumnCount() throws Exception {
        Path f = write(dir, "c.csv", HEADER + GOOD + "One,two,three\nOnly one\nFine?,Yes.\n");
        assertEquals("data: 6 rows read, 4 kept, 2 dropped (2 wrong column count at line 6)", summary(f));
        assertTrue(fail(f).getMessage().startsWith(f + ":6: wrong column count: 3 fields, the header has 2"));
    }

    @Test
    void badJsonLine() throws Exception {
        Path f = write(dir, "j.jsonl", "{\"prompt\": \"a?\", \"response\": \"b.\"}\n"
                + "{\"prompt\": \"c?\", \"response\": \n"
                + "\n"
                + "[1, 2]\n"
                + "{\"prompt\": \"d?\", \"response\": \"e.\"}\n");
        assertEquals("data: 4 rows read, 2 kept, 2 dropped (2 bad JSON at line 2)", summary(f));
        assertTrue(fail(f).getMessage().startsWith(f + ":2: bad JSON: "), fail(f).getMessage());
    }

    @Test
    void missingJsonValue() throws Exception {
        Path f = write(dir, "m.jsonl", "{\"prompt\": \"a?\", \"response\": \"b.\"}\n"
                + "{\"prompt\": \"c?\"}\n"
                + "{\"prompt\": \"d?\", \"response\": null}\n");
        assertEquals("data: 3 rows read, 1 kept, 2 dropped (2 missing values at line 2)", summary(f));
        assertTrue(fail(f).getMessage().startsWith(f + ":2: missing value: no value for column \"response\""));
    }

    @Test
    void missingColumnInHeaderIsAlwaysAnError() throws Exception {
        Path f = write(dir, "h.csv", "question,answer\nq,a\n");
        UserError e = assertThrows(UserError.class,
                () -> DatasetPreparer.prepare(instruction(f, 64), TestData.SEED, TestData.gpt2(), null));
        assertEquals(f + ": no column \"prompt\" in the header (line 1); it has [question, answer]", e.getMessage());
        Path j = write(dir, "h.jsonl", "{\"question\": \"q\", \"response\": \"a\"}\n");
        UserError e2 = assertThrows(UserError.class,
                () -> DatasetPreparer.prepare(instruction(j, 64), TestData.SEED, TestData.gpt2(), null));
        assertEquals(j + ": no object has the key \"prompt\"; the first one has [question, response]", e2.getMessage());
    }

    @Test
    void emptyResponsesAndDuplicatesAreCleaningNotFailures() throws Exception {
        Path f = write(dir, "e.csv", HEADER + GOOD + "Empty?,\nEmpty too?,\"   \"\n"
                + "What is a mean?,The average of the values.\n" + "What  is a   mean?,The average of the values.  \n");
        assertEquals("data: 7 rows read, 3 kept, 4 dropped (2 duplicates, 2 empty responses)", summary(f));
        // on_bad_row: fail is about unreadable rows only
        DataSection o = instruction(f, 128).toBuilder().onBadRow(DataSection.OnBadRow.FAIL).build();
        assertEquals(3, DatasetPreparer.prepare(o, TestData.SEED, TestData.gpt2(), null).train().size());
    }

    @Test
    void everythingAtOnceInSummaryOrder() throws Exception {
        Path f = write(dir, "all.csv", HEADER + GOOD
                + "What is a mean?,The average of the values.\n"  // 6 duplicate
                + "No answer?,\n"                                  // 7 empty
                + "x,\"y\"z\n"                                     // 8 bad quoting
                + "a,b,c\n"                                        // 9 column count
                + "What is a mean?,The average of the values.\n"); // 10 duplicate
        assertEquals("data: 8 rows read, 3 kept, 5 dropped (2 duplicates, 1 empty response, 1 bad quoting at line 8,"
                + " 1 wrong column count at line 9)", summary(f));
    }

    @Test
    void unknownExtension() throws Exception {
        Path f = write(dir, "data.txt", "x");
        UserError e = assertThrows(UserError.class,
                () -> DatasetPreparer.prepare(instruction(f, 64), TestData.SEED, TestData.gpt2(), null));
        assertTrue(e.getMessage().startsWith(f + ": unknown data file type"), e.getMessage());
    }
}
