package dev.jtune.cli;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.io.ByteArrayOutputStream;
import java.io.IOException;
import java.io.PrintStream;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

/** The commands as a user runs them: exit codes, output, and messages for mistakes (never a stack trace). */
public class CliTest {
    static final Path GPT2_TOKENIZER = Path.of("configs/tokenizers/gpt2");
    static final ObjectMapper JSON = new ObjectMapper();

    @TempDir
    static Path tmp;
    static Path model;

    /** A command's exit code and what it printed. */
    public record Run(int code, String out, String err) {}

    /** Runs jtune in this JVM, capturing stdout and stderr (other packages' CLI tests use it too). */
    public static Run run(String... args) {
        PrintStream oldOut = System.out, oldErr = System.err;
        ByteArrayOutputStream out = new ByteArrayOutputStream(), err = new ByteArrayOutputStream();
        System.setOut(new PrintStream(out, true, StandardCharsets.UTF_8));
        System.setErr(new PrintStream(err, true, StandardCharsets.UTF_8));
        try {
            int code = Main.run(args);
            return new Run(code, out.toString(StandardCharsets.UTF_8), err.toString(StandardCharsets.UTF_8));
        } finally {
            System.setOut(oldOut);
            System.setErr(oldErr);
        }
    }

    /** A user error: exit 2, a message, and no Java stack trace. */
    static void assertUserError(Run r, String... mustContain) {
        assertEquals(2, r.code(), "exit code; stderr: " + r.err());
        for (String s : mustContain) assertTrue(r.err().contains(s), "stderr should contain '" + s + "': " + r.err());
        assertFalse(r.err().contains("\tat "), "no stack trace: " + r.err());
        assertFalse(r.err().contains("Exception"), "no exception names: " + r.err());
    }

    @BeforeAll
    static void makeModel() {
        model = tmp.resolve("gpt2");
        Run r = run("init-model", "--arch", "gpt2", "--preset", "tiny", "--tokenizer", GPT2_TOKENIZER.toString(),
                "--out", model.toString(), "--seed", "3");
        assertEquals(0, r.code(), r.err());
        assertTrue(Files.isRegularFile(model.resolve("tokenizer.json")));
    }

    @Test
    void inspectReportsAndValidates() throws IOException {
        Run table = run("inspect", model.toString());
        assertEquals(0, table.code(), table.err());
        assertTrue(table.out().contains("gpt2 (GPT2LMHeadModel)") && table.out().contains("validation    ok"), table.out());
        Run json = run("inspect", "--json", model.toString());
        JsonNode j = JSON.readTree(json.out());
        // GPT-2 tiny: wte 50257x64 + wpe 512x64 + 2 blocks of 12·64² + 13·64 + ln_f 2·64
        long d = 64, expected = 50257 * d + 512 * d + 2 * (12 * d * d + 13 * d) + 2 * d;
        assertEquals(expected, j.get("parameters").asLong());
        assertEquals(expected * 4, j.get("weights_memory_bytes").get("float32").asLong());
        assertEquals("F32", j.get("stored_dtype").asText());
    }

    @Test
    void tokenizeGivesGpt2Ids() throws IOException {
        Run r = run("tokenize", "--tokenizer", GPT2_TOKENIZER.toString(), "--text", "Hello world", "--json");
        assertEquals(0, r.code(), r.err());
        JsonNode j = JSON.readTree(r.out());
        assertEquals("[15496,995]", j.get("ids").toString());
        assertEquals("[\"Hello\",\"Ġworld\"]", j.get("tokens").toString());
    }

    @Test
    void perplexityOfRandomModelIsNearVocabularySize() throws IOException {
        Path text = tmp.resolve("text.txt");
        Files.writeString(text, "Data science turns questions into numbers. ¿Qué es la validación cruzada?");
        Run r = run("perplexity", "--model", model.toString(), "--text-file", text.toString(), "--json");
        assertEquals(0, r.code(), r.err());
        JsonNode j = JSON.readTree(r.out());
        assertTrue(j.get("tokens").asInt() > 10);
        // an untrained model is close to uniform: mean NLL ≈ ln(vocab)
        assertEquals(Math.log(50257), j.get("mean_nll").asDouble(), 0.05);
        assertEquals(Math.exp(j.get("mean_nll").asDouble()), j.get("perplexity").asDouble(), 1e-6 * j.get("perplexity").asDouble());
    }

    @Test
    void generateStreamsTheContinuation() {
        Run r = run("generate", "--model", model.toString(), "--prompt", "Hello", "--max-new-tokens", "5");
        assertEquals(0, r.code(), r.err());
        assertTrue(r.out().startsWith("Hello") && r.out().length() > "Hello\n".length(), r.out());
        assertTrue(r.err().contains("5 tokens in"), r.err());
        Run same = run("generate", "--model", model.toString(), "--prompt", "Hello", "--max-new-tokens", "5");
        assertEquals(r.out(), same.out(), "greedy decoding is deterministic");
        Run off = run("generate", "--model", model.toString(), "--prompt", "Hello", "--max-new-tokens", "5", "--kernels", "off");
        assertEquals(r.out(), off.out(), "--kernels off: the LibTorch paths, as auto takes on the CPU");
        Run sampled1 = run("generate", "--model", model.toString(), "--prompt", "Hello", "--max-new-tokens", "8", "--temperature", "1.0", "--seed", "11");
        Run sampled2 = run("generate", "--model", model.toString(), "--prompt", "Hello", "--max-new-tokens", "8", "--temperature", "1.0", "--seed", "11");
        assertEquals(sampled1.out(), sampled2.out(), "same seed, same sample");
    }

    @Test
    void userMistakesExitTwoWithAMessage() throws IOException {
        assertUserError(run("inspect", tmp.resolve("nowhere").toString()), "no config.json");
        assertUserError(run("perplexity", "--model", model.toString(), "--text-file", tmp.resolve("missing.txt").toString()),
                "missing.txt", "no such file");
        Path latin1 = tmp.resolve("latin1.txt");
        Files.write(latin1, new byte[] {'c', 'a', 'f', (byte) 0xE9, ' ', (byte) 0xFF});
        assertUserError(run("perplexity", "--model", model.toString(), "--text-file", latin1.toString()), "latin1.txt", "UTF-8");
        assertUserError(run("generate", "--model", model.toString(), "--prompt", "x", "--top-p", "0"), "--top-p");
        assertUserError(run("generate", "--model", model.toString(), "--prompt", "x", "--kernels", "on"), "--kernels", "auto or off");
        assertUserError(run("perplexity", "--model", model.toString(), "--text-file", latin1.toString(), "--dtype", "int8"), "--dtype", "bfloat16");
        assertUserError(run("inspect", "--no-such-flag", model.toString()), "--no-such-flag");
        assertUserError(run("init-model", "--arch", "bert", "--tokenizer", GPT2_TOKENIZER.toString(), "--out", tmp.resolve("x").toString()),
                "--arch", "bert", "llama");
        assertUserError(run("tokenize", "--tokenizer", tmp.toString(), "--text", "hi"), "tokenizer.json");
    }

    @Test
    void cudaWithoutCudaIsAUserError() throws IOException {
        org.junit.jupiter.api.Assumptions.assumeFalse(dev.jtune.util.Devices.cudaAvailable());
        Path text = tmp.resolve("short.txt");
        Files.writeString(text, "hello there");
        assertUserError(run("perplexity", "--model", model.toString(), "--text-file", text.toString(), "--device", "cuda"),
                "--device", "CUDA cannot be used");
    }

    @Test
    void helpAndVersionExitZero() {
        Run help = run("--help");
        assertEquals(0, help.code());
        for (String c : new String[] {"inspect", "tokenize", "perplexity", "generate", "init-model"}) {
            assertTrue(help.out().contains(c), help.out());
            assertEquals(0, run(c, "--help").code(), c);
        }
        assertTrue(run("--version").out().startsWith("jtune"));
    }
}
