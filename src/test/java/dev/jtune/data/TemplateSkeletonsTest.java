package dev.jtune.data;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Random;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;

/** The skeleton fast path of chat-template rendering gives jinjava's bytes, on every fixture template. */
class TemplateSkeletonsTest {
    /** Contents meant to break a skeleton: template literals, whitespace at the ends, Jinja syntax, unicode. */
    private static final String[] ODD = {"", " ", "\n", "\t", "  lead", "trail  ", "\n\nmid\n\n", "<think>",
            "</think>", "<think>\nreasoning\n</think>\n\nanswer", "{{", "{%", "}}", "%}", "{# x #}", "<|im_end|>",
            "<|im_start|>", "<|end|>", "<|endoftext|>", "<tool_call>", "</tool_call>", "<tool_response>", "/think",
            "/no_think", "/system_override", "user", "assistant", "system", "\\n", "'", "\"", "<|start|>",
            "<|channel|>", "<|message|>", "analysis", "final", "ünïcødé 🚀 日本語", "\r\n", "### Answer:\n",
            "\u00a0nbsp\u00a0", "\uE000\uE001"};
    private static final String[] WORDS = "data model train loss token batch answer question file row".split(" ");
    private static final List<List<String>> SHAPES = List.of(List.of("user", "assistant"),
            List.of("system", "user", "assistant"), List.of("user"), List.of("system", "user"),
            List.of("user", "assistant", "user", "assistant"), List.of("user", "assistant", "user"));

    @BeforeAll
    static void fixDate() {
        ChatTemplate.fixedStrftime = "26 Jul 2024";
    }

    @AfterAll
    static void unfixDate() {
        ChatTemplate.fixedStrftime = null;
    }

    private static List<ChatTemplate> templates() throws IOException {
        JsonNode ctx = new ObjectMapper().readTree(ChatTemplateTest.resource("context1.json"));
        String bos = ctx.get("bos_token").asText();
        String eos = ctx.get("eos_token").asText();
        List<ChatTemplate> out = new ArrayList<>();
        out.add(ChatTemplate.of(ChatTemplate.DEFAULT_TEMPLATE, "default", "<s>", "</s>"));
        out.add(ChatTemplate.of(ChatTemplate.DEFAULT_TEMPLATE, "default without bos", "", "<|endoftext|>"));
        List<Path> files;
        try (var s = Files.list(Path.of("../shared/fixtures/chat-templates"))) {
            files = s.filter(p -> p.toString().endsWith(".chat_template.jinja")).sorted().toList();
        }
        assertEquals(5, files.size(), files.toString());
        for (Path f : files) out.add(ChatTemplate.of(Files.readString(f), f.getFileName().toString(), bos, eos));
        JsonNode cfg = new ObjectMapper().readTree(TestData.resource(
                "/tokenizers/chat-templates/qwen2.5.tokenizer_config.json").toFile());
        out.add(ChatTemplate.of(cfg.get("chat_template").asText(), "qwen2.5 tokenizer_config.json",
                "", cfg.get("eos_token").asText()));
        return out;
    }

    private static String content(Random rng) {
        StringBuilder sb = new StringBuilder();
        int parts = rng.nextInt(5);
        for (int i = 0; i < parts; i++) {
            sb.append(rng.nextInt(3) == 0 ? ODD[rng.nextInt(ODD.length)] : WORDS[rng.nextInt(WORDS.length)]);
            if (rng.nextBoolean()) sb.append(' ');
        }
        return rng.nextInt(4) == 0 ? sb.toString() : sb.toString().strip();
    }

    /**
     * A template's literals are found without recursion per character: a 200,000-character literal (or an apostrophe in
     * template text that opens a long "literal") overflowed java.util.regex's stack in a fresh test JVM.
     */
    @Test
    void literalsOfALongStringDoNotOverflowTheStack() throws Exception {
        String longText = "a".repeat(200_000);
        String source = "{{ '" + longText + "' }}{{ \"it\\\"s\" }}";
        List<String>[] found = new List[1];
        Thread small = new Thread(null, () -> found[0] = TemplateSkeletons.literals(source), "small-stack", 256 * 1024);
        small.start();
        small.join();
        assertTrue(found[0] != null && found[0].contains(longText), "the long literal");
        assertTrue(found[0].contains("it\\\"s"), "an escaped quote stays inside its literal: " + found[0]);
    }

    @Test
    void fastRenderEqualsJinjavaByteForByteOnAdversarialRows() throws IOException {
        Random rng = new Random(28);
        for (ChatTemplate t : templates()) {
            TemplateSkeletons fast = new TemplateSkeletons(t.source(), t::renderWithJinjava);
            int hits = 0;
            int rows = 0;
            for (List<String> shape : SHAPES) {
                for (boolean agp : new boolean[] {false, true}) {
                    for (int r = 0; r < 60; r++, rows++) {
                        List<ChatTemplate.Message> msgs = new ArrayList<>();
                        // plain rows first, so the skeleton is built, then adversarial ones
                        for (String role : shape) {
                            msgs.add(new ChatTemplate.Message(role, r < TemplateSkeletons.BUILD_AFTER + 4
                                    ? WORDS[rng.nextInt(WORDS.length)] + " " + r : content(rng)));
                        }
                        String want;
                        try {
                            want = t.renderWithJinjava(msgs, agp);
                        } catch (dev.jtune.util.UserError e) {
                            want = null;   // raise_exception: the fast path must not render it either
                        }
                        String got = fast.render(msgs, agp);
                        if (got != null) {
                            hits++;
                            assertEquals(want, got, t + " " + msgs + " agp=" + agp);
                        }
                        String viaTemplate = null;
                        try {
                            viaTemplate = t.render(msgs, agp);
                        } catch (dev.jtune.util.UserError e) {
                            // same as jinjava
                        }
                        assertEquals(want, viaTemplate, t + " " + msgs + " agp=" + agp);
                    }
                }
            }
            // the fast path does render rows (else the comparison above proves nothing)
            assertTrue(hits > (t.isDefault() ? rows / 4 : 0), t.source().substring(0, 40) + ": " + hits + " of " + rows + " rows fast");
        }
    }

    @Test
    void contentDependentTemplatesFallBackToJinjava() {
        // strips content: the skeleton is refused
        ChatTemplate strip = ChatTemplate.of("{% for m in messages %}[{{ m.content | trim }}]{% endfor %}", "strip", "", "");
        TemplateSkeletons s1 = new TemplateSkeletons(strip.source(), strip::renderWithJinjava);
        // branches on a literal: rows holding it fall back, others are fast
        ChatTemplate branch = ChatTemplate.of("{% for m in messages %}{% if '<think>' in m.content %}T{% endif %}"
                + "<{{ m.content }}>{% endfor %}", "branch", "", "");
        TemplateSkeletons s2 = new TemplateSkeletons(branch.source(), branch::renderWithJinjava);
        // branches on the length: refused
        ChatTemplate length = ChatTemplate.of("{% for m in messages %}{% if m.content|length > 99 %}L{% endif %}"
                + "{{ m.content }}{% endfor %}", "length", "", "");
        TemplateSkeletons s3 = new TemplateSkeletons(length.source(), length::renderWithJinjava);
        List<ChatTemplate.Message> plain = List.of(new ChatTemplate.Message("user", "hi"));
        List<ChatTemplate.Message> think = List.of(new ChatTemplate.Message("user", "a <think> b"));
        for (int i = 0; i < TemplateSkeletons.BUILD_AFTER + 1; i++) {
            s1.render(plain, false);
            s2.render(plain, false);
            s3.render(plain, false);
        }
        assertNull(s3.render(plain, false));
        assertNull(s1.render(plain, false));
        assertEquals("<hi>", s2.render(plain, false));
        assertNull(s2.render(think, false));
        assertEquals("T<a <think> b>", branch.render(think, false));
    }
}
