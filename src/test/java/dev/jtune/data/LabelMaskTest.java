package dev.jtune.data;

import static dev.jtune.data.TestData.instruction;
import static dev.jtune.data.TestData.labelledSpans;
import static dev.jtune.data.TestData.prepare;
import static dev.jtune.data.TestData.write;
import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNotEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.jtune.config.DataSection;
import dev.jtune.tokenizer.HfTokenizer;
import java.nio.file.Path;
import java.util.List;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/** Which tokens carry loss, for text / instruction / chat, decoded back to text. */
class LabelMaskTest {
    @TempDir
    Path dir;

    @Test
    void textTrainsOnEverythingPlusEos() throws Exception {
        Path f = write(dir, "t.csv", "text\n\"Gradient descent\nfollows the slope.\"\n");
        DataSection o = TestData.whole(f, DataSection.Format.TEXT, 64);
        Example e = prepare(o, TestData.gpt2()).data().train().get(0);
        assertArrayEquals(e.inputIds(), e.labels());
        assertEquals(List.of("Gradient descent\nfollows the slope.<|endoftext|>"), labelledSpans(e, TestData.gpt2()));
    }

    @Test
    void instructionWithDefaultTemplateTrainsOnResponsePlusEos() throws Exception {
        Path f = write(dir, "i.csv", "prompt,response\nWhat is overfitting?,\"Memorising noise:\n- train up\n- test down\"\n");
        PreparedData d = prepare(instruction(f, 128).toBuilder().systemPrompt("Be brief.").build(), TestData.gpt2()).data();
        HfTokenizer tok = TestData.gpt2();
        Example e = d.train().get(0);
        assertEquals(List.of("Memorising noise:\n- train up\n- test down<|endoftext|>"), labelledSpans(e, tok));
        assertEquals("<|endoftext|>Be brief.\n\n### Question:\nWhat is overfitting?\n\n### Answer:\n",
                TestData.decodeUnlabelled(e, tok));
        assertTrue(d.template().isDefault());
        assertEquals(ChatTemplate.DEFAULT_TEMPLATE, d.template().source());
    }

    @Test
    void defaultTemplateGenerationPromptIsEverythingUpToTheAnswer() {
        ChatTemplate t = ChatTemplate.forTokenizer(TestData.gpt2());
        List<ChatTemplate.Message> q = List.of(new ChatTemplate.Message("system", "S"),
                new ChatTemplate.Message("user", "Q1"), new ChatTemplate.Message("assistant", "A1"),
                new ChatTemplate.Message("user", "Q2"));
        assertEquals("<|endoftext|>S\n\n### Question:\nQ1\n\n### Answer:\nA1<|endoftext|>\n\n### Question:\nQ2\n\n"
                + "### Answer:\n", t.render(q, true));
    }

    @Test
    void instructionWithQwenChatMlTemplate() throws Exception {
        Path f = write(dir, "i.jsonl", "{\"prompt\": \"Capital of France?\", \"response\": \"Paris.\"}\n");
        HfTokenizer tok = TestData.qwen25();
        Example e = prepare(instruction(f, 128), tok).data().train().get(0);
        // the template's own end of turn is the EOS (<|im_end|>): nothing appended
        assertEquals(List.of("Paris.<|im_end|>\n"), labelledSpans(e, tok));
        assertEquals("<|im_start|>system\nYou are Qwen, created by Alibaba Cloud. You are a helpful assistant.<|im_end|>\n"
                + "<|im_start|>user\nCapital of France?<|im_end|>\n<|im_start|>assistant\n", TestData.decodeUnlabelled(e, tok));
        assertEquals(tok.tokenToId("<|im_end|>").getAsLong(), e.inputIds()[e.length() - 2]);
    }

    @Test
    void chatTrainsOnEveryAssistantTurn() throws Exception {
        Path f = write(dir, "c.jsonl", "{\"messages\": [{\"role\": \"system\", \"content\": \"Be terse.\"},"
                + " {\"role\": \"user\", \"content\": \"Hi\"}, {\"role\": \"assistant\", \"content\": \"Hello!\"},"
                + " {\"role\": \"user\", \"content\": \"What is a p-value?\"},"
                + " {\"role\": \"assistant\", \"content\": \"P(data this extreme | H0).\"},"
                + " {\"role\": \"user\", \"content\": \"trailing question, no answer\"}]}\n");
        HfTokenizer tok = TestData.qwen25();
        DataSection o = TestData.whole(f, DataSection.Format.CHAT, 256);
        TestData.Run run = prepare(o, tok);
        Example e = run.data().train().get(0);
        assertEquals(List.of("Hello!<|im_end|>\n", "P(data this extreme | H0).<|im_end|>\n"), labelledSpans(e, tok));
        // the whole sequence is the template's render of the conversation up to the last answer
        ChatTemplate t = run.data().template();
        String full = t.render(List.of(new ChatTemplate.Message("system", "Be terse."), new ChatTemplate.Message("user", "Hi"),
                new ChatTemplate.Message("assistant", "Hello!"), new ChatTemplate.Message("user", "What is a p-value?"),
                new ChatTemplate.Message("assistant", "P(data this extreme | H0).")), false);
        assertEquals(full, tok.decode(e.inputIds(), false));
        assertEquals(2, run.lines().size(), run.lines().toString()); // no note: ChatML is prefix-consistent
    }

    @Test
    void chatInCsvHoldsJsonText() throws Exception {
        Path f = write(dir, "c.csv", "id,messages\n1,\"[{\"\"role\"\": \"\"user\"\", \"\"content\"\": \"\"Hi\"\"},"
                + " {\"\"role\"\": \"\"assistant\"\", \"\"content\"\": \"\"Yo\"\"}]\"\n2,not json\n3,\"{\"\"role\"\": 1}\"\n"
                + "4,\"[{\"\"role\"\": \"\"user\"\", \"\"content\"\": \"\"no answer\"\"}]\"\n");
        DataSection o = TestData.whole(f, DataSection.Format.CHAT, 256);
        TestData.Run run = prepare(o, TestData.qwen25());
        assertEquals("data: 4 rows read, 1 kept, 3 dropped (1 without assistant message, 2 bad messages at line 3)",
                run.lines().get(0));
        assertEquals(List.of("Yo<|im_end|>\n"), labelledSpans(run.data().train().get(0), TestData.qwen25()));
    }

    @Test
    void qwen3TemplateTrainsEveryTurnFoundInTheWholeRender() throws Exception {
        // Qwen3 adds an empty think block to the last assistant turn only, so a turn renders differently once
        // later messages follow; each turn is then located in the render of the whole conversation
        Path f = write(dir, "c.jsonl", "{\"messages\": [{\"role\": \"user\", \"content\": \"Hi\"},"
                + " {\"role\": \"assistant\", \"content\": \"Hello!\"}, {\"role\": \"user\", \"content\": \"Bye\"},"
                + " {\"role\": \"assistant\", \"content\": \"Bye!\"}]}\n"
                + "{\"messages\": [{\"role\": \"user\", \"content\": \"One\"}, {\"role\": \"assistant\", \"content\": \"Two\"}]}\n");
        DataSection o = TestData.whole(f, DataSection.Format.CHAT, 256);
        HfTokenizer tok = TestData.qwen3();
        TestData.Run run = prepare(o, tok);
        assertEquals(List.of("Hello!<|im_end|>\n", "<think>\n\n</think>\n\nBye!<|im_end|>\n"),
                labelledSpans(run.data().train().get(0), tok));
        assertEquals(List.of("<think>\n\n</think>\n\nTwo<|im_end|>\n"), labelledSpans(run.data().train().get(1), tok));
        assertTrue(run.lines().stream().noneMatch(l -> l.contains("note:")), run.lines().toString());
    }

    @Test
    void aTurnThatCannotBeFoundFallsBackToTheLastTurn() {
        // earlier answers rendered in capitals: neither prefix-consistent nor found verbatim in the whole render
        ChatTemplate t = ChatTemplate.of("{% for m in messages %}<{{ m.role }}>{% if m.role == 'assistant' and not loop.last %}"
                + "{{ m.content | upper }}{% else %}{{ m.content }}{% endif %}</>{% endfor %}"
                + "{% if add_generation_prompt %}<assistant>{% endif %}", "test template", "", "");
        ChatSegments.Cut cut = new ChatSegments(t).cut(List.of(new ChatTemplate.Message("user", "q"),
                new ChatTemplate.Message("assistant", "yes"), new ChatTemplate.Message("user", "r"),
                new ChatTemplate.Message("assistant", "b")));
        assertTrue(cut.lastTurnOnly());
        assertEquals(List.of(new ChatSegments.Segment("<user>q</><assistant>YES</><user>r</><assistant>", false),
                new ChatSegments.Segment("b</>", true)), cut.segments());
    }

    @Test
    void endOfTurnStopsAtALineOrTagBoundary() {
        assertEquals("<|end|>\n".length(), ChatSegments.commonPrefix("x<|end|>\n<|user|>", 1, "<|end|>\n<|im_end|>"));
        assertEquals("<|im_end|>\n".length(), ChatSegments.commonPrefix("x<|im_end|>\n<|im_start|>", 1, "<|im_end|>\n"));
    }

    @Test
    void trainOnInputsLabelsEverything() throws Exception {
        Path f = write(dir, "i.csv", "prompt,response\nQ?,A.\n");
        DataSection o = instruction(f, 64).toBuilder().trainOnInputs(true).build();
        Example e = prepare(o, TestData.gpt2()).data().train().get(0);
        assertArrayEquals(e.inputIds(), e.labels());
        Example masked = prepare(instruction(f, 64), TestData.gpt2()).data().train().get(0);
        assertArrayEquals(e.inputIds(), masked.inputIds());
        assertNotEquals(e.targetTokens(), masked.targetTokens());
    }

    @Test
    void truncateKeepsThePromptAndCutsTheResponse() throws Exception {
        String longAnswer = "word ".repeat(60).strip();
        Path f = write(dir, "l.csv", "prompt,response\nShort?,Yes.\nLong?," + longAnswer + "\n"
                + "\"" + "very long prompt ".repeat(40).strip() + "\",No.\n");
        TestData.Run run = prepare(instruction(f, 32), TestData.gpt2());
        assertEquals("data: 3 rows read, 2 kept, 1 dropped (1 prompt too long)", run.lines().get(0));
        assertEquals("data: 2 train / 0 validation / 0 test examples, 48 train tokens, longest 32, 1 truncated to 32",
                run.lines().get(1));
        assertEquals(16, run.data().train().get(0).length()); // 16 + 32 = 48
        Example cut = run.data().train().get(1);
        assertEquals(32, cut.length());
        assertEquals("<|endoftext|>### Question:\nLong?\n\n### Answer:\n", TestData.decodeUnlabelled(cut, TestData.gpt2()));
        assertTrue(labelledSpans(cut, TestData.gpt2()).get(0).startsWith("word word"));

        DataSection drop = instruction(f, 32).toBuilder().onLongRow(DataSection.OnLongRow.DROP).build();
        TestData.Run dropped = prepare(drop, TestData.gpt2());
        assertEquals("data: 3 rows read, 1 kept, 2 dropped (1 too long, 1 prompt too long)", dropped.lines().get(0));
    }

    @Test
    void textTruncation() throws Exception {
        Path f = write(dir, "t.jsonl", "{\"text\": \"" + "token ".repeat(50).strip() + "\"}\n");
        DataSection o = TestData.whole(f, DataSection.Format.TEXT, 16);
        Example e = prepare(o, TestData.gpt2()).data().train().get(0);
        assertEquals(16, e.length());
        assertArrayEquals(e.inputIds(), e.labels());
    }
}
