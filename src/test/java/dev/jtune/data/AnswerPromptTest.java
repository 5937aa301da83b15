package dev.jtune.data;

import static dev.jtune.data.TestData.prepare;
import static dev.jtune.data.TestData.write;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.jtune.config.DataSection;
import dev.jtune.tokenizer.HfTokenizer;
import java.nio.file.Path;
import java.util.List;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/** Held-out rows as questions to answer: the prompt through the last user turn with the generation prompt, the last answer. */
class AnswerPromptTest {
    @TempDir
    Path dir;

    @Test
    void chatPromptIsTheTemplatesRenderUpToTheLastAnswer() throws Exception {
        Path f = write(dir, "c.jsonl", "{\"messages\": [{\"role\": \"system\", \"content\": \"Be terse.\"},"
                + " {\"role\": \"user\", \"content\": \"Hi\"}, {\"role\": \"assistant\", \"content\": \"Hello!\"},"
                + " {\"role\": \"user\", \"content\": \"What is a p-value?\"},"
                + " {\"role\": \"assistant\", \"content\": \"P(data this extreme | H0).\"},"
                + " {\"role\": \"user\", \"content\": \"trailing question, no answer\"}]}\n");
        HfTokenizer tok = TestData.qwen25();
        DataSection o = TestData.whole(f, DataSection.Format.CHAT, 256).toBuilder().validationFile(f).testFile(f).build();
        PreparedData d = prepare(o, tok).data();
        assertEquals(1, d.validationPrompts().size());
        assertEquals(1, d.testPrompts().size());
        AnswerPrompt p = d.testPrompts().get(0);
        String prompt = d.template().render(List.of(new ChatTemplate.Message("system", "Be terse."), new ChatTemplate.Message("user", "Hi"),
                new ChatTemplate.Message("assistant", "Hello!"), new ChatTemplate.Message("user", "What is a p-value?")), true);
        assertEquals(prompt, tok.decode(p.promptIds(), false));
        assertTrue(prompt.endsWith("<|im_start|>assistant\n"), prompt);
        assertEquals("What is a p-value?", p.question());
        assertEquals("P(data this extreme | H0).", p.reference());
    }

    @Test
    void instructionPromptEndsWithTheDefaultTemplatesAnswerHeader() throws Exception {
        Path f = write(dir, "i.csv", "prompt,response\nWhat is overfitting?,Memorising noise.\n¿Qué es la mediana?,El valor central.\n");
        HfTokenizer tok = TestData.gpt2();
        DataSection o = TestData.instruction(f, 128).toBuilder().systemPrompt("Be brief.").validationFile(f).build();
        PreparedData d = prepare(o, tok).data();
        assertEquals(2, d.validationPrompts().size());
        assertEquals(List.of(), d.testPrompts());
        AnswerPrompt p = d.validationPrompts().get(1);
        assertEquals("<|endoftext|>Be brief.\n\n### Question:\n¿Qué es la mediana?\n\n### Answer:\n", tok.decode(p.promptIds(), false));
        assertEquals("El valor central.", p.reference());
    }

    @Test
    void textRowsHaveNoPrompts() throws Exception {
        Path f = write(dir, "t.csv", "text\nGradient descent follows the slope.\n");
        DataSection o = TestData.whole(f, DataSection.Format.TEXT, 64).toBuilder().validationFile(f).build();
        PreparedData d = prepare(o, TestData.gpt2()).data();
        assertEquals(1, d.validation().size());
        assertEquals(List.of(), d.validationPrompts());
    }
}
