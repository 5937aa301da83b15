package dev.jtune.config;

import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.nio.file.Path;
import java.util.List;

import static org.junit.jupiter.api.Assertions.assertEquals;

/** DataSection.builder: the defaults of a file that sets only train_file, and each setter sets its own key. */
class DataSectionBuilderTest {
    @TempDir
    Path tmp;

    @Test
    void defaultsAreTheFileDefaults() {
        ConfigFixture fx = new ConfigFixture(tmp);
        Experiment e = fx.load(fx.minimal("", "", ""));
        assertEquals(e.data(), DataSection.builder(fx.train).build());
    }

    @Test
    void eachSetterSetsItsKey() {
        Path a = tmp.resolve("a"), b = tmp.resolve("b"), c = tmp.resolve("c");
        DataSection expected = new DataSection(a, b, c, DataSection.Format.CHAT, "t", "p", "r", "m", "s", 0.2, 0.3, 77,
                true, true, DataSection.OnBadRow.FAIL, DataSection.OnLongRow.DROP, false, false,
                "c", "f", "v", "i", "in", "o", List.of(DatasetSpec.of(b, DataSection.Format.SHAREGPT, 2.0)), c);
        DataSection built = DataSection.builder(tmp.resolve("other")).trainFile(a).validationFile(b).testFile(c)
                .format(DataSection.Format.CHAT).textColumn("t").promptColumn("p").responseColumn("r").messagesColumn("m")
                .systemPrompt("s").validationSplit(0.2).testSplit(0.3).maxSeqLength(77).packing(true).trainOnInputs(true)
                .onBadRow(DataSection.OnBadRow.FAIL).onLongRow(DataSection.OnLongRow.DROP).normalizeWhitespace(false)
                .dropDuplicates(false).conversationsColumn("c").sharegptRoleKey("f").sharegptContentKey("v")
                .instructionColumn("i").inputColumn("in").outputColumn("o")
                .datasets(List.of(DatasetSpec.of(b, DataSection.Format.SHAREGPT, 2.0))).cacheDir(c).build();
        assertEquals(expected, built);
        assertEquals(expected, expected.toBuilder().build());
    }
}
