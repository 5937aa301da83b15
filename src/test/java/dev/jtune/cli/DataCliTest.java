package dev.jtune.cli;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;

import static dev.jtune.cli.CliTest.assertUserError;
import static dev.jtune.cli.CliTest.run;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * The data as people have it, end to end: a tiny Llama with a ChatML tokenizer trains two steps on a DuckDB-written
 * Parquet chat file mixed by weight with ShareGPT JSON lines; {@code jtune data --show} prints what trains; damaged
 * files exit 2 with the file, the column and the row.
 */
class DataCliTest {
    static final ObjectMapper JSON = new ObjectMapper();

    @TempDir
    static Path tmp;
    static Path base;
    static Path sharegpt;

    @BeforeAll
    static void makeModelAndData() throws IOException {
        // the tiny Qwen2 BPE with Qwen2.5's ChatML template
        Path tok = Files.createDirectories(tmp.resolve("tok"));
        Files.copy(Path.of("src/test/resources/tokenizers/torchtune-tiny-qwen2/tokenizer.json"), tok.resolve("tokenizer.json"));
        Files.copy(Path.of("src/test/resources/tokenizers/chat-templates/qwen2.5.tokenizer_config.json"),
                tok.resolve("tokenizer_config.json"));
        base = tmp.resolve("base");
        CliTest.Run r = run("init-model", "--arch", "llama", "--preset", "tiny", "--tokenizer", tok.toString(),
                "--out", base.toString(), "--seed", "1");
        assertEquals(0, r.code(), r.err());
        StringBuilder sg = new StringBuilder();
        for (int i = 0; i < 6; i++) {
            sg.append("{\"conversations\": [{\"from\": \"human\", \"value\": \"What is ").append(i).append(" plus one?\"},")
                    .append(" {\"from\": \"gpt\", \"value\": \"").append(i + 1).append(".\"}]}\n");
        }
        sharegpt = Files.writeString(tmp.resolve("sharegpt.jsonl"), sg.toString());
    }

    private static Path experiment(String name, Path chat) throws IOException {
        return Files.writeString(tmp.resolve(name + ".yaml"), "model:\n  path: " + base + "\n"
                + "data:\n  format: chat\n  max_seq_length: 128\n  validation_split: 0\n  datasets:\n"
                + "    - {path: " + chat + ", weight: 1}\n"
                + "    - {path: " + sharegpt + ", format: sharegpt, weight: 1}\n"
                + "training:\n  output_dir: " + tmp.resolve(name + "-run") + "\n  max_steps: 2\n"
                + "  per_device_train_batch_size: 2\n  logging_steps: 1\n  device: cpu\n  precision: fp32\n");
    }

    @Test
    void everyCommandThatPreparesDataTakesNoCache() throws IOException {
        for (String command : List.of("train", "data", "eval", "lr-find", "sweep")) {
            CliTest.Run help = run(command, "--help");
            assertTrue(help.out().contains("--no-cache"), command + ": " + help.out());
        }
        Path cache = tmp.resolve("cli-cache");
        Path chat = Path.of("src/test/resources/data-formats/chat.snappy.parquet").toAbsolutePath();
        Path exp = Files.writeString(tmp.resolve("cached.yaml"), Files.readString(experiment("cached", chat))
                .replace("data:\n", "data:\n  cache_dir: " + cache + "\n"));
        CliTest.Run none = run("data", exp.toString(), "--no-cache");
        assertEquals(0, none.code(), none.err());
        assertFalse(Files.exists(cache), "--no-cache writes no entry");
        CliTest.Run first = run("data", exp.toString());
        assertTrue(first.out().contains("data: tokenized data cached in " + cache), first.out());
        CliTest.Run second = run("data", exp.toString());
        assertTrue(second.out().contains("data: mapped the tokenized-data cache " + cache), second.out());
        CliTest.Run again = run("data", exp.toString(), "--no-cache");
        assertFalse(again.out().contains("tokenized-data cache"), again.out());
        assertEquals(second.out().lines().skip(1).toList(), again.out().lines().toList());
    }

    @Test
    void trainsOnAParquetChatFileMixedWithShareGpt() throws IOException {
        Path exp = experiment("mix", Path.of("src/test/resources/data-formats/chat.snappy.parquet").toAbsolutePath());
        CliTest.Run train = run("train", exp.toString());
        assertEquals(0, train.code(), train.err());
        // 9 examples: the 3 chats and 6 ShareGPT rows weigh the same, so each gives 4 or 5
        assertTrue(train.out().contains("data: note: mixture: chat.snappy.parquet (chat): 5 train examples drawn from 3"
                + " (weight 1, 55.6% of 9)"), train.out());
        assertTrue(train.out().contains("data: note: mixture: sharegpt.jsonl (sharegpt): 4 train examples drawn from 6"),
                train.out());
        assertTrue(Files.isRegularFile(tmp.resolve("mix-run/final/model.safetensors")));

        CliTest.Run show = run("data", exp.toString(), "--show", "9", "--json");
        assertEquals(0, show.code(), show.err());
        JsonNode j = JSON.readTree(show.out());
        assertEquals(9, j.get("examples").size());
        List<String> trained = new ArrayList<>();
        for (JsonNode e : j.get("examples")) {
            assertEquals(e.get("ids").size(), e.get("labels").size());
            for (JsonNode t : e.get("trained")) trained.add(t.asText());
            // labels are the ids where trained, -100 elsewhere
            for (int i = 0; i < e.get("ids").size(); i++) {
                long l = e.get("labels").get(i).asLong();
                assertTrue(l == -100 || l == e.get("ids").get(i).asLong());
            }
        }
        // only assistant turns, each with its end of turn: the multi-turn chat trains both answers
        assertTrue(trained.contains("Paris.<|im_end|>\n") && trained.contains("Rome.<|im_end|>\n"), trained.toString());
        assertTrue(trained.stream().allMatch(t -> t.endsWith("<|im_end|>\n") && !t.contains("<|im_start|>")), trained.toString());

        CliTest.Run text = run("data", exp.toString(), "--show", "1");
        assertEquals(0, text.code(), text.err());
        assertTrue(text.out().contains("<|im_start|>assistant\n[["), text.out());
        assertTrue(text.out().contains("<|im_end|>\n]]"), text.out());
        assertTrue(text.out().contains("labels: [-100, "), text.out());
    }

    @Test
    void damagedFilesExit2NamingFileColumnAndRow() throws IOException {
        byte[] whole = Files.readAllBytes(Path.of("src/test/resources/data-formats/chat.snappy.parquet"));
        Path cut = Files.write(tmp.resolve("cut.parquet"), java.util.Arrays.copyOf(whole, whole.length - 20));
        assertUserError(run("data", experiment("cut", cut).toString()), cut.toString(), "not a readable Parquet file");
        Path wrong = Path.of("src/test/resources/data-formats/wrong-type.parquet").toAbsolutePath();
        assertUserError(run("data", experiment("wrong", wrong).toString()), wrong + ": column \"messages\" is INTEGER (row 1");
        Path alpaca = Path.of("src/test/resources/data-formats/alpaca.parquet").toAbsolutePath();
        assertUserError(run("data", experiment("missing", alpaca).toString()), alpaca + ": no column \"messages\"");
    }
}
