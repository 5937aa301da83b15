package dev.jtune.data;

import dev.jtune.config.DataSection;
import dev.jtune.config.DatasetSpec;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.io.ByteArrayOutputStream;
import java.io.IOException;
import java.io.PrintStream;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.stream.Stream;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNotEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * Streamed preparation into the memory-mapped tokenized data: the same examples as cleaning, splitting and
 * encoding the rows one by one in memory; the same through the cache, without it, under a tiny row budget and
 * across many mapping segments; a new entry for every changed key.
 */
class StreamingPreparationTest {
    @TempDir
    Path dir;

    /** Instruction rows with duplicates, an empty answer and a bad row, long enough to need several chunks. */
    private Path rows(int n) throws IOException {
        StringBuilder s = new StringBuilder("prompt,response\n");
        for (int i = 0; i < n; i++) {
            s.append("Question ").append(i % 997).append(" about ").append("word ".repeat(i % 13)).append("?,")
                    .append(i % 50 == 7 ? "" : "Answer " + (i % 997) + " is " + (i * 31 % 101)).append('\n');
            if (i == n / 2) s.append("\"never closed,x\n");
        }
        return TestData.write(dir, "rows-" + n + ".csv", s.toString());
    }

    private static String text(List<Example> examples) {
        StringBuilder sb = new StringBuilder();
        for (Example e : examples) sb.append(Arrays.toString(e.inputIds())).append(Arrays.toString(e.labels())).append('\n');
        return sb.toString();
    }

    private static void assertSame(PreparedData a, PreparedData b) {
        assertEquals(text(a.train()), text(b.train()));
        assertEquals(text(a.validation()), text(b.validation()));
        assertEquals(text(a.test()), text(b.test()));
        assertEquals(a.report(), b.report());
        for (List<List<AnswerPrompt>> p : List.of(List.of(a.validationPrompts(), b.validationPrompts()),
                List.of(a.testPrompts(), b.testPrompts()))) {
            assertEquals(p.get(0).size(), p.get(1).size());
            for (int i = 0; i < p.get(0).size(); i++) {
                AnswerPrompt x = p.get(0).get(i), y = p.get(1).get(i);
                assertEquals(Arrays.toString(x.promptIds()) + x.question() + x.reference(),
                        Arrays.toString(y.promptIds()) + y.question() + y.reference());
            }
        }
    }

    @Test
    void streamedExamplesEqualEncodingTheRowsOneByOne() throws IOException {
        Path f = rows(1500);
        DataSection d = TestData.data(f, DataSection.Format.INSTRUCTION, 24).validationSplit(0.1).testSplit(0.05).build();
        PreparedData streamed = TestData.prepare(d, TestData.gpt2()).data();

        // the reference: every row in memory, cleaned, split, encoded in order
        FileTally tally = new FileTally(f, "train", false);
        List<List<Candidate>> parts = DataSplitter.split(new RowCleaner(d).clean(f, tally), 0.1, 0.05, TestData.SEED, f);
        ExampleEncoder encoder = new ExampleEncoder(d, TestData.gpt2(), ChatTemplate.forTokenizer(TestData.gpt2()));
        List<List<Example>> expected = new ArrayList<>();
        List<AnswerPrompt> testPrompts = new ArrayList<>();
        for (int p = 0; p < 3; p++) {
            List<Example> out = new ArrayList<>();
            for (Candidate c : parts.get(p)) {
                ExampleEncoder.Encoded e = encoder.encode(c);
                if (e.dropped() != null) tally.drop(e.dropped(), c.line());
                if (e.example() == null) continue;
                out.add(e.example());
                if (p == 2 && e.answer() != null) testPrompts.add(e.answer());
            }
            expected.add(out);
        }
        assertTrue(expected.get(0).size() > 700 && expected.get(2).size() > 30, expected.get(0).size() + " train");
        assertEquals(text(expected.get(0)), text(streamed.train()));
        assertEquals(text(expected.get(1)), text(streamed.validation()));
        assertEquals(text(expected.get(2)), text(streamed.test()));
        assertEquals(testPrompts.size(), streamed.testPrompts().size());
        assertEquals(testPrompts.get(3).reference(), streamed.testPrompts().get(3).reference());
        assertEquals(Arrays.toString(testPrompts.get(3).promptIds()), Arrays.toString(streamed.testPrompts().get(3).promptIds()));
        // the summary counts what the reference dropped: duplicates, empty answers, the bad row
        assertEquals(tally.report(0).dropped(), streamed.report().file("train").dropped());
    }

    private PreparedData cached(DataSection d) {
        ByteArrayOutputStream log = new ByteArrayOutputStream();
        return DatasetPreparer.prepareCached(d, 3, TestData.gpt2(), new PrintStream(log, true, StandardCharsets.UTF_8), 2);
    }

    @Test
    void aMixtureIsTheSameMappedFromTheCacheWithoutItUnderATinyBudgetAndAcrossSegments() throws IOException {
        StringBuilder sg = new StringBuilder();
        for (int i = 0; i < 300; i++) {
            sg.append("{\"conversations\": [{\"from\": \"human\", \"value\": \"question ").append(i)
                    .append("\"}, {\"from\": \"gpt\", \"value\": \"answer ").append(i).append("\"}]}\n");
        }
        Path sharegpt = TestData.write(dir, "sg.jsonl", sg.toString());
        Path csv = rows(700);
        Path cache = dir.resolve("cache");
        DataSection d = DataSection.builder(null).format(DataSection.Format.INSTRUCTION).maxSeqLength(32)
                .validationSplit(0.1).testSplit(0.1).cacheDir(cache)
                .datasets(List.of(DatasetSpec.of(csv, null, 1), DatasetSpec.of(sharegpt, DataSection.Format.SHAREGPT, 2)))
                .build();

        PreparedData first = cached(d);
        PreparedData again = cached(d);   // mapped from the entry the first run wrote
        PreparedData fresh = DatasetPreparer.prepare(d, 3, TestData.gpt2(), null, 2);
        PreparedData tiny = DatasetPreparer.prepare(d, 3, TestData.gpt2(), null, 2, 7, MappedFile.DEFAULT_SEGMENT_BYTES);
        assertTrue(DatasetPreparer.lastPeakRowsInFlight <= 7, "rows held " + DatasetPreparer.lastPeakRowsInFlight);
        assertTrue(DatasetPreparer.lastPeakRowsInFlight > 0);
        PreparedData segmented = DatasetPreparer.prepare(d, 3, TestData.gpt2(), null, 2, DatasetPreparer.DEFAULT_ROWS_IN_FLIGHT, 64);
        assertTrue(first.report().notes().stream().anyMatch(n -> n.startsWith("mixture: sg.jsonl")), first.report().notes().toString());
        assertTrue(first.validationPrompts().size() > 50 && first.testPrompts().size() > 50);
        for (PreparedData other : List.of(again, fresh, tiny, segmented)) assertSame(first, other);

        // the entry mapped in segments of 64 bytes: examples straddle segments, and read the same
        Path entry;
        try (Stream<Path> s = Files.list(cache)) {
            entry = s.filter(p -> !p.getFileName().toString().startsWith(".")).findFirst().orElseThrow();
        }
        TokenStore small = TokenStore.open(entry, DataCache.FORMAT, 64);
        assertTrue(small.tokenSegments() > 100, small.tokenSegments() + " segments");
        for (int split = 0; split < 3; split++) {
            List<Example> expected = List.of(first.train(), first.validation(), first.test()).get(split);
            assertEquals(text(expected), text(small.split(split)));
        }
        assertEquals(first.testPrompts().get(5).reference(), small.prompts(2).get(5).reference());

        // a damaged entry (a file deleted outside jtune; deleting keeps the runs that map it readable, where
        // truncating a mapped file would not) is prepared again, not trusted and not fatal
        Files.delete(entry.resolve("splits.bin"));
        assertSame(fresh, cached(d));
        assertEquals(1, entries(cache));
    }

    private long entries(Path cache) throws IOException {
        try (Stream<Path> s = Files.list(cache)) {
            return s.filter(p -> !p.getFileName().toString().startsWith(".")).count();
        }
    }

    @Test
    void everyKeyChangeGivesANewEntry() throws IOException {
        Path csv = rows(200);
        Path cache = dir.resolve("keys");
        DataSection d = TestData.data(csv, DataSection.Format.INSTRUCTION, 32).cacheDir(cache).build();
        PreparedData base = cached(d);
        assertEquals(1, entries(cache));
        cached(d);
        assertEquals(1, entries(cache));
        List<DataSection> changes = List.of(
                d.toBuilder().maxSeqLength(33).build(),
                d.toBuilder().validationSplit(0.2).build(),
                d.toBuilder().dropDuplicates(false).build(),
                d.toBuilder().onLongRow(DataSection.OnLongRow.DROP).build(),
                d.toBuilder().trainOnInputs(true).build(),
                d.toBuilder().systemPrompt("Be brief.").build());
        int n = 1;
        for (DataSection changed : changes) {
            cached(changed);
            assertEquals(++n, entries(cache), changed.toString());
        }
        // another seed splits differently: its own entry, another validation set
        PreparedData seeded = DatasetPreparer.prepareCached(d, 4, TestData.gpt2(), null, 2);
        assertEquals(++n, entries(cache));
        assertNotEquals(text(base.validation()), text(seeded.validation()));
    }
}
