package dev.jtune.cli;

import com.fasterxml.jackson.databind.node.ArrayNode;
import com.fasterxml.jackson.databind.node.ObjectNode;
import dev.jtune.util.UserError;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;

import static dev.jtune.cli.CliTest.assertUserError;
import static dev.jtune.cli.CliTest.run;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * A tokenizer with more ids than the model has embedding rows (the llama-tiny fixture, vocab_size 128, with GPT-2's
 * tokenizer, 50,257 ids) is a user mistake: every command refuses it with both files and both sizes, before training,
 * instead of LibTorch's "index out of range in self" from the embedding lookup.
 */
class VocabularyMismatchCliTest {
    static final Path LLAMA_TINY = Path.of("src/test/resources/models/llama-tiny").toAbsolutePath();
    static final Path GPT2_TOKENIZER = Path.of("configs/tokenizers/gpt2").toAbsolutePath();
    static final Path TORCHTUNE_TINY = Path.of("src/test/resources/tokenizers/torchtune-tiny").toAbsolutePath();

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

    /** A model directory whose tokenizer.json is not its own (generate, perplexity, serve and the Java API read the model's). */
    @Test
    void aModelDirectoryWithAForeignTokenizerIsRefused() throws IOException {
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
        UserError api = assertThrows(UserError.class, () -> dev.jtune.api.Model.load(model));
        assertTrue(api.getMessage().contains("needs 50257 embedding rows"), api.getMessage());
        UserError serve = assertThrows(UserError.class, () -> dev.jtune.serve.ServedModels.load(model, "base", java.util.Map.of(),
                org.bytedeco.pytorch.global.torch.ScalarType.Float, new org.bytedeco.pytorch.Device("cpu"), dev.jtune.kernels.Ops.AUTO));
        assertTrue(serve.getMessage().contains("needs 50257 embedding rows"), serve.getMessage());
    }

    /**
     * A tokenizer whose ids have a gap (an added token far above the vocabulary, 2,000 BPE tokens and id 2,999): init-model
     * sizes the embedding by the highest id + 1, not the token count, so the model it makes takes every id.
     */
    @Test
    void initModelCoversTheHighestIdOfATokenizerWithGaps() throws IOException {
        ObjectNode json = (ObjectNode) CliTest.JSON.readTree(TORCHTUNE_TINY.resolve("tokenizer.json").toFile());
        ((ArrayNode) json.withArray("added_tokens")).addObject().put("id", 2999).put("content", "<|far|>").put("single_word", false)
                .put("lstrip", false).put("rstrip", false).put("normalized", false).put("special", true);
        Path tok = Files.createDirectories(tmp.resolve("gapped-tokenizer"));
        CliTest.JSON.writeValue(tok.resolve("tokenizer.json").toFile(), json);
        Path model = tmp.resolve("gapped-model");
        CliTest.Run init = run("init-model", "--arch", "llama", "--preset", "tiny", "--tokenizer", tok.toString(), "--out", model.toString());
        assertEquals(0, init.code(), init.err());
        assertEquals(3000, CliTest.JSON.readTree(model.resolve("config.json").toFile()).get("vocab_size").asInt());
        CliTest.Run gen = run("generate", "--model", model.toString(), "--prompt", "hello <|far|>", "--max-new-tokens", "2");
        assertEquals(0, gen.code(), gen.err());
    }

    private static String[] concat(String[] a, String[] b) {
        String[] c = java.util.Arrays.copyOf(a, a.length + b.length);
        System.arraycopy(b, 0, c, a.length, b.length);
        return c;
    }
}
