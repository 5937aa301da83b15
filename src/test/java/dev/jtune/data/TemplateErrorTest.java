package dev.jtune.data;

import static dev.jtune.data.TestData.instruction;
import static dev.jtune.data.TestData.write;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;

import dev.jtune.config.DataSection;
import dev.jtune.tokenizer.HfTokenizer;
import dev.jtune.util.UserError;
import java.nio.file.Files;
import java.nio.file.Path;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * A chat template whose render with add_generation_prompt is not a prefix of the render with the answer: the loss
 * mask cannot be placed, and the row is a bad row whose message says so in full (file, line, what, which template).
 */
class TemplateErrorTest {
    static final String NOT_A_PREFIX = ": the render with add_generation_prompt is not a prefix of the render with"
            + " the answer; cannot tell prompt from response";

    @TempDir
    Path dir;

    /** The GPT-2 tokenizer with a template that writes the contents and, for the generation prompt, a marker. */
    private HfTokenizer nonPrefixTemplate() throws Exception {
        Path tok = Files.createDirectory(dir.resolve("tok"));
        Files.copy(Path.of("configs/tokenizers/gpt2/tokenizer.json"), tok.resolve("tokenizer.json"));
        Files.copy(Path.of("configs/tokenizers/gpt2/tokenizer_config.json"), tok.resolve("tokenizer_config.json"));
        Files.writeString(tok.resolve("chat_template.jinja"), "{% for m in messages %}{{ m['content'] }}{% endfor %}"
                + "{% if add_generation_prompt %}[answer]{% endif %}");
        return HfTokenizer.load(tok);
    }

    @Test
    void failingRowNamesFileLineAndTheWholeProblem() throws Exception {
        Path f = write(dir, "d.csv", "prompt,response\nWhat is SQL?,A query language.\n");
        DataSection strict = instruction(f, 64).toBuilder().onBadRow(DataSection.OnBadRow.FAIL).build();
        try (HfTokenizer tok = nonPrefixTemplate()) {
            UserError e = assertThrows(UserError.class, () -> DatasetPreparer.prepare(strict, 1, tok, null));
            assertEquals(f + ":2: chat template error: chat template" + NOT_A_PREFIX
                    + " (data.on_bad_row is fail; set it to skip to drop such rows)", e.getMessage());

            UserError skipped = assertThrows(UserError.class, () -> TestData.prepare(instruction(f, 64), tok));
            assertEquals(f + ": no training examples left (1 row read, 0 kept, 1 dropped (1 chat template error at line 2))",
                    skipped.getMessage());
        }
    }

    @Test
    void defaultTemplateMessageKeepsItsExplanation() {
        // jtune's default template is prefix-consistent, so no row reaches this message; it must still be whole
        ChatTemplate template = ChatTemplate.forTokenizer(TestData.gpt2());
        assertEquals(true, template.isDefault());
        assertEquals("default chat template" + NOT_A_PREFIX, ChatSegments.notAPrefix(template));
    }
}
