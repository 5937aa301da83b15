package dev.jtune.data;

import dev.jtune.config.DataSection;
import dev.jtune.config.PreferenceSection;
import dev.jtune.config.TrainingSection.Method;
import dev.jtune.tokenizer.HfTokenizer;
import dev.jtune.util.Labels;
import dev.jtune.util.UserError;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.io.ByteArrayOutputStream;
import java.io.IOException;
import java.io.PrintStream;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Arrays;
import java.util.List;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

/** Preference and KTO rows from real CSV / JSON-lines files through the real GPT-2 tokenizer: TRL's layout, cleaning, KL pairs. */
class PreferenceRowsTest {
    static final Path TOKENIZER = Path.of("configs/tokenizers/gpt2");
    static HfTokenizer tok;
    static long eos;

    @TempDir
    Path tmp;

    @BeforeAll
    static void load() {
        tok = HfTokenizer.load(TOKENIZER);
        eos = tok.eosTokenIds().iterator().next();
    }

    @AfterAll
    static void close() {
        tok.close();
    }

    static PreferenceSection settings(Method m, Integer maxPrompt, PreferenceSection.TruncationMode mode) {
        return new PreferenceSection(null, null, null, null, null, null, maxPrompt, mode, null, null, null, null,
                "chosen", "rejected", "completion", "label").resolvedFor(m);
    }

    private PreferenceRows.Prepared prepare(String name, String content, DataSection.Format format, int maxSeq, Integer maxPrompt,
                                            ByteArrayOutputStream log) throws IOException {
        return prepare(name, content, format, maxSeq, maxPrompt, null, log);
    }

    private PreferenceRows.Prepared prepare(String name, String content, DataSection.Format format, int maxSeq, Integer maxPrompt,
                                            PreferenceSection.TruncationMode mode, ByteArrayOutputStream log) throws IOException {
        Path f = Files.writeString(tmp.resolve(name), content);
        DataSection d = DataSection.builder(f).format(format).validationSplit(0.0).maxSeqLength(maxSeq).build();
        return PreferenceRows.prepare(d, settings(format == DataSection.Format.KTO ? Method.KTO : Method.DPO, maxPrompt, mode), 1, 2, 2,
                tok, new PrintStream(log, true, StandardCharsets.UTF_8));
    }

    private static long[] concat(long[]... parts) {
        long[] out = new long[0];
        for (long[] p : parts) {
            long[] n = Arrays.copyOf(out, out.length + p.length);
            System.arraycopy(p, 0, n, out.length, p.length);
            out = n;
        }
        return out;
    }

    @Test
    void theSupervisedPreparerRefusesPreferenceDataNamingTheFormat() throws IOException {
        // jtune data / eval / lr-find read supervised examples: a user error naming the format, not a crash in RowCleaner
        Path f = Files.writeString(tmp.resolve("pairs.csv"), "prompt,chosen,rejected\nWhat is 2+2?, Four., Five.\n");
        for (DataSection.Format format : List.of(DataSection.Format.PREFERENCE, DataSection.Format.KTO)) {
            DataSection d = DataSection.builder(f).format(format).validationSplit(0.0).build();
            UserError e = assertThrows(UserError.class, () -> DatasetPreparer.prepareCached(d, 1, tok, null, 1));
            String name = format.name().toLowerCase(java.util.Locale.ROOT);
            assertTrue(e.getMessage().startsWith("data.format " + name + " (" + f + ")") && e.getMessage().contains("training.method"),
                    e.getMessage());
        }
    }

    @Test
    void plainTextIsPromptThenCompletionThenEosWithThePromptMasked() throws IOException {
        ByteArrayOutputStream log = new ByteArrayOutputStream();
        PreferenceRows.Prepared p = prepare("pairs.csv", "prompt,chosen,rejected\nWhat is 2+2?, Four., Five.\n",
                DataSection.Format.PREFERENCE, 64, null, log);
        List<Example> train = p.data().train();
        assertEquals(2, train.size());
        long[] prompt = tok.encode("What is 2+2?", false).ids();
        long[] chosen = concat(prompt, tok.encode("Four.", false).ids(), new long[] {eos});
        long[] rejected = concat(prompt, tok.encode("Five.", false).ids(), new long[] {eos});
        assertArrayEquals(chosen, train.get(0).inputIds());
        assertArrayEquals(rejected, train.get(1).inputIds());
        for (int i = 0; i < chosen.length; i++) {
            assertEquals(i < prompt.length ? Labels.IGNORE_INDEX : chosen[i], train.get(0).labels()[i], "label " + i);
        }
    }

    @Test
    void cleaningReportsEqualSidesEmptiesDuplicatesAndTruncation() throws IOException {
        String long40 = "word ".repeat(40).strip();
        ByteArrayOutputStream log = new ByteArrayOutputStream();
        PreferenceRows.Prepared p = prepare("dirty.csv", "prompt,chosen,rejected\n"
                        + "q1,a good answer,a bad answer\n"
                        + "q2,same,same\n"
                        + "q3,,bad\n"
                        + "q4,good,\n"
                        + ",good,bad\n"
                        + "q1,a good answer,a bad answer\n"
                        + "q5,\"" + long40 + "\",short\n"
                        + "\"" + long40 + " why?\",yes,no\n",
                DataSection.Format.PREFERENCE, 24, 8, log);
        String text = log.toString(StandardCharsets.UTF_8);
        assertTrue(text.contains("8 rows read, 3 kept, 5 dropped (1 duplicate, 1 empty prompt, 1 pair whose chosen equals rejected, "
                + "1 empty chosen, 1 empty rejected)"), text);
        assertTrue(text.contains("1 truncated to 24"), text);
        assertTrue(text.contains("1 prompts cut to their last 8 tokens"), text);
        List<Example> train = p.data().train();
        assertEquals(6, train.size());
        assertEquals(24, train.get(2).length(), "q5's chosen is cut to max_seq_length");
        long[] kept = train.get(4).inputIds();
        long[] tail = tok.encode(long40 + " why?", false).ids();
        assertArrayEquals(Arrays.copyOfRange(tail, tail.length - 8, tail.length), Arrays.copyOf(kept, 8), "the prompt's LAST 8 tokens");
    }

    /**
     * truncation_mode, as TRL's DPOTrainer cuts a sequence longer than max_length: keep_end (the default) keeps its last
     * tokens, so a long prompt loses its start and the whole completion trains; keep_start keeps the first tokens, so the
     * completion loses its end, and a prompt that fills max_seq_length leaves nothing to train on (dropped, reported).
     */
    @Test
    void truncationModeKeepsTheEndByDefaultOrTheStart() throws IOException {
        String longPrompt = "tell me every word " + "word ".repeat(30).strip() + " now";
        String longAnswer = "answer " + "fine ".repeat(30).strip() + " done";
        String csv = "prompt,chosen,rejected\n\"" + longPrompt + "\",short yes,short no\nq,\"" + longAnswer + "\",no\n";
        long[] prompt = tok.encode(longPrompt, false).ids(), yes = concat(tok.encode("short yes", false).ids(), new long[] {eos});
        long[] q = tok.encode("q", false).ids(), answer = concat(tok.encode(longAnswer, false).ids(), new long[] {eos});
        assertTrue(prompt.length > 24 && answer.length > 24, "both rows exceed max_seq_length 24");

        ByteArrayOutputStream log = new ByteArrayOutputStream();
        List<Example> end = prepare("trunc-end.csv", csv, DataSection.Format.PREFERENCE, 24, null, log).data().train();
        String text = log.toString(StandardCharsets.UTF_8);
        assertTrue(text.contains("2 truncated to 24") && text.contains("2 pairs with a sequence over max_seq_length 24 keep its last tokens"), text);
        assertEquals(4, end.size());
        long[] full = concat(prompt, yes);   // keep_end: the prompt's start goes, the whole completion stays
        assertArrayEquals(Arrays.copyOfRange(full, full.length - 24, full.length), end.get(0).inputIds());
        assertEquals(yes.length, end.get(0).targetTokens(), "every completion token trains");
        long[] full2 = concat(q, answer);    // a completion longer than the window: its last 24 tokens, the first one unpredicted
        assertArrayEquals(Arrays.copyOfRange(full2, full2.length - 24, full2.length), end.get(2).inputIds());
        assertEquals(Labels.IGNORE_INDEX, end.get(2).labels()[0]);
        assertEquals(23, end.get(2).targetTokens());

        log.reset();
        List<Example> start = prepare("trunc-start.csv", csv, DataSection.Format.PREFERENCE, 24, null,
                PreferenceSection.TruncationMode.KEEP_START, log).data().train();
        text = log.toString(StandardCharsets.UTF_8);
        assertTrue(text.contains("1 prompt too long"), text);
        assertTrue(text.contains("1 truncated to 24") && text.contains("1 pair with a sequence over max_seq_length 24 keeps its first tokens"), text);
        assertEquals(2, start.size(), "the row whose prompt fills max_seq_length is dropped: " + text);
        assertArrayEquals(Arrays.copyOf(full2, 24), start.get(0).inputIds(), "keep_start: the completion's end goes");
    }

    @Test
    void conversationsGoThroughTheChatTemplate() throws IOException {
        ByteArrayOutputStream log = new ByteArrayOutputStream();
        PreferenceRows.Prepared p = prepare("chat.jsonl",
                "{\"prompt\": [{\"role\": \"user\", \"content\": \"Hi?\"}], \"chosen\": [{\"role\": \"assistant\", \"content\": \"Hello!\"}],"
                        + " \"rejected\": [{\"role\": \"assistant\", \"content\": \"Go away.\"}]}\n",
                DataSection.Format.PREFERENCE, 128, null, log);
        ChatTemplate t = p.data().template();
        List<ChatTemplate.Message> prompt = List.of(new ChatTemplate.Message("user", "Hi?"));
        String promptText = t.render(prompt, true);
        String full = t.render(List.of(prompt.get(0), new ChatTemplate.Message("assistant", "Hello!")), false);
        long[] want = concat(tok.encode(promptText, false).ids(), tok.encode(full.substring(promptText.length()), false).ids(), new long[] {eos});
        assertArrayEquals(want, p.data().train().get(0).inputIds());
    }

    @Test
    void ktoRowsCarryTheirLabelAndAKlRowFromThePreviousCompletionOfTheirChunk() throws IOException {
        ByteArrayOutputStream log = new ByteArrayOutputStream();
        PreferenceRows.Prepared p = prepare("kto.csv", "prompt,completion,label\nA,one,true\nB,two,false\nC,three,1\nD,four,maybe\n",
                DataSection.Format.KTO, 64, null, log);
        assertTrue(log.toString(StandardCharsets.UTF_8).contains("1 bad label at line 5"), log.toString(StandardCharsets.UTF_8));
        List<Example> train = p.data().train();
        assertEquals(6, train.size());
        // chunks of per_device_train_batch_size (2) rows: [A, B] and [C]; A's KL completion is B's (rotated), C's its own
        assertArrayEquals(concat(tok.encode("A", false).ids(), tok.encode("two", false).ids(), new long[] {eos}), train.get(1).inputIds());
        assertArrayEquals(concat(tok.encode("B", false).ids(), tok.encode("one", false).ids(), new long[] {eos}), train.get(3).inputIds());
        assertArrayEquals(concat(tok.encode("C", false).ids(), tok.encode("three", false).ids(), new long[] {eos}), train.get(5).inputIds());
        assertEquals(Boolean.TRUE, p.desirable().get(SequenceKey.of(train.get(0))));
        assertEquals(Boolean.FALSE, p.desirable().get(SequenceKey.of(train.get(2))));
        assertEquals(Boolean.TRUE, p.desirable().get(SequenceKey.of(train.get(4))));
    }

    @Test
    void aMissingColumnNamesTheFile() throws IOException {
        ByteArrayOutputStream log = new ByteArrayOutputStream();
        UserError e = assertThrows(UserError.class, () -> prepare("nocol.csv", "prompt,chosen\nq,a\n", DataSection.Format.PREFERENCE, 64, null, log));
        assertTrue(e.getMessage().contains("nocol.csv") && e.getMessage().contains("rejected"), e.getMessage());
    }

    @Test
    void pairsStayInOneMicroBatchWhateverTheShuffle() throws IOException {
        StringBuilder sb = new StringBuilder("prompt,chosen,rejected\n");
        for (int i = 0; i < 9; i++) sb.append("q").append(i).append(",yes ").append(i).append(",no ").append(i).append('\n');
        PreferenceRows.Prepared p = prepare("many.csv", sb.toString(), DataSection.Format.PREFERENCE, 64, null, new ByteArrayOutputStream());
        List<Example> ex = p.data().train();
        for (int rank = 0; rank < 2; rank++) {
            Batcher b = new Batcher(ex, 2, 2, true, 5, false, 64, 0, rank, 2);
            try (Batcher.BatchIterator it = b.epoch(1, 0)) {
                while (it.hasNext()) {
                    Batch batch = it.next();
                    int n = batch.rows() / 2;
                    for (int r = 0; r < n; r++) {
                        String chosen = tok.decode(batch.inputIds()[r], true), rejected = tok.decode(batch.inputIds()[n + r], true);
                        String q = chosen.substring(0, 2);
                        assertTrue(rejected.startsWith(q) && chosen.contains("yes " + q.charAt(1)) && rejected.contains("no " + q.charAt(1)),
                                chosen + " / " + rejected);
                    }
                }
            }
        }
    }
}
