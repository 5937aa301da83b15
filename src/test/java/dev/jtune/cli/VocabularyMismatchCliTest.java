package dev.jtune.cli;

import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;

import static dev.jtune.cli.CliTest.assertUserError;
import static dev.jtune.cli.CliTest.run;
import static org.junit.jupiter.api.Assertions.assertFalse;

/**
 * A tokenizer with more ids than the model has embedding rows (the llama-tiny fixture, vocab_size 128, with GPT-2's
 * tokenizer, 50,257 ids) is a user mistake: every command refuses it with both files and both sizes, before training,
 * instead of LibTorch's "index out of range in self" from the embedding lookup.
 */
class VocabularyMismatchCliTest {
    static final Path LLAMA_TINY = Path.of("src/test/resources/models/llama-tiny").toAbsolutePath();
    static final Path GPT2_TOKENIZER = Path.of("configs/tokenizers/gpt2").toAbsolutePath();

    @TempDir
    Path tmp;

    /** What every refusal says: the tokenizer file, the model's config.json, both sizes, and what to do. */
    private static void assertMismatch(CliTest.Run r) {
        assertUserError(r, GPT2_TOKENIZER.resolve("tokenizer.json").toString(), "needs 50257 embedding rows",
                "vocab_size 128", "config.json", "the model's own tokenizer", "resize_token_embeddings(50257)");
        assertFalse(r.err().contains("index out of range"), r.err());
    }

    @Test
    void trainEvalAndLrFindRefuseBeforeAnyWork() {
        Path out = tmp.resolve("run");
        String[] keys = {"--set", "model.path=" + LLAMA_TINY, "--set", "model.tokenizer=" + GPT2_TOKENIZER,
                "--set", "training.output_dir=" + out, "--set", "training.max_steps=2"};
        assertMismatch(run(concat(new String[] {"train", "configs/demo.yaml"}, keys)));
        assertFalse(Files.exists(out.resolve("final")), "no model trained");
        assertFalse(Files.exists(out.resolve("metrics.jsonl")), "no training step ran");
        assertMismatch(run(concat(new String[] {"lr-find", "configs/demo.yaml", "--steps", "10"}, keys)));
        assertMismatch(run(concat(new String[] {"eval", "configs/demo.yaml", "--checkpoint", LLAMA_TINY.toString()}, keys)));
    }

    /** A model directory whose tokenizer.json is not its own (generate, perplexity and serve read the model's). */
    @Test
    void generateRefusesAModelDirectoryWithAForeignTokenizer() throws IOException {
        Path model = tmp.resolve("llama-tiny-with-gpt2-tokenizer");
        Files.createDirectories(model);
        for (String f : new String[] {"config.json", "generation_config.json", "model.safetensors"}) {
            Files.copy(LLAMA_TINY.resolve(f), model.resolve(f));
        }
        Files.copy(GPT2_TOKENIZER.resolve("tokenizer.json"), model.resolve("tokenizer.json"));
        CliTest.Run r = run("generate", "--model", model.toString(), "--prompt", "hello", "--max-new-tokens", "2");
        assertUserError(r, model.resolve("tokenizer.json").toString(), "needs 50257 embedding rows", "vocab_size 128",
                model.resolve("config.json").toString());
        assertFalse(r.err().contains("index out of range"), r.err());
    }

    private static String[] concat(String[] a, String[] b) {
        String[] c = java.util.Arrays.copyOf(a, a.length + b.length);
        System.arraycopy(b, 0, c, a.length, b.length);
        return c;
    }
}
