package dev.jtune.data;

import com.fasterxml.jackson.databind.JsonNode;
import dev.jtune.config.DataSection;
import dev.jtune.util.UserError;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.io.IOException;
import java.io.OutputStream;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import java.util.zip.GZIPOutputStream;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * Every reader against real files: Parquet written by DuckDB with three codecs, an Arrow IPC file and a
 * datasets.save_to_disk directory of Arrow streams written by apache-arrow (src/test/node/data-fixtures/gen.mjs
 * made them), JSON arrays, and gzip of each. Each must give the same rows as the JSON-lines text of the same chats.
 */
class DataFormatsTest {

    /** The chats gen.mjs wrote, as JSON lines: the reference every reader must reproduce. */
    static final String CHATS_JSONL = """
            {"id":0,"messages":[{"role":"system","content":"You are terse."},{"role":"user","content":"Capital of France?"},{"role":"assistant","content":"Paris."},{"role":"user","content":"And of Italy?"},{"role":"assistant","content":"Rome."}]}
            {"id":1,"messages":[{"role":"user","content":"Two plus two?"},{"role":"assistant","content":"Four."}]}
            {"id":2,"messages":[{"role":"user","content":"Colour of the sky?"},{"role":"assistant","content":"Blue, by day."}]}
            """;

    @TempDir
    Path dir;

    private static Path fixture(String name) {
        return TestData.resource("/data-formats/" + name);
    }

    private List<JsonNode> reference() throws IOException {
        Path f = TestData.write(dir, "reference.jsonl", CHATS_JSONL);
        return messagesOf(RowReader.read(f, List.of("messages")));
    }

    private static List<JsonNode> messagesOf(List<RowReader.Row> rows) {
        return rows.stream().map(r -> {
            assertTrue(!r.isBad(), () -> "bad row " + r);
            return r.values().get("messages");
        }).toList();
    }

    private Path gzip(Path src) throws IOException {
        Path out = dir.resolve(src.getFileName() + ".gz");
        try (OutputStream o = new GZIPOutputStream(Files.newOutputStream(out))) {
            Files.copy(src, o);
        }
        return out;
    }

    @Test
    void parquetOfEveryCodecReadsTheNestedMessages() throws IOException {
        List<JsonNode> expected = reference();
        for (String codec : List.of("snappy", "zstd", "gzip")) {
            List<RowReader.Row> rows = RowReader.read(fixture("chat." + codec + ".parquet"), List.of("messages"));
            assertEquals(expected, messagesOf(rows), codec);
            assertEquals(List.of(1, 2, 3), rows.stream().map(RowReader.Row::line).toList(), "row numbers");
            assertEquals(2, rows.get(2).values().get("id").asInt());
        }
    }

    @Test
    void arrowFileAndSaveToDiskDirectoryReadTheSameRows() throws IOException {
        List<JsonNode> expected = reference();
        assertEquals(expected, messagesOf(RowReader.read(fixture("chat.arrow"), List.of("messages"))));
        List<RowReader.Row> fromDir = RowReader.read(fixture("chat-save-to-disk"), List.of("messages"));
        assertEquals(expected, messagesOf(fromDir));
        assertEquals(List.of(1, 2, 3), fromDir.stream().map(RowReader.Row::line).toList(), "numbered across shards");
    }

    @Test
    void gzippedFilesOfEveryKindReadAsTheirPlainSelves() throws IOException {
        List<JsonNode> expected = reference();
        assertEquals(expected, messagesOf(RowReader.read(gzip(dir.resolve("reference.jsonl")), List.of("messages"))));
        assertEquals(expected, messagesOf(RowReader.read(gzip(fixture("chat.zstd.parquet")), List.of("messages"))));
        assertEquals(expected, messagesOf(RowReader.read(gzip(fixture("chat.arrow")), List.of("messages"))));
        Path csv = TestData.write(dir, "x.csv", "prompt,response\n\"a, b\",c\n");
        List<RowReader.Row> rows = RowReader.read(gzip(csv), List.of("prompt", "response"));
        assertEquals("a, b", rows.get(0).values().get("prompt").asText());
    }

    @Test
    void jsonArrayRowsCarryTheLineTheyStartOn() throws IOException {
        Path f = TestData.write(dir, "a.json", """
                [
                  {"prompt": "p1", "response": "r1"},
                  {"prompt": "p2",
                   "response": "r2"},
                  7,
                  {"prompt": "p3", "response": "r3"}
                ]
                """);
        List<RowReader.Row> rows = RowReader.read(f, List.of("prompt", "response"));
        assertEquals(List.of(2, 3, 5, 6), rows.stream().map(RowReader.Row::line).toList());
        assertEquals(DataReport.Reason.BAD_JSON, rows.get(2).bad());
        assertEquals("r2", rows.get(1).values().get("response").asText());

        Path broken = TestData.write(dir, "b.json", "[\n{\"prompt\": \"p\", \"response\": \"r\"},\n{\"prompt\": oops}\n]\n");
        UserError e = assertThrows(UserError.class, () -> RowReader.read(broken, List.of("prompt")));
        assertTrue(e.getMessage().startsWith(broken + ":3: bad JSON"), e.getMessage());
    }

    @Test
    void truncatedParquetNamesTheFile() throws IOException {
        byte[] whole = Files.readAllBytes(fixture("chat.snappy.parquet"));
        Path cut = dir.resolve("cut.parquet");
        Files.write(cut, java.util.Arrays.copyOf(whole, whole.length / 2));
        UserError e = assertThrows(UserError.class, () -> RowReader.read(cut, List.of("messages")));
        assertTrue(e.getMessage().startsWith(cut + ": not a readable Parquet file"), e.getMessage());
    }

    @Test
    void wrongColumnTypeNamesFileColumnAndRow() {
        Path f = fixture("wrong-type.parquet");
        UserError e = assertThrows(UserError.class, () -> RowReader.read(f, List.of("messages")));
        assertEquals(f + ": column \"messages\" is INTEGER (row 1 holds 7); expected text, or for chat data a list of"
                + " {role, content}", e.getMessage());
    }

    @Test
    void missingColumnNamesTheColumnsThereAre() {
        UserError e = assertThrows(UserError.class, () -> RowReader.read(fixture("chat.arrow"), List.of("conversations")));
        assertTrue(e.getMessage().contains("no column \"conversations\"; it has [id: Int(64, true), messages: List]"),
                e.getMessage());
        UserError p = assertThrows(UserError.class, () -> RowReader.read(fixture("alpaca.parquet"), List.of("messages")));
        assertTrue(p.getMessage().contains("no column \"messages\"; it has [instruction: VARCHAR, input: VARCHAR,"
                + " output: VARCHAR]"), p.getMessage());
    }

    @Test
    void parquetChatPreparesLikeItsJsonLines() throws IOException {
        Path ref = TestData.write(dir, "reference.jsonl", CHATS_JSONL);
        DataSection fromJsonl = TestData.whole(ref, DataSection.Format.CHAT, 256);
        DataSection fromParquet = fromJsonl.toBuilder().trainFile(fixture("chat.gzip.parquet")).build();
        PreparedData a = TestData.prepare(fromJsonl, TestData.gpt2()).data();
        PreparedData b = TestData.prepare(fromParquet, TestData.gpt2()).data();
        assertEquals(3, b.train().size());
        assertEquals(a.train(), b.train());
    }
}
