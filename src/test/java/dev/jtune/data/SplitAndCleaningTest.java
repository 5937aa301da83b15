package dev.jtune.data;

import static dev.jtune.data.TestData.prepare;
import static dev.jtune.data.TestData.write;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNotEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.fasterxml.jackson.databind.MappingIterator;
import dev.jtune.config.DataSection;
import com.fasterxml.jackson.dataformat.csv.CsvMapper;
import com.fasterxml.jackson.dataformat.csv.CsvParser;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.HashSet;
import java.util.List;
import java.util.Set;
import java.util.stream.Collectors;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

class SplitAndCleaningTest {
    @TempDir
    Path dir;

    @Test
    void normalizeKeepsNewlinesAndIndentation() {
        // without collapsing: only line endings and the ends of the text
        assertEquals("a   b\t\tc  \ndef f():\n    return  1   \n\n- item",
                RowCleaner.normalize("  a   b\t\tc  \r\ndef f():\r\n    return  1   \r\n\r\n- item\n\n", false));
        assertEquals("a b c\ndef f():\n    return 1\n\n- item",
                RowCleaner.normalize("  a   b\t\tc  \r\ndef f():\r\n    return  1   \r\n\r\n- item\n\n", true));
        assertEquals("x  y", RowCleaner.normalize(" x  y\r", false));
    }

    @Test
    void whitespaceVariantsAreDuplicatesOnlyWhenNormalising() throws Exception {
        Path f = write(dir, "d.csv", "prompt,response\n\"What  is  SQL?\",A language.\nWhat is SQL?,A language.\r\n"
                + "What is SQL?,\"A language.  \"\n");
        DataSection o = TestData.instruction(f, 64);
        assertEquals("data: 3 rows read, 1 kept, 2 dropped (2 duplicates)", prepare(o, TestData.gpt2()).lines().get(0));
        DataSection raw = o.toBuilder().normalizeWhitespace(false).build();
        assertEquals("data: 3 rows read, 2 kept, 1 dropped (1 duplicate)", prepare(raw, TestData.gpt2()).lines().get(0));
        DataSection keepDup = o.toBuilder().dropDuplicates(false).build();
        assertEquals("data: 3 rows read, 3 kept, 0 dropped", prepare(keepDup, TestData.gpt2()).lines().get(0));
    }

    private Path rows(int n) throws Exception {
        StringBuilder sb = new StringBuilder("prompt,response\n");
        for (int i = 0; i < n; i++) sb.append("Question ").append(i).append("?,Answer ").append(i).append(".\n");
        return write(dir, "rows" + n + ".csv", sb.toString());
    }

    private static Set<String> texts(List<Example> examples) {
        return examples.stream().map(e -> TestData.gpt2().decode(e.inputIds(), false)).collect(Collectors.toSet());
    }

    @Test
    void splitIsDeterministicDisjointAndSeeded() throws Exception {
        Path f = rows(100);
        DataSection o = TestData.instruction(f, 64).toBuilder().validationSplit(0.2).testSplit(0.1).build();
        PreparedData a = prepare(o, 7, TestData.gpt2()).data();
        PreparedData b = prepare(o, 7, TestData.gpt2()).data();
        PreparedData c = prepare(o, 8, TestData.gpt2()).data();
        assertEquals(70, a.train().size());
        assertEquals(20, a.validation().size());
        assertEquals(10, a.test().size());
        assertEquals(a.train(), b.train());
        assertEquals(a.validation(), b.validation());
        assertEquals(a.test(), b.test());
        assertNotEquals(texts(a.validation()), texts(c.validation()));
        Set<String> all = new HashSet<>(texts(a.train()));
        all.addAll(texts(a.validation()));
        all.addAll(texts(a.test()));
        assertEquals(100, all.size()); // disjoint and complete
        TestData.Run run = prepare(o, TestData.gpt2());
        assertTrue(run.lines().get(1).startsWith("data: 70 train / 20 validation / 10 test examples, "), run.lines().get(1));
    }

    @Test
    void identicalRowsNeverStraddleSplits() throws Exception {
        StringBuilder sb = new StringBuilder("prompt,response\n");
        for (int i = 0; i < 40; i++) {
            for (int k = 0; k < 3; k++) sb.append("Q").append(i).append(",A").append(i).append('\n');
        }
        Path f = write(dir, "dups.csv", sb.toString());
        for (long seed = 0; seed < 5; seed++) {
            DataSection o = TestData.instruction(f, 64).toBuilder().validationSplit(0.25).testSplit(0.25)
                    .dropDuplicates(false).build(); // keep the duplicates
            PreparedData d = prepare(o, seed, TestData.gpt2()).data();
            Set<String> tr = texts(d.train());
            Set<String> va = texts(d.validation());
            Set<String> te = texts(d.test());
            assertEquals(120, d.train().size() + d.validation().size() + d.test().size());
            assertTrue(tr.stream().noneMatch(va::contains) && tr.stream().noneMatch(te::contains)
                    && va.stream().noneMatch(te::contains));
        }
    }

    @Test
    void separateValidationFileGetsItsOwnSummary() throws Exception {
        Path train = rows(10);
        Path val = write(dir, "val.jsonl", "{\"prompt\": \"v?\", \"response\": \"w.\"}\n{\"prompt\": \"v?\", \"response\": \"w.\"}\nnope\n");
        DataSection o = TestData.instruction(train, 64).toBuilder().validationSplit(0.5).validationFile(val).build();
        TestData.Run run = prepare(o, TestData.gpt2());
        assertEquals("data: 10 rows read, 10 kept, 0 dropped", run.lines().get(0));
        assertEquals("data: validation file val.jsonl: 3 rows read, 1 kept, 2 dropped (1 duplicate, 1 bad JSON at line 3)",
                run.lines().get(1));
        assertTrue(run.lines().get(2).startsWith("data: 10 train / 1 validation / 0 test examples"), run.lines().get(2));
    }

    /** Our RFC 4180 reader agrees with Jackson's CsvParser on a well-formed file. */
    @Test
    void csvReaderAgreesWithJacksonOnGoodFiles() throws Exception {
        String csv = "\uFEFFa,b,c\r\n1,\"x, y\",\"say \"\"hi\"\"\"\r\n2,\"multi\r\nline\nfield\",café 你好\n3,,\"\"\n\"4\",plain text ,\"\"\"\"\n";
        Path f = dir.resolve("good.csv");
        Files.write(f, csv.getBytes(StandardCharsets.UTF_8));
        List<RowReader.Row> ours = RowReader.read(f, List.of("a"));
        CsvMapper mapper = new CsvMapper();
        mapper.enable(CsvParser.Feature.WRAP_AS_ARRAY);
        List<List<String>> theirs = new ArrayList<>();
        try (MappingIterator<List<String>> it = mapper.readerForListOf(String.class).readValues(
                new String(Files.readAllBytes(f), StandardCharsets.UTF_8).substring(1))) {
            while (it.hasNext()) theirs.add(it.next());
        }
        theirs.remove(0); // header
        assertEquals(theirs.size(), ours.size());
        for (int i = 0; i < ours.size(); i++) {
            RowReader.Row r = ours.get(i);
            assertTrue(!r.isBad(), r.toString());
            List<String> mine = List.of(r.values().get("a").asText(), r.values().get("b").asText(),
                    r.values().get("c").asText());
            assertEquals(theirs.get(i).stream().map(s -> s.replace("\r\n", "\n")).toList(), mine);
        }
        assertEquals(List.of(2, 3, 6, 7), ours.stream().map(RowReader.Row::line).toList());
    }
}
