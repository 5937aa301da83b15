package dev.jtune.export;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ObjectNode;
import dev.jtune.model.ModelConfig;
import dev.jtune.model.ModelInit;
import dev.jtune.model.ModelWriter;
import dev.jtune.tokenizer.Fixtures;
import dev.jtune.tokenizer.HfTokenizer;
import org.bytedeco.javacpp.PointerScope;
import org.bytedeco.pytorch.Tensor;
import org.bytedeco.pytorch.global.torch.ScalarType;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Map;
import java.util.function.Consumer;

/** Tiny random models of each architecture with real tokenizers, written as Hugging Face directories. */
@SuppressWarnings("try")
final class TinyModels {
    private static final ObjectMapper JSON = new ObjectMapper();

    private TinyModels() {}

    /** A tokenizer directory: "phi3-mini" (SentencePiece-style), "torchtune-tiny" (Llama 3 regex), "qwen2" (Qwen2 regex, ChatML template), "gpt2". */
    static Path tokenizer(String name, Path work) throws IOException {
        switch (name) {
            case "qwen2": {
                Path dir = work.resolve("tok-qwen2");
                if (Files.isDirectory(dir)) return dir;
                Files.createDirectories(dir);
                withAllBytes(Fixtures.dir("torchtune-tiny-qwen2").resolve("tokenizer.json"), dir.resolve("tokenizer.json"));
                // Qwen2.5's real tokenizer_config.json: ChatML template, eos <|im_end|>, pad <|endoftext|> (all in the tiny vocab)
                Files.copy(Fixtures.dir("chat-templates").resolve("qwen2.5.tokenizer_config.json"), dir.resolve("tokenizer_config.json"));
                return dir;
            }
            case "torchtune-tiny": {
                Path dir = work.resolve("tok-llama3");
                if (Files.isDirectory(dir)) return dir;
                Files.createDirectories(dir);
                withAllBytes(Fixtures.dir("torchtune-tiny").resolve("tokenizer.json"), dir.resolve("tokenizer.json"));
                Files.copy(Fixtures.dir("torchtune-tiny").resolve("tokenizer_config.json"), dir.resolve("tokenizer_config.json"));
                return dir;
            }
            default:
                return Fixtures.dir(name);
        }
    }

    /**
     * torchtune's toy vocabularies lack some of the 256 byte symbols that every real byte-level BPE has (and that
     * the export requires): a copy with the missing ones appended as new ids.
     */
    static void withAllBytes(Path from, Path to) throws IOException {
        ObjectNode root = (ObjectNode) JSON.readTree(from.toFile());
        ObjectNode vocab = (ObjectNode) root.path("model").path("vocab");
        int next = 0;
        for (JsonNode id : vocab) next = Math.max(next, id.asInt() + 1);
        for (JsonNode a : root.path("added_tokens")) next = Math.max(next, a.path("id").asInt() + 1);
        for (int b = 0; b < 256; b++) {
            String sym = new String(Character.toChars(TokenizerMetadata.byteSymbol(b)));
            if (!vocab.has(sym)) vocab.put(sym, next++);
        }
        JSON.writeValue(to.toFile(), root);
    }

    /** Writes a random model; {@code edit} may change the preset config.json first. */
    static Path write(String arch, String preset, Path tokenizerDir, Path out, long seed, Consumer<ObjectNode> edit) {
        try (HfTokenizer tok = HfTokenizer.load(tokenizerDir); PointerScope scope = new PointerScope()) {
            Long bos = tok.bosTokenId().isPresent() ? tok.bosTokenId().getAsLong() : null;
            Long eos = tok.eosTokenIds().isEmpty() ? null : tok.eosTokenIds().iterator().next();
            ObjectNode raw = ModelInit.presetConfig(arch, preset, tok.vocabSize(), bos, eos);
            if (edit != null) edit.accept(raw);
            ModelConfig c = ModelConfig.parse(raw, out.resolve("config.json"));
            Map<String, Tensor> params = ModelInit.randomParameters(c, seed, ScalarType.Float);
            ModelWriter.save(out, c, params, ScalarType.Float, tokenizerDir, null);
            return out;
        }
    }
}
