package dev.jtune.data;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import dev.jtune.util.UserError;
import java.io.IOException;
import java.io.InputStream;
import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.List;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.CsvSource;

class ChatTemplateTest {
    @BeforeAll
    static void fixDate() {
        ChatTemplate.fixedStrftime = "26 Jul 2024"; // as the reference renders (README)
    }

    @AfterAll
    static void unfixDate() {
        ChatTemplate.fixedStrftime = null;
    }

    static String resource(String name) throws IOException {
        try (InputStream in = ChatTemplateTest.class.getResourceAsStream("/chat-templates/" + name)) {
            if (in == null) throw new IOException("missing test resource " + name);
            return new String(in.readAllBytes(), StandardCharsets.UTF_8);
        }
    }

    static List<ChatTemplate.Message> messages(JsonNode ctx) {
        List<ChatTemplate.Message> out = new ArrayList<>();
        for (JsonNode m : ctx.get("messages")) {
            out.add(new ChatTemplate.Message(m.get("role").asText(), m.get("content").asText()));
        }
        return out;
    }

    /** Renders of Python jinja2 configured like transformers (see src/test/resources/chat-templates/README.txt). */
    @ParameterizedTest
    @CsvSource({"qwen2.5,1", "qwen2.5,2", "qwen3,1", "qwen3,2", "phi-3-mini,1", "phi-3-mini,2",
            "smollm3,1", "smollm3,2", "gpt-oss,1", "gpt-oss,2"})
    void matchesPythonJinja2(String model, int context) throws IOException {
        JsonNode ctx = new ObjectMapper().readTree(resource("context" + context + ".json"));
        ChatTemplate t = ChatTemplate.of(resource(model + ".chat_template.jinja"), model,
                ctx.get("bos_token").asText(), ctx.get("eos_token").asText());
        String expected = resource(model + ".context" + context + ".txt");
        assertEquals(expected, t.render(messages(ctx), ctx.get("add_generation_prompt").asBoolean()));
    }

    /**
     * A message's content is data, never template: Python's jinja2 (as transformers renders) writes it verbatim, so a
     * row about Jinja itself must not be rendered again (jinjava's nested interpretation turned "{{{# x #}" into "{{").
     */
    @Test
    void jinjaSyntaxInsideAContentIsCopiedVerbatim() throws IOException {
        ChatTemplate t = ChatTemplate.of(resource("qwen2.5.chat_template.jinja"), "qwen2.5", "", "<|im_end|>");
        String content = "{{{# x #} and {{ 1 + 1 }} and {% if true %}yes{% endif %} and {# note #}";
        String out = t.render(List.of(new ChatTemplate.Message("user", content)), true);
        assertTrue(out.contains("<|im_start|>user\n" + content + "<|im_end|>"), out);
    }

    @Test
    void raiseExceptionAndRenderErrorsBecomeUserErrorsNamingTheTemplate() {
        ChatTemplate t = ChatTemplate.of("{% if messages[0]['role'] != 'user' %}{{ raise_exception('Conversation must"
                + " start with user') }}{% endif %}ok", "my-template", "", "");
        UserError e = assertThrows(UserError.class, () -> t.render(List.of(new ChatTemplate.Message("assistant", "x")), false));
        assertTrue(e.getMessage().startsWith("my-template: "), e.getMessage());
        assertTrue(e.getMessage().contains("Conversation must start with user"), e.getMessage());
        assertEquals("ok", t.render(List.of(new ChatTemplate.Message("user", "x")), false));
        ChatTemplate broken = ChatTemplate.of("{% for m in messages %}{{ m.content", "broken-template", "", "");
        UserError e2 = assertThrows(UserError.class, () -> broken.render(List.of(new ChatTemplate.Message("user", "x")), false));
        assertTrue(e2.getMessage().startsWith("broken-template: "), e2.getMessage());
    }

    @Test
    void pythonStringMethods() {
        ChatTemplate t = ChatTemplate.of("{{ messages[0].content.strip('\\n') }}|{{ messages[0].content.split('b')[-1].lstrip() }}"
                + "|{{ messages[0].content.startswith('\\n') }}|{{ {'a': 1}.get('z', 'd') }}|{% set ns = namespace(i=messages|length - 1) %}{{ ns.i }}",
                "t", "", "");
        assertEquals("abc|c\n|true|d|0", t.render(List.of(new ChatTemplate.Message("user", "\nabc\n")), false));
    }
}
