package dev.jtune.data;

import dev.jtune.util.Labels;
import dev.jtune.config.DataSection;
import dev.jtune.tokenizer.HfTokenizer;
import java.io.ByteArrayOutputStream;
import java.io.IOException;
import java.io.PrintStream;
import java.io.UncheckedIOException;
import java.net.URISyntaxException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;

/** Shared helpers: tokenizers (loaded once), files, preparing with a captured log, decoding labelled spans. */
final class TestData {
    private TestData() {}

    private static HfTokenizer gpt2;
    private static HfTokenizer qwen25;
    private static HfTokenizer qwen3;

    static synchronized HfTokenizer gpt2() {
        if (gpt2 == null) gpt2 = HfTokenizer.load(Path.of("configs/tokenizers/gpt2"));
        return gpt2;
    }

    /** torchtune's tiny Qwen2 BPE (has the ChatML specials) with Qwen2.5's tokenizer_config.json (its template). */
    static synchronized HfTokenizer qwen25() {
        if (qwen25 == null) {
            try {
                Path dir = Files.createTempDirectory("jtune-qwen25-tok");
                Files.copy(resource("/tokenizers/torchtune-tiny-qwen2/tokenizer.json"), dir.resolve("tokenizer.json"));
                Files.copy(resource("/tokenizers/chat-templates/qwen2.5.tokenizer_config.json"),
                        dir.resolve("tokenizer_config.json"));
                qwen25 = HfTokenizer.load(dir);
            } catch (IOException e) {
                throw new UncheckedIOException(e);
            }
        }
        return qwen25;
    }

    /** The tiny Qwen2 BPE with Qwen3's chat template (chat_template.jinja) and Qwen2.5's special-token config. */
    static synchronized HfTokenizer qwen3() {
        if (qwen3 == null) {
            try {
                Path dir = Files.createTempDirectory("jtune-qwen3-tok");
                Files.copy(resource("/tokenizers/torchtune-tiny-qwen2/tokenizer.json"), dir.resolve("tokenizer.json"));
                Files.copy(resource("/tokenizers/chat-templates/qwen2.5.tokenizer_config.json"),
                        dir.resolve("tokenizer_config.json"));
                Files.copy(resource("/chat-templates/qwen3.chat_template.jinja"), dir.resolve("chat_template.jinja"));
                qwen3 = HfTokenizer.load(dir);
            } catch (IOException e) {
                throw new UncheckedIOException(e);
            }
        }
        return qwen3;
    }

    static Path resource(String name) {
        try {
            return Path.of(TestData.class.getResource(name).toURI());
        } catch (URISyntaxException | NullPointerException e) {
            throw new IllegalStateException("missing test resource " + name, e);
        }
    }

    static Path write(Path dir, String name, String content) throws IOException {
        Path p = dir.resolve(name);
        Files.writeString(p, content, StandardCharsets.UTF_8);
        return p;
    }

    record Run(PreparedData data, List<String> lines) {}

    /** The split seed of {@link #prepare(DataSection, HfTokenizer)}. */
    static final long SEED = 1;

    static Run prepare(DataSection o, HfTokenizer tok) {
        return prepare(o, SEED, tok);
    }

    static Run prepare(DataSection o, long seed, HfTokenizer tok) {
        ByteArrayOutputStream buf = new ByteArrayOutputStream();
        PrintStream ps = new PrintStream(buf, true, StandardCharsets.UTF_8);
        PreparedData d = DatasetPreparer.prepare(o, seed, tok, ps);
        String out = buf.toString(StandardCharsets.UTF_8);
        return new Run(d, List.of(out.split("\n")));
    }

    /** The data section for {@code file} in {@code format}, every other key at its default (10% validation). */
    static DataSection.Builder data(Path file, DataSection.Format format, int maxSeqLength) {
        return DataSection.builder(file).format(format).maxSeqLength(maxSeqLength);
    }

    /** {@link #data} with nothing held out: every row trains. */
    static DataSection whole(Path file, DataSection.Format format, int maxSeqLength) {
        return data(file, format, maxSeqLength).validationSplit(0).build();
    }

    /** Instruction rows with columns prompt/response, nothing held out. */
    static DataSection instruction(Path file, int max) {
        return whole(file, DataSection.Format.INSTRUCTION, max);
    }

    /** The decoded text of each maximal run of labelled positions. */
    static List<String> labelledSpans(Example e, HfTokenizer tok) {
        List<String> out = new ArrayList<>();
        long[] l = e.labels();
        int i = 0;
        while (i < l.length) {
            if (l[i] == Labels.IGNORE_INDEX) {
                i++;
                continue;
            }
            int j = i;
            while (j < l.length && l[j] != Labels.IGNORE_INDEX) j++;
            out.add(tok.decode(Arrays.copyOfRange(l, i, j), false));
            i = j;
        }
        return out;
    }

    static String decodeUnlabelled(Example e, HfTokenizer tok) {
        List<Long> ids = new ArrayList<>();
        for (int i = 0; i < e.length(); i++) {
            if (e.labels()[i] == Labels.IGNORE_INDEX) ids.add(e.inputIds()[i]);
        }
        return tok.decode(ids.stream().mapToLong(Long::longValue).toArray(), false);
    }
}
