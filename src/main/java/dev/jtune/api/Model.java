package dev.jtune.api;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import dev.jtune.data.ChatTemplate;
import dev.jtune.infer.TextGenerator;
import dev.jtune.kernels.Ops;
import dev.jtune.model.CausalLM;
import dev.jtune.peft.AdapterLoader;
import dev.jtune.peft.PeftAdapter;
import dev.jtune.tokenizer.HfTokenizer;
import dev.jtune.tokenizer.StreamingDecoder;
import dev.jtune.util.Devices;
import dev.jtune.util.UserError;
import org.bytedeco.pytorch.global.torch.ScalarType;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Objects;

/**
 * A causal language model with its tokenizer, loaded for generation: a Hugging Face model directory (what
 * {@code jtune train} writes to final/ for full fine-tuning, or any supported model) or a PEFT adapter directory
 * (LoRA; applied to the base model its adapter_config.json names). Holds native memory until {@link #close()}.
 *
 * <pre>{@code
 * try (Model model = Model.load(result.finalModel())) {
 *     String text = model.generate("What is overfitting?", Generation.greedy(8));
 * }
 * }</pre>
 *
 * <p>Not thread-safe: one generation at a time.
 */
public final class Model implements AutoCloseable {
    private static final ObjectMapper JSON = new ObjectMapper();

    private final CausalLM model;
    private final HfTokenizer tokenizer;

    private Model(CausalLM model, HfTokenizer tokenizer) {
        this.model = model;
        this.tokenizer = tokenizer;
    }

    /** Loads {@code dir} on the CPU in float32. */
    public static Model load(Path dir) {
        return load(dir, "cpu");
    }

    /**
     * Loads {@code dir} in float32 on {@code device}.
     *
     * @param dir    a model directory (config.json, *.safetensors, tokenizer.json) or a PEFT adapter directory
     *               (adapter_config.json, whose {@code base_model_name_or_path} is a local model directory)
     * @param device cpu, cuda, cuda:N or auto
     * @throws UserError when the directory is neither, or its files are broken
     */
    public static Model load(Path dir, String device) {
        Objects.requireNonNull(dir, "dir");
        dev.jtune.util.LibTorchNatives.ensureLoaded();   // jtune's LibTorch before any other in this JVM can be picked up
        if (!Files.isDirectory(dir)) throw new UserError(dir + ": not a directory; expected a model or a PEFT adapter directory");
        Path base = dir, adapter = null;
        if (AdapterLoader.isAdapterDir(dir)) {
            adapter = dir;
            base = baseOf(dir);
        }
        HfTokenizer tok = HfTokenizer.load(AdapterLoader.tokenizerDir(base, adapter));
        try {
            CausalLM m = AdapterLoader.load(base, adapter, ScalarType.Float, Devices.parse(device, "device"), Ops.AUTO);
            try {
                tok.requireFitsModel(m.config().vocabSize(), m.config().where());
            } catch (RuntimeException e) {
                m.close();
                throw e;
            }
            return new Model(m, tok);
        } catch (RuntimeException e) {
            tok.close();
            throw e;
        }
    }

    /** The base model directory an adapter names (relative names resolve against the working directory). */
    private static Path baseOf(Path adapterDir) {
        Path cfg = adapterDir.resolve(PeftAdapter.CONFIG);
        String base;
        try {
            JsonNode n = JSON.readTree(cfg.toFile());
            base = n.path("base_model_name_or_path").asText("");
        } catch (IOException e) {
            throw new UserError(cfg + ": not valid JSON: " + e.getMessage().lines().findFirst().orElse(""), e);
        }
        if (base.isEmpty()) throw new UserError(cfg + ": base_model_name_or_path is missing; expected the base model's directory");
        Path p = Path.of(base);
        if (!Files.isDirectory(p)) {
            throw new UserError(cfg + ": base_model_name_or_path " + base + " is not a local directory; expected the base model's directory");
        }
        return p;
    }

    /** Generates a continuation of {@code prompt} (or, for a chat, the answer to it) and returns the new text only. */
    public String generate(String prompt, Generation generation) {
        return generate(prompt, generation, text -> {});
    }

    /**
     * As {@link #generate(String, Generation)}, telling {@code listener} of each new piece of text as it is decoded.
     *
     * @throws UserError when the prompt leaves no room in the model's context
     */
    public String generate(String prompt, Generation generation, TokenListener listener) {
        Objects.requireNonNull(prompt, "prompt");
        Objects.requireNonNull(generation, "generation");
        Objects.requireNonNull(listener, "listener");
        long[] ids;
        if (generation.chat()) {
            List<ChatTemplate.Message> messages = new ArrayList<>();
            if (generation.system() != null) messages.add(new ChatTemplate.Message("system", generation.system()));
            messages.add(new ChatTemplate.Message("user", prompt));
            // chat templates write BOS themselves, so no special tokens are added (as apply_chat_template does)
            ids = tokenizer.encode(ChatTemplate.forTokenizer(tokenizer).render(messages, true), false).ids();
        } else {
            ids = tokenizer.encode(prompt, true).ids();
        }
        if (ids.length >= model.config().maxPositions()) {
            throw new UserError("prompt: " + ids.length + " tokens leave no room in the model's context of " + model.config().maxPositions());
        }
        StreamingDecoder decoder = tokenizer.streamingDecoder(ids, true);   // the prompt is context: keeps the first token's leading space
        StringBuilder text = new StringBuilder();
        new TextGenerator(model).generate(ids, new TextGenerator.Settings(generation.maxNewTokens(), generation.temperature(),
                generation.topP(), generation.seed()), tokenizer.eosTokenIds(), id -> {
                    String piece = decoder.push(id);
                    text.append(piece);
                    listener.onText(piece);
                });
        String rest = decoder.flush();
        if (!rest.isEmpty()) {
            text.append(rest);
            listener.onText(rest);
        }
        return text.toString();
    }

    /** Number of parameters of the model (the base's, plus an adapter's). */
    public long parameterCount() {
        return model.parameterCount();
    }

    /** Frees the weights and the tokenizer. */
    @Override
    public void close() {
        try {
            model.close();
        } finally {
            tokenizer.close();
        }
    }
}
