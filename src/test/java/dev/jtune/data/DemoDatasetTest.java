package dev.jtune.data;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.jtune.config.DataSection;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import org.junit.jupiter.api.Test;

/** configs/demo/data-science-qa.csv with the shipped GPT-2 tokenizer, as the demo runs it. */
class DemoDatasetTest {
    static final Path DEMO = Path.of("configs/demo/data-science-qa.csv");

    @Test
    void summaryShowsTheDeliberateDefects() throws Exception {
        assertTrue(Files.size(DEMO) < 120 * 1024);
        DataSection o = TestData.data(DEMO, DataSection.Format.INSTRUCTION, 256)
                .promptColumn("question").responseColumn("answer").validationSplit(0.1).build();
        TestData.Run run = TestData.prepare(o, 42, TestData.gpt2());
        List<String> lines = run.lines();
        System.out.println(String.join("\n", lines));
        assertEquals("data: 302 rows read, 290 kept, 12 dropped (8 duplicates, 3 empty responses, 1 bad quoting at line 153)",
                lines.get(0));
        assertTrue(lines.get(1).startsWith("data: 261 train / 29 validation / 0 test examples, "), lines.get(1));
        assertEquals(2, lines.size());
        // every answer fits: nothing truncated at 256 tokens
        assertTrue(run.data().train().stream().allMatch(e -> e.length() <= 256));
    }
}
