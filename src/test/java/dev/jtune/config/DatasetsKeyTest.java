package dev.jtune.config;

import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.nio.file.Path;
import java.util.List;

import static dev.jtune.config.ConfigFixture.assertProblem;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNull;

/** data.datasets: a mixture's entries bind, inherit the section's keys, read back, and report mistakes by index. */
class DatasetsKeyTest {
    @TempDir
    Path tmp;

    private String mixture(ConfigFixture fx, String entries) {
        return fx.minimal("", "", "").replace("  train_file: " + fx.train + "\n",
                "  format: chat\n  messages_column: msgs\n  datasets:\n" + entries);
    }

    @Test
    void entriesBindAndInheritTheSectionKeys() {
        ConfigFixture fx = new ConfigFixture(tmp);
        Experiment e = fx.load(mixture(fx, "    - {path: " + fx.train + ", weight: 3}\n"
                + "    - path: " + fx.train + "\n      format: sharegpt\n      conversations_column: conv\n"));
        DataSection d = e.data();
        assertNull(d.trainFile());
        assertEquals(List.of(3.0, 1.0), d.weights());
        List<DataSection> s = d.sources();
        assertEquals(DataSection.Format.CHAT, s.get(0).format());
        assertEquals("msgs", s.get(0).messagesColumn());
        assertEquals(DataSection.Format.SHAREGPT, s.get(1).format());
        assertEquals("conv", s.get(1).conversationsColumn());
        assertEquals(fx.train, s.get(1).trainFile());
        // the resolved experiment (run directories keep it) reads back to the same mixture
        assertEquals(d, Experiment.load(fx.file(e.toYaml()), List.of()).data());
    }

    @Test
    void mistakesNameTheEntry() {
        ConfigFixture fx = new ConfigFixture(tmp);
        String m = fx.fails(mixture(fx, "    - {path: " + tmp.resolve("nope.parquet") + ", weight: 0}\n    - {weight: 1}\n"));
        assertProblem(m, "data.datasets[0].path", "does not exist");
        assertProblem(m, "data.datasets[0].weight", "must be a positive number");
        assertProblem(m, "data.datasets[1].path", "required key is missing");
        String both = fx.fails(fx.minimal("", "datasets:\n  - {path: " + fx.train + "}", ""));
        assertProblem(both, "data.datasets", "give either train_file or datasets");
        String neither = fx.fails(fx.minimal("", "", "").replace("  train_file: " + fx.train + "\n", ""));
        assertProblem(neither, "data.train_file", "required key is missing");
    }
}
