package dev.jtune.export;

import dev.jtune.cli.CliTest;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * {@code jtune export} from the command line (no llama.cpp needed): the GGUF and the Ollama Modelfile are written,
 * and what cannot be exported exactly is refused with exit code 2, a message naming the cause, and no file left.
 */
class ExportCommandTest {
    @TempDir
    static Path work;
    static Path qwen;

    @BeforeAll
    static void model() throws Exception {
        qwen = TinyModels.write("qwen2", "tiny", TinyModels.tokenizer("qwen2", work), work.resolve("qwen2"), 1, null);
        Files.writeString(qwen.resolve("generation_config.json"),
                "{\"eos_token_id\": [2002, 2000], \"temperature\": 0.7, \"top_p\": 0.8, \"top_k\": 20, \"repetition_penalty\": 1.05}");
    }

    @Test
    void writesGgufAndOllamaModelfile() throws Exception {
        Path dir = Files.createDirectories(work.resolve("out"));
        Path gguf = dir.resolve("qwen2-f16.gguf");
        CliTest.Run r = CliTest.run("export", "--model", qwen.toString(), "--type", "f16", "--out", gguf.toString(), "--ollama-modelfile");
        assertEquals(0, r.code(), r.err());
        byte[] head = Files.readAllBytes(gguf);
        assertEquals("GGUF", new String(head, 0, 4, StandardCharsets.US_ASCII));
        assertEquals(3, head[4]);
        String mf = Files.readString(dir.resolve("Modelfile"));
        assertTrue(mf.contains("FROM ./qwen2-f16.gguf\n"), mf);
        assertTrue(mf.contains("TEMPLATE \"\"\"{{- range .Messages }}<|im_start|>{{ .Role }}"), mf);   // Qwen2.5's ChatML
        assertTrue(mf.contains("PARAMETER stop \"<|im_end|>\""), mf);
        assertTrue(mf.contains("PARAMETER stop \"<|endoftext|>\""), mf);                           // generation_config's eos ids
        assertTrue(mf.contains("PARAMETER temperature 0.7\n") && mf.contains("PARAMETER top_p 0.8\n")
                && mf.contains("PARAMETER top_k 20\n") && mf.contains("PARAMETER repeat_penalty 1.05\n"), mf);
        assertTrue(r.out().contains("wrote " + gguf), r.out());
    }

    @Test
    void unknownTemplateIsReportedNotGuessed() throws Exception {
        Path model = work.resolve("odd-template");
        TinyModels.write("qwen2", "tiny", TinyModels.tokenizer("qwen2", work), model, 2, null);
        String cfg = Files.readString(model.resolve("tokenizer_config.json"));
        Files.writeString(model.resolve("chat_template.jinja"), "{% for m in messages %}[{{ m.role }}] {{ m.content }}\n{% endfor %}");
        Path gguf = Files.createDirectories(work.resolve("odd")).resolve("m.gguf");
        CliTest.Run r = CliTest.run("export", "--model", model.toString(), "--out", gguf.toString(), "--ollama-modelfile");
        assertEquals(0, r.code(), r.err());
        String mf = Files.readString(gguf.resolveSibling("Modelfile"));
        assertFalse(mf.contains("TEMPLATE \"\"\""), mf);
        assertTrue(r.err().contains("not one jtune translates"), r.err());
        assertTrue(cfg.length() > 0);
    }

    @Test
    void refusesWhatCannotBeExportedExactly() throws Exception {
        Path out = Files.createDirectories(work.resolve("refused")).resolve("x.gguf");
        // a byte-level vocabulary without all 256 byte symbols (torchtune's Qwen2-style toy tokenizer as shipped)
        Path toyTok = Files.createDirectories(work.resolve("toy-tok"));
        Files.copy(dev.jtune.tokenizer.Fixtures.dir("torchtune-tiny-qwen2").resolve("tokenizer.json"), toyTok.resolve("tokenizer.json"));
        Path toy = TinyModels.write("llama", "tiny", toyTok, work.resolve("toy"), 3, null);
        assertRefused(CliTest.run("export", "--model", toy.toString(), "--out", out.toString()), "lacks", out);
        assertRefused(CliTest.run("export", "--model", qwen.toString(), "--type", "q5_k", "--out", out.toString()), "unknown type 'q5_k'", out);
        assertRefused(CliTest.run("export", "--model", qwen.toString(), "--format", "gguf-lora", "--out", out.toString()), "needs --adapter", out);
        // rows of 48 do not split into 32-element blocks: llama.cpp has no fallback for q8_0 either
        Path narrow = TinyModels.write("qwen2", "tiny", TinyModels.tokenizer("qwen2", work), work.resolve("narrow"), 4, c -> {
            c.put("hidden_size", 48);
            c.put("num_attention_heads", 4);
            c.put("num_key_value_heads", 2);
        });
        assertRefused(CliTest.run("export", "--model", narrow.toString(), "--type", "q8_0", "--out", out.toString()), "not a multiple of 32", out);
        assertRefused(CliTest.run("export", "--model", qwen.toString(), "--out", work.toString()), "is a directory", out);
    }

    private static void assertRefused(CliTest.Run r, String message, Path out) throws Exception {
        assertEquals(2, r.code(), r.out() + r.err());
        assertTrue(r.err().contains(message), "expected '" + message + "' in: " + r.err());
        assertFalse(r.err().contains("\tat "), "no stack trace for a user error: " + r.err());
        assertFalse(Files.exists(out), "nothing written");
        try (var s = Files.list(out.getParent())) {
            assertTrue(s.noneMatch(p -> p.getFileName().toString().endsWith(".tmp")), "no temporary file left");
        }
    }
}
