package dev.jtune.data;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import dev.jtune.config.DataSection;
import dev.jtune.tokenizer.HfTokenizer;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.stream.Stream;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * Multi-turn loss masks for every chat template of the fixtures (src/test/resources/chat-templates, copies of
 * ../shared/fixtures/chat-templates): a two-turn conversation, prepared by jtune, must decode to the render of
 * Python's jinja2 and carry the loss on exactly the reference spans: each assistant turn through its end-of-turn
 * text, nothing else (chat-masking/make_reference.py wrote reference.json).
 */
class MultiTurnMaskTest {
    private static final ObjectMapper JSON = new ObjectMapper();

    @TempDir
    Path dir;

    @BeforeAll
    static void fixDate() {
        ChatTemplate.fixedStrftime = "26 Jul 2024"; // as the reference renders
    }

    @AfterAll
    static void clearDate() {
        ChatTemplate.fixedStrftime = null;
    }

    /** The tiny Qwen2 BPE with {@code template} as its chat template. */
    private HfTokenizer tokenizer(Path template) throws IOException {
        Path tok = Files.createDirectories(dir.resolve(template.getFileName() + "-tok"));
        Files.copy(TestData.resource("/tokenizers/torchtune-tiny-qwen2/tokenizer.json"), tok.resolve("tokenizer.json"));
        Files.copy(TestData.resource("/tokenizers/chat-templates/qwen2.5.tokenizer_config.json"),
                tok.resolve("tokenizer_config.json"));
        Files.copy(template, tok.resolve("chat_template.jinja"));
        return HfTokenizer.load(tok);
    }

    @Test
    void everyAssistantTurnAndItsEndOfTurnTrainOnEveryTemplate() throws IOException {
        JsonNode ref = JSON.readTree(TestData.resource("/chat-masking/reference.json").toFile());
        Path row = TestData.write(dir, "chat.jsonl", JSON.writeValueAsString(
                JSON.createObjectNode().set("messages", ref.get("conversation"))) + "\n");
        List<Path> templates;
        try (Stream<Path> s = Files.list(TestData.resource("/chat-templates"))) {
            templates = s.filter(p -> p.toString().endsWith(".chat_template.jinja")).sorted().toList();
        }
        assertEquals(5, templates.size(), templates.toString());
        for (Path t : templates) {
            String name = t.getFileName().toString().replace(".chat_template.jinja", "");
            JsonNode expected = ref.path("templates").path(name);
            assertFalse(expected.isMissingNode(), name + ": no reference render in reference.json");
            HfTokenizer tok = tokenizer(t);
            TestData.Run run = TestData.prepare(TestData.whole(row, DataSection.Format.CHAT, 1024), tok);
            Example e = run.data().train().get(0);
            List<String> spans = new ArrayList<>();
            expected.get("trained").forEach(n -> spans.add(n.asText()));
            // jtune appends EOS when the last turn has none (the tiny tokenizer's EOS is <|im_end|>)
            String eos = "<|im_end|>";
            String last = spans.get(spans.size() - 1);
            if (!last.contains(eos)) spans.set(spans.size() - 1, last + eos);
            String text = expected.get("text").asText() + (last.contains(eos) ? "" : eos);
            assertEquals(text, tok.decode(e.inputIds(), false), name + ": rendered text");
            assertEquals(spans, TestData.labelledSpans(e, tok), name + ": trained spans");
            assertTrue(run.lines().stream().noneMatch(l -> l.contains("last assistant turn only")), name + ": " + run.lines());
        }
    }

    /**
     * Many rows prepared together go through the chat template's skeleton fast path once a role sequence has been
     * seen often ({@link TemplateSkeletons}); each row prepared alone is rendered by jinjava. Ids and loss masks
     * must be the same.
     */
    @Test
    void masksOfManyRowsEqualThoseOfEachRowPreparedAlone() throws IOException {
        JsonNode ref = JSON.readTree(TestData.resource("/chat-masking/reference.json").toFile());
        int rows = TemplateSkeletons.BUILD_AFTER + 8;
        List<String> lines = new ArrayList<>();
        for (int r = 0; r < rows; r++) {
            var msgs = JSON.createArrayNode();
            for (JsonNode m : ref.get("conversation")) {
                String c = m.get("content").asText();
                msgs.addObject().put("role", m.get("role").asText()).put("content", r % 3 == 0 ? c + " " + r : r + " " + c);
            }
            lines.add(JSON.writeValueAsString(JSON.createObjectNode().set("messages", msgs)));
        }
        Path all = TestData.write(dir, "many.jsonl", String.join("\n", lines) + "\n");
        List<Path> templates;
        try (Stream<Path> s = Files.list(TestData.resource("/chat-templates"))) {
            templates = s.filter(p -> p.toString().endsWith(".chat_template.jinja")).sorted().toList();
        }
        for (Path t : templates) {
            HfTokenizer tok = tokenizer(t);
            List<Example> together = new ArrayList<>(
                    TestData.prepare(TestData.whole(all, DataSection.Format.CHAT, 1024), tok).data().train());
            List<Example> alone = new ArrayList<>();
            for (int r = 0; r < rows; r++) {
                Path one = TestData.write(dir, "one.jsonl", lines.get(r) + "\n");
                alone.addAll(TestData.prepare(TestData.whole(one, DataSection.Format.CHAT, 1024), tok).data().train());
            }
            assertEquals(rows, together.size(), t.toString());
            assertEquals(new java.util.HashSet<>(alone), new java.util.HashSet<>(together), t.toString());
        }
    }
}
