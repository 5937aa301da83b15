package dev.jtune.export;

import com.fasterxml.jackson.core.StreamReadConstraints;
import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import dev.jtune.data.ChatTemplate;
import dev.jtune.tokenizer.HfTokenizer;
import dev.jtune.util.UserError;

import java.io.IOException;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.HashMap;
import java.util.HashSet;
import java.util.Iterator;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.Set;
import java.util.regex.Pattern;

/**
 * The {@code tokenizer.*} keys of a GGUF, from a Hugging Face tokenizer.json, for the two tokenizers llama.cpp
 * implements that a jtune model can have:
 * <ul>
 *   <li>byte-level BPE ({@code tokenizer.ggml.model = gpt2}): tokens and merges as stored, and the pre-tokenizer
 *       recognised from tokenizer.json's split regex: GPT-2's ({@code gpt2}), Llama 3's ({@code llama-bpe}) or
 *       Qwen2's ({@code qwen2}), which llama.cpp implements by name;</li>
 *   <li>SentencePiece-style BPE with byte fallback ({@code llama}: Llama 2, Mistral, Phi-3): tokens with scores that
 *       order llama.cpp's merges as the tokenizer.json's merge ranks do, and {@code <0xHH>} byte tokens.</li>
 * </ul>
 * Anything else (another regex, a normalizer llama.cpp lacks, WordPiece/Unigram) is refused with the reason:
 * a GGUF whose tokenizer silently differs from training would be worse than none.
 */
final class TokenizerMetadata {
    /** llama.cpp's token types (llama_token_type). */
    static final int NORMAL = 1, UNKNOWN = 2, CONTROL = 3, USER_DEFINED = 4, BYTE = 6;

    /** Llama 3's pre-tokenizer regex (tokenizer.json's Split pattern); llama.cpp calls it llama-bpe. */
    static final String LLAMA3_REGEX = "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}{1,3}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+";
    /** Qwen2's: Llama 3's with single digits. */
    static final String QWEN2_REGEX = "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+";
    private static final Pattern BYTE_TOKEN = Pattern.compile("<0x[0-9A-Fa-f]{2}>");

    private static final ObjectMapper JSON = new ObjectMapper();
    static {
        JSON.getFactory().setStreamReadConstraints(StreamReadConstraints.builder().maxStringLength(Integer.MAX_VALUE).build());
    }

    /** What was recognised (for the export summary). */
    public record Summary(String model, String pre, int tokens, int merges, List<String> notes) {}

    private TokenizerMetadata() {}

    /**
     * Adds the tokenizer keys for a model of {@code modelVocab} ids.
     *
     * @param tokenizerDir the directory with tokenizer.json (and tokenizer_config.json etc.)
     */
    public static Summary add(GgufMetadata md, Path tokenizerDir, int modelVocab) {
        try (HfTokenizer tok = HfTokenizer.load(tokenizerDir)) {
            Path file = tok.tokenizerFile();
            JsonNode root = read(file);
            JsonNode model = root.path("model");
            String type = model.path("type").asText("");
            if (!type.equals("BPE")) {
                throw new UserError(file + ": model.type '" + type + "' cannot be exported to GGUF by jtune; expected BPE"
                        + " (byte-level like GPT-2/Llama 3/Qwen2, or SentencePiece-style with byte_fallback like Llama 2)");
            }
            List<String> notes = new ArrayList<>();
            boolean byteFallback = model.path("byte_fallback").asBoolean(false);
            String pre;
            String ggmlModel;
            if (byteFallback) {
                ggmlModel = "llama";
                pre = "default";
                checkSentencePiece(root, file);
            } else {
                ggmlModel = "gpt2";
                pre = byteLevelPre(root, file, notes);
            }

            Map<String, Integer> vocab = new HashMap<>();
            String[] byId = new String[modelVocab];
            for (Iterator<Map.Entry<String, JsonNode>> it = model.path("vocab").fields(); it.hasNext(); ) {
                Map.Entry<String, JsonNode> e = it.next();
                int id = e.getValue().asInt();
                put(byId, vocab, e.getKey(), id, file, modelVocab);
            }
            Set<Integer> special = new HashSet<>();
            Set<Integer> added = new HashSet<>();
            for (JsonNode a : root.path("added_tokens")) {
                int id = a.path("id").asInt();
                put(byId, vocab, a.path("content").asText(), id, file, modelVocab);
                added.add(id);
                if (a.path("special").asBoolean(false)) special.add(id);
            }
            List<String> merges = merges(model.path("merges"), file);
            if (ggmlModel.equals("gpt2")) checkAllBytes(vocab, file);

            Integer unk = null;
            if (model.hasNonNull("unk_token")) unk = vocab.get(model.get("unk_token").asText());

            List<String> tokens = new ArrayList<>(modelVocab);
            int[] types = new int[modelVocab];
            for (int id = 0; id < modelVocab; id++) {
                String t = byId[id];
                if (t == null) {
                    // convert_hf_to_gguf.py pads the same way: the model has more rows than the tokenizer has ids
                    tokens.add("[PAD" + id + "]");
                    types[id] = USER_DEFINED;
                    continue;
                }
                tokens.add(t);
                if (special.contains(id)) types[id] = CONTROL;
                else if (unk != null && id == unk) types[id] = UNKNOWN;
                else if (ggmlModel.equals("llama") && BYTE_TOKEN.matcher(t).matches()) types[id] = BYTE;
                else if (added.contains(id)) types[id] = USER_DEFINED;
                else types[id] = NORMAL;
            }
            if (ggmlModel.equals("llama") && unk != null) types[unk] = UNKNOWN;

            md.putString("tokenizer.ggml.model", ggmlModel);
            md.putString("tokenizer.ggml.pre", pre);
            md.putStrings("tokenizer.ggml.tokens", tokens);
            if (ggmlModel.equals("llama")) md.putF32s("tokenizer.ggml.scores", scores(byId, vocab, merges, types));
            md.putI32s("tokenizer.ggml.token_type", types);
            if (ggmlModel.equals("gpt2")) md.putStrings("tokenizer.ggml.merges", merges);
            specialIds(md, tok, unk, modelVocab, file);
            if (ggmlModel.equals("llama")) md.putBool("tokenizer.ggml.add_space_prefix", true);
            ChatTemplate template = ChatTemplate.forTokenizer(tok);
            md.putString("tokenizer.chat_template", template.source());
            if (template.isDefault()) notes.add("the tokenizer has no chat template: wrote jtune's default (the one training used)");
            return new Summary(ggmlModel, pre, modelVocab, ggmlModel.equals("gpt2") ? merges.size() : 0, notes);
        }
    }

    private static void put(String[] byId, Map<String, Integer> vocab, String token, int id, Path file, int modelVocab) {
        if (id < 0 || id >= modelVocab) {
            throw new UserError(file + ": token '" + token + "' has id " + id + ", outside the model's vocab_size " + modelVocab
                    + " (config.json); llama.cpp needs one embedding row per token");
        }
        if (byId[id] != null && !byId[id].equals(token)) {
            throw new UserError(file + ": id " + id + " is both '" + byId[id] + "' and '" + token + "'");
        }
        byId[id] = token;
        vocab.put(token, id);
    }

    /** Byte-level BPE: which of llama.cpp's pre-tokenizers this one is, or a refusal naming what differs. */
    private static String byteLevelPre(JsonNode root, Path file, List<String> notes) {
        JsonNode norm = root.get("normalizer");
        if (norm != null && !norm.isNull()) {
            if (norm.path("type").asText().equals("NFC")) {
                notes.add("tokenizer.json normalises to NFC and llama.cpp does not: text that is already NFC (almost all) tokenizes the same");
            } else {
                throw new UserError(file + ": normalizer " + norm + " has no llama.cpp equivalent for byte-level BPE");
            }
        }
        JsonNode pt = root.path("pre_tokenizer");
        String t = pt.path("type").asText("");
        if (t.equals("ByteLevel")) {
            if (pt.path("add_prefix_space").asBoolean(false)) {
                throw new UserError(file + ": ByteLevel pre_tokenizer with add_prefix_space=true has no llama.cpp equivalent");
            }
            if (!pt.path("use_regex").asBoolean(true)) {
                throw new UserError(file + ": ByteLevel pre_tokenizer without its regex has no llama.cpp equivalent");
            }
            return "gpt-2";
        }
        if (t.equals("Sequence")) {
            JsonNode seq = pt.path("pretokenizers");
            if (seq.size() == 2 && seq.get(0).path("type").asText().equals("Split")
                    && seq.get(1).path("type").asText().equals("ByteLevel")
                    && !seq.get(1).path("use_regex").asBoolean(true)
                    && !seq.get(1).path("add_prefix_space").asBoolean(false)
                    && seq.get(0).path("behavior").asText().equals("Isolated")
                    && !seq.get(0).path("invert").asBoolean(false)) {
                String regex = seq.get(0).path("pattern").path("Regex").asText("");
                if (regex.equals(LLAMA3_REGEX)) {
                    if (!root.path("model").path("ignore_merges").asBoolean(false)) {
                        throw new UserError(file + ": Llama 3 pre-tokenizer with ignore_merges=false: llama.cpp's llama-bpe always ignores merges for whole words");
                    }
                    return "llama-bpe";
                }
                if (regex.equals(QWEN2_REGEX)) {
                    if (root.path("model").path("ignore_merges").asBoolean(false)) {
                        throw new UserError(file + ": Qwen2 pre-tokenizer with ignore_merges=true: llama.cpp's qwen2 never ignores merges");
                    }
                    return "qwen2";
                }
                throw new UserError(file + ": pre-tokenizer regex " + regex + " is not one llama.cpp implements by name;"
                        + " jtune maps GPT-2's, Llama 3's (llama-bpe) and Qwen2's");
            }
        }
        throw new UserError(file + ": pre_tokenizer " + abbreviate(pt.toString()) + " is not one jtune can map to llama.cpp"
                + " (expected GPT-2's ByteLevel, or Split(Llama 3 / Qwen2 regex) + ByteLevel)");
    }

    /** SentencePiece-style BPE: spaces become ▁ and one ▁ is prepended; nothing else may touch the text. */
    private static void checkSentencePiece(JsonNode root, Path file) {
        JsonNode norm = root.get("normalizer");
        JsonNode pt = root.get("pre_tokenizer");
        boolean normalizerForm = norm != null && norm.path("type").asText().equals("Sequence")
                && norm.path("normalizers").size() == 2
                && norm.path("normalizers").get(0).path("type").asText().equals("Prepend")
                && norm.path("normalizers").get(0).path("prepend").asText().equals("\u2581")
                && norm.path("normalizers").get(1).path("type").asText().equals("Replace")
                && norm.path("normalizers").get(1).path("pattern").path("String").asText().equals(" ")
                && norm.path("normalizers").get(1).path("content").asText().equals("\u2581")
                && (pt == null || pt.isNull());
        boolean metaspaceForm = (norm == null || norm.isNull()) && pt != null && pt.path("type").asText().equals("Metaspace")
                && pt.path("replacement").asText().equals("\u2581")
                && List.of("first", "always").contains(pt.path("prepend_scheme").asText("always"))
                && !pt.path("split").asBoolean(true);
        if (!normalizerForm && !metaspaceForm) {
            throw new UserError(file + ": byte_fallback BPE whose normalizer " + abbreviate(String.valueOf(norm)) + " / pre_tokenizer "
                    + abbreviate(String.valueOf(pt)) + " is not SentencePiece's (prepend ▁, spaces to ▁); llama.cpp's llama tokenizer would differ");
        }
    }

    /**
     * A byte-level vocabulary must hold the 256 byte symbols: Hugging Face silently drops a byte it lacks (when there is
     * no unk token) and merges across the gap, llama.cpp keeps the pieces apart, so their ids would differ.
     */
    private static void checkAllBytes(Map<String, Integer> vocab, Path file) {
        List<String> missing = new ArrayList<>();
        for (int b = 0; b < 256; b++) {
            String sym = new String(Character.toChars(byteSymbol(b)));
            if (!vocab.containsKey(sym)) missing.add(String.format(Locale.ROOT, "0x%02X '%s'", b, sym));
        }
        if (!missing.isEmpty()) {
            throw new UserError(file + ": the byte-level vocabulary lacks " + missing.size() + " of the 256 byte symbols ("
                    + String.join(", ", missing.subList(0, Math.min(5, missing.size()))) + (missing.size() > 5 ? ", …" : "")
                    + "); Hugging Face drops such bytes and llama.cpp does not, so texts containing them would tokenize differently");
        }
    }

    /** GPT-2's bytes_to_unicode: printable Latin-1 bytes stand for themselves, the others map to U+0100 onwards. */
    static int byteSymbol(int b) {
        if ((b >= '!' && b <= '~') || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE && b <= 0xFF)) return b;
        int n = 0;
        for (int i = 0; i < b; i++) {
            if (!((i >= '!' && i <= '~') || (i >= 0xA1 && i <= 0xAC) || (i >= 0xAE && i <= 0xFF))) n++;
        }
        return 256 + n;
    }

    private static List<String> merges(JsonNode node, Path file) {
        List<String> out = new ArrayList<>(node.size());
        for (JsonNode m : node) {
            if (m.isTextual()) {
                out.add(m.asText());
            } else if (m.isArray() && m.size() == 2) {
                String a = m.get(0).asText(), b = m.get(1).asText();
                if (a.contains(" ") || b.contains(" ")) {
                    throw new UserError(file + ": merge " + m + " contains a space, which GGUF's 'a b' merge strings cannot represent");
                }
                out.add(a + " " + b);
            } else {
                throw new UserError(file + ": model.merges entries must be \"a b\" or [\"a\", \"b\"], found " + m);
            }
        }
        return out;
    }

    /**
     * SentencePiece scores: llama.cpp merges the adjacent pair whose joined token has the highest score, Hugging Face
     * the pair of lowest merge rank; so a token's score is minus the rank of the first merge that makes it (control,
     * byte and single-character tokens, which no merge makes, score 0 as in SentencePiece's own models).
     */
    private static float[] scores(String[] byId, Map<String, Integer> vocab, List<String> merges, int[] types) {
        float[] scores = new float[byId.length];
        boolean[] seen = new boolean[byId.length];
        for (int rank = 0; rank < merges.size(); rank++) {
            String m = merges.get(rank);
            Integer id = vocab.get(m.replace(" ", ""));
            if (id == null || seen[id]) continue;
            seen[id] = true;
            scores[id] = -rank;
        }
        return scores;
    }

    private static void specialIds(GgufMetadata md, HfTokenizer tok, Integer unk, int modelVocab, Path file) {
        if (tok.bosTokenId().isPresent()) md.putU32("tokenizer.ggml.bos_token_id", tok.bosTokenId().getAsLong());
        if (!tok.eosTokenIds().isEmpty()) md.putU32("tokenizer.ggml.eos_token_id", tok.eosTokenIds().iterator().next());
        if (unk != null) md.putU32("tokenizer.ggml.unknown_token_id", unk);
        if (tok.padTokenId().isPresent()) md.putU32("tokenizer.ggml.padding_token_id", tok.padTokenId().getAsLong());
        // What tokenizer.json's post-processor adds, found by asking the tokenizer jtune trains with.
        long[] plain = tok.encode("a", false).ids();
        long[] withSpecial = tok.encode("a", true).ids();
        int at = indexOf(withSpecial, plain);
        if (at < 0) {
            throw new UserError(file + ": the post_processor changes the text's own tokens (" + Arrays.toString(plain) + " -> "
                    + Arrays.toString(withSpecial) + "); llama.cpp can only add a BOS and/or an EOS");
        }
        long[] before = Arrays.copyOfRange(withSpecial, 0, at);
        long[] after = Arrays.copyOfRange(withSpecial, at + plain.length, withSpecial.length);
        boolean addBos = before.length == 1 && tok.bosTokenId().isPresent() && before[0] == tok.bosTokenId().getAsLong();
        boolean addEos = after.length == 1 && !tok.eosTokenIds().isEmpty() && after[0] == tok.eosTokenIds().iterator().next();
        if (before.length > (addBos ? 1 : 0) || after.length > (addEos ? 1 : 0)) {
            throw new UserError(file + ": the post_processor adds " + Arrays.toString(before) + " before and " + Arrays.toString(after)
                    + " after the text; llama.cpp can only add the BOS and the EOS token");
        }
        md.putBool("tokenizer.ggml.add_bos_token", addBos);
        md.putBool("tokenizer.ggml.add_eos_token", addEos);
    }

    private static int indexOf(long[] hay, long[] needle) {
        outer:
        for (int i = 0; i + needle.length <= hay.length; i++) {
            for (int j = 0; j < needle.length; j++) if (hay[i + j] != needle[j]) continue outer;
            return i;
        }
        return -1;
    }

    private static JsonNode read(Path file) {
        try {
            return JSON.readTree(file.toFile());
        } catch (IOException e) {
            throw new UserError(file + ": cannot read: " + e.getMessage(), e);
        }
    }

    private static String abbreviate(String s) {
        return s.length() > 200 ? s.substring(0, 200) + "…" : s;
    }
}
