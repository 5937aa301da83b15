package dev.jtune.config;

import dev.jtune.model.ModelConfig;
import dev.jtune.util.UserError;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.nio.file.Files;
import java.nio.file.Path;

import static dev.jtune.config.ConfigFixture.GPT2_MODEL;
import static dev.jtune.config.ConfigFixture.LLAMA;
import static dev.jtune.config.ConfigFixture.assertProblem;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

/** Checks against the model's config.json: reported by Experiment.load with file, line and key, for every family. */
class ModelChecksTest {
    static final Path MISTRAL = Path.of("src/test/resources/models/mistral-tiny").toAbsolutePath();

    @TempDir
    Path tmp;

    private ConfigFixture fx;

    private ConfigFixture fx() {
        if (fx == null) fx = new ConfigFixture(tmp);
        return fx;
    }

    private String on(Path model, String dataExtra) {
        return fx().minimal("", dataExtra, "").replace(LLAMA.toString(), model.toString());
    }

    @Test
    void ropeModelsCannotOutgrowMaxPositionEmbeddings() {
        String m = fx().fails(on(MISTRAL, "max_seq_length: 300"));
        String line = assertProblem(m, "data.max_seq_length",
                "300 is longer than the model's 256 positions (max_position_embeddings in " + MISTRAL.resolve("config.json") + ")");
        assertTrue(line.startsWith(tmp.resolve("exp.yaml") + ":6: data.max_seq_length: "), line);

        String set = assertProblem(fx().fails(on(MISTRAL, ""), "data.max_seq_length=257"), "data.max_seq_length", "257 is longer");
        assertTrue(set.contains("(--set data.max_seq_length=257)"), set);
        assertEquals(256, fx().load(on(MISTRAL, "max_seq_length: 256")).data().maxSeqLength());
    }

    @Test
    void theAssumedLimitIsSaidToBeAssumed() throws Exception {
        Path model = Files.createDirectory(tmp.resolve("no-limit"));
        String config = Files.readString(LLAMA.resolve("config.json")).replaceAll("\"max_position_embeddings\": *\\d+,?", "");
        Files.writeString(model.resolve("config.json"), config);
        assertProblem(fx().fails(on(model, "max_seq_length: 4096")), "data.max_seq_length",
                "4096 is longer than the model's 2048 positions (max_position_embeddings in " + model.resolve("config.json")
                        + " is not set; 2048 assumed)");
    }

    @Test
    void listedWithTheOtherProblems() {
        String m = fx().fails(on(GPT2_MODEL, "max_seq_length: 100").replace("training:\n", "training:\n  learning_rate: -1\n"));
        assertEquals(2, ConfigFixture.count(m), m);
        assertProblem(m, "data.max_seq_length", "100 is longer than the model's 64 learned positions");
        assertProblem(m, "training.learning_rate");
    }

    @Test
    void experimentsBuiltInCodeAreCheckedToo() {
        Experiment ok = fx().load(on(GPT2_MODEL, "max_seq_length: 64"));
        ModelConfig config = ModelConfig.read(GPT2_MODEL);
        ModelChecks.check(ok, config);
        Experiment tooLong = new Experiment(ok.file(), ok.model(), ok.data().toBuilder().maxSeqLength(100).build(),
                ok.training(), ok.lora(), ok.sweep(), ok.preference());
        UserError e = assertThrows(UserError.class, () -> ModelChecks.check(tooLong, config));
        assertEquals(ok.file() + ": data.max_seq_length: 100 is longer than the model's 64 learned positions (n_positions in "
                + GPT2_MODEL.resolve("config.json") + ")", e.getMessage());
    }
}
