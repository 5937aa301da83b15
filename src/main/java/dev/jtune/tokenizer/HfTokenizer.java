package dev.jtune.tokenizer;

import ai.djl.huggingface.tokenizers.HuggingFaceTokenizer;
import com.fasterxml.jackson.core.JacksonException;
import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import dev.jtune.util.UserError;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Collections;
import java.util.LinkedHashMap;
import java.util.LinkedHashSet;
import java.util.List;
import java.util.Map;
import java.util.Objects;
import java.util.Optional;
import java.util.OptionalLong;
import java.util.Set;

/**
 * A Hugging Face tokenizer directory: tokenizer.json (required, run by the Rust {@code tokenizers} library through
 * DJL) plus the optional tokenizer_config.json, special_tokens_map.json, generation_config.json, config.json and
 * chat_template.jinja that say which tokens are BOS/EOS/PAD, how long inputs may be and how chats are rendered.
 *
 * <p>Encoding follows tokenizer.json exactly: special tokens are added by its post-processor (a BOS for Llama-style
 * TemplateProcessing, nothing for GPT-2's ByteLevel), never truncated, never padded. Decoding is the Rust decoder's
 * output; Python's {@code clean_up_tokenization_spaces} post-pass is not applied (it would break
 * {@code decode(encode(s)) == s}).
 *
 * <p>encode/decode may be called from several threads; {@link #close()} must come after all of them.
 */
public final class HfTokenizer implements AutoCloseable {
    /** Ids from a tokenizer.json whose model_max_length is at least this are "unlimited" (HF writes 1e30). */
    private static final long ABSURD_MAX_LENGTH = 1L << 40;

    private static final ObjectMapper JSON = new ObjectMapper();

    static {
        DjlNative.ensureOffline();
    }

    private final Path tokenizerFile;
    private final HuggingFaceTokenizer djl;
    private final TokenizerJson vocab;
    private final Long bosId;
    private final Set<Long> eosIds;
    private final Long padId;
    private final long modelMaxLength;
    private final String chatTemplate;
    private final Map<String, String> namedChatTemplates;
    private final List<String> warnings;
    private volatile boolean closed;

    public record Encoding(long[] ids, String[] tokens) {}

    private HfTokenizer(Path tokenizerFile, HuggingFaceTokenizer djl, TokenizerJson vocab, Long bosId,
                        Set<Long> eosIds, Long padId, long modelMaxLength, String chatTemplate,
                        Map<String, String> namedChatTemplates, List<String> warnings) {
        this.tokenizerFile = tokenizerFile;
        this.djl = djl;
        this.vocab = vocab;
        this.bosId = bosId;
        this.eosIds = eosIds;
        this.padId = padId;
        this.modelMaxLength = modelMaxLength;
        this.chatTemplate = chatTemplate;
        this.namedChatTemplates = namedChatTemplates;
        this.warnings = warnings;
    }

    /**
     * Loads a model or tokenizer directory (or a tokenizer.json file directly; its directory is then searched for
     * the optional files).
     *
     * @throws UserError if tokenizer.json is missing or malformed, or an optional file is not valid JSON
     */
    public static HfTokenizer load(Path modelOrTokenizerDir) {
        Objects.requireNonNull(modelOrTokenizerDir, "modelOrTokenizerDir");
        Path dir;
        Path file;
        if (Files.isRegularFile(modelOrTokenizerDir)) {
            file = modelOrTokenizerDir.toAbsolutePath();
            dir = file.getParent();
        } else if (Files.isDirectory(modelOrTokenizerDir)) {
            dir = modelOrTokenizerDir;
            file = dir.resolve("tokenizer.json");
            if (!Files.isRegularFile(file)) {
                throw new UserError(file + ": not found; expected a Hugging Face tokenizer.json in " + dir
                        + " (tokenizer.model / vocab.json-only tokenizers are not supported: save with a fast tokenizer)");
            }
        } else {
            throw new UserError(modelOrTokenizerDir + ": no such directory; expected a model or tokenizer directory"
                    + " containing tokenizer.json");
        }

        HuggingFaceTokenizer djl = openWithDjl(file);
        try {
            return configure(file, dir, djl);
        } catch (RuntimeException e) {
            djl.close();
            throw e;
        }
    }

    private static HuggingFaceTokenizer openWithDjl(Path file) {
        DjlNative.ensureOffline();
        try {
            // The file, not the directory: DJL would otherwise also read tokenizer_config.json and let it
            // override parts of tokenizer.json (lower-casing, prefix space); here tokenizer.json alone decides.
            return HuggingFaceTokenizer.builder()
                    .optTokenizerPath(file)
                    .optTruncation(false) // DJL's default silently cuts at 512 tokens
                    .optPadding(false)
                    .optAddSpecialTokens(true) // overridden per encode() call
                    .build();
        } catch (IOException e) {
            throw new UserError(file + ": cannot read: " + e.getMessage(), e);
        } catch (RuntimeException e) {
            // The Rust side reports serde errors as plain RuntimeExceptions, e.g.
            // "expected value at line 1 column 1" or "EOF while parsing an object at line 9 column 3".
            if (e.getClass().getName().startsWith("ai.djl.engine.")) {
                throw e; // the native library failed to load: not the user's file
            }
            throw new UserError(file + ": not a valid Hugging Face tokenizer.json: " + e.getMessage(), e);
        }
    }

    private static HfTokenizer configure(Path file, Path dir, HuggingFaceTokenizer djl) {
        TokenizerJson vocab = TokenizerJson.read(file);
        List<String> warnings = new ArrayList<>();
        JsonNode tokConfig = readOptional(dir.resolve("tokenizer_config.json"));
        JsonNode specialMap = readOptional(dir.resolve("special_tokens_map.json"));
        JsonNode genConfig = readOptional(dir.resolve("generation_config.json"));
        JsonNode modelConfig = readOptional(dir.resolve("config.json"));

        // transformers: special_tokens_map.json overrides tokenizer_config.json for the same key
        Long bos = tokenId(vocab, dir, "bos_token", specialMap, tokConfig, warnings);
        Long eos = tokenId(vocab, dir, "eos_token", specialMap, tokConfig, warnings);
        Long pad = tokenId(vocab, dir, "pad_token", specialMap, tokConfig, warnings);

        Set<Long> eosIds = new LinkedHashSet<>();
        if (eos != null) {
            eosIds.add(eos);
        }
        addIds(eosIds, genConfig, "eos_token_id", dir.resolve("generation_config.json"));
        addIds(eosIds, modelConfig, "eos_token_id", dir.resolve("config.json"));
        if (bos == null) {
            bos = firstId(genConfig, modelConfig, "bos_token_id", dir);
        }
        if (pad == null) {
            pad = firstId(genConfig, modelConfig, "pad_token_id", dir);
        }

        long maxLength = Long.MAX_VALUE;
        JsonNode ml = tokConfig == null ? null : tokConfig.get("model_max_length");
        if (ml != null && ml.isIntegralNumber() && ml.canConvertToLong()
                && ml.longValue() > 0 && ml.longValue() < ABSURD_MAX_LENGTH) {
            maxLength = ml.longValue();
        }

        Map<String, String> named = new LinkedHashMap<>();
        String template = null;
        JsonNode ct = tokConfig == null ? null : tokConfig.get("chat_template");
        Path configFile = dir.resolve("tokenizer_config.json");
        if (ct != null && ct.isTextual()) {
            template = ct.textValue();
        } else if (ct != null && ct.isArray()) {
            for (JsonNode entry : ct) {
                JsonNode name = entry.get("name");
                JsonNode text = entry.get("template");
                if (name == null || !name.isTextual() || text == null || !text.isTextual()) {
                    throw new UserError(configFile + ": \"chat_template\" list entries need string \"name\" and"
                            + " \"template\"");
                }
                named.put(name.textValue(), text.textValue());
            }
            template = named.get("default");
            if (template == null) {
                warnings.add(configFile + ": \"chat_template\" has no template named \"default\" (has "
                        + named.keySet() + ")");
            }
        } else if (ct != null && !ct.isNull()) {
            throw new UserError(configFile + ": \"chat_template\" must be a string or a list of {name, template}");
        }
        // transformers >= 4.43 saves the template as chat_template.jinja; when present it wins.
        Path jinja = dir.resolve("chat_template.jinja");
        if (Files.isRegularFile(jinja)) {
            try {
                template = Files.readString(jinja);
            } catch (IOException e) {
                throw new UserError(jinja + ": cannot read: " + e.getMessage(), e);
            }
        }

        return new HfTokenizer(file, djl, vocab, bos, Collections.unmodifiableSet(eosIds), pad, maxLength, template,
                Collections.unmodifiableMap(named), List.copyOf(warnings));
    }

    private static JsonNode readOptional(Path file) {
        if (!Files.isRegularFile(file)) {
            return null;
        }
        try {
            JsonNode node = JSON.readTree(file.toFile());
            if (node == null || !node.isObject()) {
                throw new UserError(file + ": expected a JSON object");
            }
            return node;
        } catch (JacksonException e) {
            throw new UserError(file + ": not valid JSON: " + e.getOriginalMessage()
                    + (e.getLocation() == null ? "" : " at line " + e.getLocation().getLineNr()
                    + ", column " + e.getLocation().getColumnNr()), e);
        } catch (IOException e) {
            throw new UserError(file + ": cannot read: " + e.getMessage(), e);
        }
    }

    /** A special token given by name ("<s>" or {"content": "<s>", ...}); its id comes from tokenizer.json. */
    private static Long tokenId(TokenizerJson vocab, Path dir, String key, JsonNode specialMap, JsonNode tokConfig,
                                List<String> warnings) {
        String source = "special_tokens_map.json";
        JsonNode node = specialMap == null ? null : specialMap.get(key);
        if (node == null || node.isNull()) {
            source = "tokenizer_config.json";
            node = tokConfig == null ? null : tokConfig.get(key);
        }
        if (node == null || node.isNull()) {
            return null;
        }
        JsonNode content = node.isObject() ? node.get("content") : node;
        if (content == null || !content.isTextual()) {
            throw new UserError(dir.resolve(source) + ": \"" + key + "\" must be a string or {\"content\": string}");
        }
        Long id = vocab.tokenToId.get(content.textValue());
        if (id == null) {
            warnings.add(dir.resolve(source) + ": " + key + " \"" + content.textValue()
                    + "\" is not in tokenizer.json's vocabulary; ignored");
        }
        return id;
    }

    private static void addIds(Set<Long> out, JsonNode config, String key, Path file) {
        JsonNode node = config == null ? null : config.get(key);
        if (node == null || node.isNull()) {
            return;
        }
        if (node.isIntegralNumber()) {
            out.add(node.longValue());
        } else if (node.isArray()) {
            for (JsonNode n : node) {
                if (!n.isIntegralNumber()) {
                    throw new UserError(file + ": \"" + key + "\" must be an integer or a list of integers, found " + node);
                }
                out.add(n.longValue());
            }
        } else {
            throw new UserError(file + ": \"" + key + "\" must be an integer or a list of integers, found " + node);
        }
    }

    private static Long firstId(JsonNode genConfig, JsonNode modelConfig, String key, Path dir) {
        Set<Long> ids = new LinkedHashSet<>();
        addIds(ids, genConfig, key, dir.resolve("generation_config.json"));
        if (ids.isEmpty()) {
            addIds(ids, modelConfig, key, dir.resolve("config.json"));
        }
        return ids.isEmpty() ? null : ids.iterator().next();
    }

    /** Encodes text; with {@code addSpecialTokens} the post-processor of tokenizer.json adds what it says. */
    public Encoding encode(String text, boolean addSpecialTokens) {
        checkOpen();
        ai.djl.huggingface.tokenizers.Encoding e = djl.encode(text, addSpecialTokens, false);
        return new Encoding(e.getIds(), e.getTokens());
    }

    public String decode(long[] ids, boolean skipSpecialTokens) {
        checkOpen();
        return djl.decode(ids, skipSpecialTokens);
    }

    public OptionalLong bosTokenId() {
        return bosId == null ? OptionalLong.empty() : OptionalLong.of(bosId);
    }

    /** Union of tokenizer_config's eos_token and generation_config.json / config.json eos_token_id. */
    public Set<Long> eosTokenIds() {
        return eosIds;
    }

    public OptionalLong padTokenId() {
        return padId == null ? OptionalLong.empty() : OptionalLong.of(padId);
    }

    /**
     * The id batches are padded with: the pad token, else the first end-of-sequence token (as fine-tuning scripts set
     * {@code tokenizer.pad_token = tokenizer.eos_token}), else 0. Padding never counts in the loss (label -100).
     */
    public long paddingId() {
        if (padId != null) return padId;
        if (!eosIds.isEmpty()) return eosIds.iterator().next();
        return 0;
    }

    /** Number of distinct tokens, added tokens included (Python's {@code len(tokenizer)}). */
    public int vocabSize() {
        return vocab.tokenToId.size();
    }

    /** The largest id any token has, plus one: the least embedding size that covers the vocabulary. */
    public long idUpperBound() {
        return vocab.idToToken.keySet().stream().mapToLong(Long::longValue).max().orElse(-1) + 1;
    }

    /**
     * Refuses a model whose embedding has fewer rows than this tokenizer has ids, before any token reaches it (the
     * embedding lookup would fail with LibTorch's "index out of range"). A tokenizer with fewer ids than the model's
     * {@code vocab_size} is fine: transformers pads embeddings to a multiple (those rows are never looked up).
     *
     * @param modelVocabSize the model's {@code vocab_size} (its embedding rows)
     * @param modelConfig    where that comes from (the model's config.json), for the message
     * @throws UserError naming both files, both sizes and what to do
     */
    public void requireFitsModel(long modelVocabSize, String modelConfig) {
        long needed = idUpperBound();
        if (needed <= modelVocabSize) return;
        throw new UserError(tokenizerFile + ": the tokenizer's ids go up to " + (needed - 1) + " ('" + vocab.idToToken.get(needed - 1)
                + "'), so it needs " + needed + " embedding rows (highest id + 1, added and special tokens included), but the model has vocab_size "
                + modelVocabSize + " (" + modelConfig + "): this tokenizer does not belong to this model. Use the model's own tokenizer"
                + " (model.tokenizer: the model's directory, or the tokenizer it was trained with), or resize the model's embeddings"
                + " to at least " + needed + " rows (transformers: model.resize_token_embeddings(" + needed + "), then save_pretrained)");
    }

    public OptionalLong tokenToId(String token) {
        Long id = vocab.tokenToId.get(token);
        return id == null ? OptionalLong.empty() : OptionalLong.of(id);
    }

    public Optional<String> idToToken(long id) {
        return Optional.ofNullable(vocab.idToToken.get(id));
    }

    /** Whether tokenizer.json marks this id as a special added token (what {@code skipSpecialTokens} drops). */
    public boolean isSpecial(long id) {
        return vocab.specialIds.contains(id);
    }

    /** chat_template.jinja if present, else tokenizer_config's "chat_template" (the "default" one of a list). */
    public Optional<String> chatTemplate() {
        return Optional.ofNullable(chatTemplate);
    }

    /** All templates of a list-form "chat_template" by name (empty for the string form). */
    public Map<String, String> namedChatTemplates() {
        return namedChatTemplates;
    }

    /** tokenizer_config's model_max_length, or {@link Long#MAX_VALUE} if absent or absurd (HF writes 1e30). */
    public long modelMaxLength() {
        return modelMaxLength;
    }

    /** Non-fatal oddities found while loading (e.g. an eos_token that is not in the vocabulary), for the CLI to show. */
    public List<String> warnings() {
        return warnings;
    }

    public Path tokenizerFile() {
        return tokenizerFile;
    }

    /** Incremental detokenizer for generation that skips special tokens; see {@link StreamingDecoder}. */
    public StreamingDecoder streamingDecoder() {
        return new StreamingDecoder(this, new long[0], true);
    }

    /**
     * Incremental detokenizer that first takes {@code contextIds} (e.g. the prompt) silently, so that the first
     * generated token keeps the leading space it has in context.
     */
    public StreamingDecoder streamingDecoder(long[] contextIds, boolean skipSpecialTokens) {
        return new StreamingDecoder(this, contextIds, skipSpecialTokens);
    }

    private void checkOpen() {
        if (closed) {
            throw new IllegalStateException("tokenizer " + tokenizerFile + " is closed");
        }
    }

    @Override
    public synchronized void close() {
        if (!closed) {
            closed = true;
            djl.close();
        }
    }
}
