package dev.jtune.data;

import dev.jtune.config.DataSection;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.io.ByteArrayOutputStream;
import java.io.IOException;
import java.io.PrintStream;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import java.util.stream.Stream;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNotEquals;
import static org.junit.jupiter.api.Assertions.assertNotNull;
import static org.junit.jupiter.api.Assertions.assertTrue;

/** The tokenized-data cache gives back exactly what preparation made, and any change of input misses it. */
class DataCacheTest {
    @TempDir
    Path dir;

    private record Out(PreparedData data, String log) {}

    private Out prepare(DataSection d) {
        ByteArrayOutputStream buf = new ByteArrayOutputStream();
        PreparedData p = DatasetPreparer.prepareCached(d, 7, TestData.qwen25(), new PrintStream(buf, true, StandardCharsets.UTF_8), 2);
        return new Out(p, buf.toString(StandardCharsets.UTF_8));
    }

    private long entries(Path cache) throws IOException {
        try (Stream<Path> s = Files.list(cache)) {
            return s.filter(p -> !p.getFileName().toString().startsWith(".")).count();
        }
    }

    @Test
    void secondPreparationReadsTheSameExamplesReportAndPrompts() throws IOException {
        StringBuilder rows = new StringBuilder("prompt,response\n");
        for (int i = 0; i < 40; i++) rows.append("What is ").append(i).append(" squared?,").append(i * i).append('\n');
        rows.append("dup,dup\ndup,dup\n\"broken,row\n");
        Path f = TestData.write(dir, "q.csv", rows.toString());
        Path cache = dir.resolve("cache");
        DataSection d = TestData.data(f, DataSection.Format.INSTRUCTION, 64).validationSplit(0.2).testSplit(0.1)
                .cacheDir(cache).build();

        Out first = prepare(d);
        assertTrue(first.log().contains("data: tokenized data cached in " + cache), first.log());
        Out second = prepare(d);
        assertTrue(second.log().contains("data: mapped the tokenized-data cache " + cache), second.log());
        PreparedData a = first.data(), b = second.data();
        assertEquals(a.train(), b.train());
        assertEquals(a.validation(), b.validation());
        assertEquals(a.test(), b.test());
        assertEquals(a.report(), b.report());
        assertEquals(a.report().lines(), b.report().lines());
        assertEquals(a.testPrompts().size(), b.testPrompts().size());
        for (int i = 0; i < a.testPrompts().size(); i++) {
            assertEquals(List.of(a.testPrompts().get(i).question(), a.testPrompts().get(i).reference()),
                    List.of(b.testPrompts().get(i).question(), b.testPrompts().get(i).reference()));
            assertEquals(java.util.Arrays.toString(a.testPrompts().get(i).promptIds()),
                    java.util.Arrays.toString(b.testPrompts().get(i).promptIds()));
        }
        assertNotNull(b.template());
        assertEquals(1, entries(cache));

        // a data key, the seed's split or the file's bytes change the key
        prepare(d.toBuilder().maxSeqLength(48).build());
        assertEquals(2, entries(cache));
        Files.writeString(f, rows + "one more,row\n");
        Out changed = prepare(d);
        assertTrue(changed.log().contains("tokenized data cached in"), changed.log());
        assertNotEquals(a.train().size() + a.validation().size() + a.test().size(),
                changed.data().train().size() + changed.data().validation().size() + changed.data().test().size());
        assertEquals(3, entries(cache));
    }

    @Test
    void noCachePropertyPreparesWithoutWriting() throws IOException {
        Path f = TestData.write(dir, "t.jsonl", "{\"text\": \"hello there\"}\n{\"text\": \"general kenobi\"}\n");
        Path cache = dir.resolve("cache2");
        DataSection d = TestData.whole(f, DataSection.Format.TEXT, 32).toBuilder().cacheDir(cache).build();
        System.setProperty(DataCache.DISABLE_PROPERTY, "true");
        try {
            Out o = prepare(d);
            assertEquals(2, o.data().train().size());
            assertTrue(!Files.exists(cache), "nothing written");
        } finally {
            System.clearProperty(DataCache.DISABLE_PROPERTY);
        }
    }
}
