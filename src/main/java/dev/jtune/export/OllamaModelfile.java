package dev.jtune.export;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import dev.jtune.data.ChatTemplate;
import dev.jtune.io.AtomicFiles;
import dev.jtune.io.WriteError;
import dev.jtune.tokenizer.HfTokenizer;
import dev.jtune.util.UserError;

import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.LinkedHashSet;
import java.util.List;
import java.util.Locale;
import java.util.Set;

/**
 * An Ollama Modelfile beside an exported GGUF: {@code FROM ./file.gguf}, the chat template in Ollama's Go-template
 * syntax for the template families jtune recognises (ChatML as Qwen uses it, Llama 3, Phi-3, jtune's default),
 * stop tokens, and the sampling parameters of generation_config.json. A template of another family is reported
 * (Ollama then falls back to the GGUF's own tokenizer.chat_template), never guessed.
 */
public final class OllamaModelfile {
    /** A recognised template family: how Ollama should render it and where a turn ends. */
    record Family(String name, String template, List<String> stops) {}

    static final Family CHATML = new Family("ChatML", """
            {{- range .Messages }}<|im_start|>{{ .Role }}
            {{ .Content }}<|im_end|>
            {{ end }}<|im_start|>assistant
            """, List.of("<|im_start|>", "<|im_end|>"));
    static final Family LLAMA3 = new Family("Llama 3", """
            {{- range .Messages }}<|start_header_id|>{{ .Role }}<|end_header_id|>

            {{ .Content }}<|eot_id|>{{ end }}<|start_header_id|>assistant<|end_header_id|>

            """, List.of("<|start_header_id|>", "<|end_header_id|>", "<|eot_id|>"));
    static final Family PHI3 = new Family("Phi-3", """
            {{- range .Messages }}<|{{ .Role }}|>
            {{ .Content }}<|end|>
            {{ end }}<|assistant|>
            """, List.of("<|end|>", "<|user|>", "<|assistant|>"));

    private static final ObjectMapper JSON = new ObjectMapper();

    private OllamaModelfile() {}

    /** Writes {@code Modelfile} in the GGUF's directory; returns its path. */
    public static Path write(Path modelDir, Path adapterDir, Path gguf) {
        Path tokenizerDir = adapterDir != null && Files.isRegularFile(adapterDir.resolve("tokenizer.json")) ? adapterDir : modelDir;
        Path file = gguf.toAbsolutePath().getParent().resolve("Modelfile");
        String text;
        try (HfTokenizer tok = HfTokenizer.load(tokenizerDir)) {
            text = render(tok, modelDir, gguf.getFileName().toString());
        }
        try {
            AtomicFiles.write(file, text.getBytes(StandardCharsets.UTF_8));
        } catch (IOException e) {
            throw WriteError.writing(file, "the Ollama Modelfile", e);
        }
        return file;
    }

    static String render(HfTokenizer tok, Path modelDir, String ggufName) {
        ChatTemplate ct = ChatTemplate.forTokenizer(tok);
        StringBuilder sb = new StringBuilder();
        sb.append("# Written by jtune export. Create the model with: ollama create NAME -f Modelfile\n");
        sb.append("FROM ./").append(ggufName).append('\n');
        Family family = family(ct);
        Set<String> stops = new LinkedHashSet<>();
        if (family != null) {
            sb.append("# chat template: ").append(family.name()).append('\n');
            sb.append("TEMPLATE \"\"\"").append(family.template()).append("\"\"\"\n");
            stops.addAll(family.stops());
        } else {
            sb.append("# The tokenizer's chat template is of a family jtune does not translate to Ollama's syntax;\n")
              .append("# Ollama uses the GGUF's tokenizer.chat_template instead. Add a TEMPLATE here if it renders wrongly.\n");
            System.err.println("note: the chat template is not one jtune translates for Ollama (ChatML, Llama 3, Phi-3, jtune's default); Modelfile has no TEMPLATE");
        }
        for (long id : tok.eosTokenIds()) tok.idToToken(id).ifPresent(stops::add);
        for (String s : stops) sb.append("PARAMETER stop ").append(quote(s)).append('\n');
        JsonNode gen = generationConfig(modelDir);
        if (gen != null) {
            parameter(sb, gen, "temperature", "temperature");
            parameter(sb, gen, "top_p", "top_p");
            parameter(sb, gen, "top_k", "top_k");
            parameter(sb, gen, "min_p", "min_p");
            parameter(sb, gen, "repetition_penalty", "repeat_penalty");
        }
        return sb.toString();
    }

    /** Ollama's template for jtune's own default template (system text, ### Question / ### Answer turns). */
    static Family jtuneDefault(String eos) {
        return new Family("jtune default", """
                {{- range $i, $m := .Messages }}{{ if eq .Role "system" }}{{ .Content }}

                {{ else if eq .Role "user" }}### Question:
                {{ .Content }}

                {{ else if eq .Role "assistant" }}### Answer:
                {{ .Content }}%s

                {{ end }}{{ end }}### Answer:
                """.formatted(eos), List.of("### Question:"));
    }

    static Family family(ChatTemplate ct) {
        if (ct.isDefault()) return jtuneDefault(ct.eosToken());
        String s = ct.source();
        if (s.contains("<|im_start|>") && s.contains("<|im_end|>")) return CHATML;
        if (s.contains("<|start_header_id|>") && s.contains("<|eot_id|>")) return LLAMA3;
        if (s.contains("<|assistant|>") && s.contains("<|end|>")) return PHI3;
        return null;
    }

    private static void parameter(StringBuilder sb, JsonNode gen, String key, String ollamaKey) {
        JsonNode v = gen.get(key);
        if (v != null && v.isNumber()) sb.append("PARAMETER ").append(ollamaKey).append(' ').append(number(v)).append('\n');
    }

    private static String number(JsonNode v) {
        return v.isIntegralNumber() ? Long.toString(v.asLong()) : String.format(Locale.ROOT, "%s", v.asDouble());
    }

    private static JsonNode generationConfig(Path modelDir) {
        Path f = modelDir.resolve("generation_config.json");
        if (!Files.isRegularFile(f)) return null;
        try {
            return JSON.readTree(f.toFile());
        } catch (IOException e) {
            throw new UserError(f + ": not valid JSON: " + e.getMessage());
        }
    }

    private static String quote(String s) {
        return "\"" + s.replace("\\", "\\\\").replace("\"", "\\\"") + "\"";
    }
}
