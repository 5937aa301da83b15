package dev.jtune.data;

import dev.jtune.config.DataSection;
import dev.jtune.config.DatasetSpec;
import dev.jtune.util.UserError;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.io.IOException;
import java.nio.file.Path;
import java.util.List;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

/** Formats sharegpt and alpaca, and mixtures of sources drawn by weight. */
class ShareGptAlpacaMixtureTest {
    @TempDir
    Path dir;

    private static List<Candidate> clean(DataSection d, FileTally t) {
        return new RowCleaner(d).clean(d.trainFile(), t);
    }

    private static String roles(Candidate c) {
        return String.join(",", c.messages().stream().map(m -> m.role() + "=" + m.content()).toList());
    }

    @Test
    void shareGptSpeakersMapToRolesAndUnknownOnesAreBadRows() throws IOException {
        Path f = TestData.write(dir, "sg.jsonl", """
                {"conversations": [{"from": "system", "value": "Be brief."}, {"from": "human", "value": "Hi"}, {"from": "gpt", "value": "Hello."}, {"from": "human", "value": "Bye"}, {"from": "gpt", "value": "Bye."}]}
                {"conversations": [{"from": "user", "value": "Q"}, {"from": "function", "value": "42"}, {"from": "assistant", "value": "A"}]}
                {"conversations": [{"from": "narrator", "value": "Once"}, {"from": "gpt", "value": "upon"}]}
                {"conversations": "not a list"}
                """);
        DataSection d = TestData.whole(f, DataSection.Format.SHAREGPT, 128);
        FileTally t = new FileTally(f, "train", false);
        List<Candidate> c = clean(d, t);
        assertEquals(2, c.size());
        assertEquals("system=Be brief.,user=Hi,assistant=Hello.,user=Bye,assistant=Bye.", roles(c.get(0)));
        assertEquals("user=Q,tool=42,assistant=A", roles(c.get(1)));
        String summary = t.report(2).summary();
        assertEquals("4 rows read, 2 kept, 2 dropped (2 bad messages at line 3)", summary);

        UserError e = assertThrows(UserError.class, () -> clean(d, new FileTally(f, "train", true)));
        assertTrue(e.getMessage().contains(f + ":3: bad messages: message 0 of column \"conversations\": unknown from"
                + " \"narrator\""), e.getMessage());
    }

    @Test
    void shareGptKeysAreConfigurable() throws IOException {
        Path f = TestData.write(dir, "sg.jsonl", """
                {"chat": [{"speaker": "human", "text": "Hi"}, {"speaker": "gpt", "text": "Hello."}]}
                """);
        DataSection d = TestData.data(f, DataSection.Format.SHAREGPT, 128).validationSplit(0).conversationsColumn("chat")
                .sharegptRoleKey("speaker").sharegptContentKey("text").build();
        assertEquals("user=Hi,assistant=Hello.", roles(clean(d, new FileTally(f, "train", false)).get(0)));
    }

    @Test
    void alpacaJoinsInstructionAndInput() {
        Path f = TestData.resource("/data-formats/alpaca.parquet");
        DataSection d = TestData.whole(f, DataSection.Format.ALPACA, 128);
        List<Candidate> c = clean(d, new FileTally(f, "train", false));
        assertEquals("user=Translate to French.\n\ncat,assistant=chat", roles(c.get(0)));
        assertEquals("user=Name a prime.,assistant=Seven.", roles(c.get(1)));
    }

    @Test
    void alpacaWithoutAnInputColumnAndWithAMissingOutput() throws IOException {
        Path f = TestData.write(dir, "a.jsonl", """
                {"instruction": "Say hi.", "output": "hi"}
                {"instruction": "Say bye."}
                {"instruction": "Say bye.", "output": "bye"}
                """);
        FileTally t = new FileTally(f, "train", false);
        List<Candidate> c = clean(TestData.whole(f, DataSection.Format.ALPACA, 128), t);
        assertEquals(2, c.size());
        assertEquals("3 rows read, 2 kept, 1 dropped (1 missing value at line 2)", t.report(2).summary());
    }

    @Test
    void mixtureDrawsByWeightAndSplitsEachSource() throws IOException {
        StringBuilder sg = new StringBuilder();
        for (int i = 0; i < 9; i++) {
            sg.append("{\"conversations\": [{\"from\": \"human\", \"value\": \"question ").append(i)
                    .append("\"}, {\"from\": \"gpt\", \"value\": \"answer ").append(i).append("\"}]}\n");
        }
        Path sharegpt = TestData.write(dir, "sg.jsonl", sg.toString());
        Path parquet = TestData.resource("/data-formats/chat.snappy.parquet");
        DataSection d = DataSection.builder(null).format(DataSection.Format.CHAT).maxSeqLength(256).validationSplit(0)
                .datasets(List.of(DatasetSpec.of(parquet, null, 3), DatasetSpec.of(sharegpt, DataSection.Format.SHAREGPT, 1)))
                .build();
        TestData.Run run = TestData.prepare(d, TestData.gpt2());
        // 12 examples in all; 3:1 gives the 3 chats 9 places (each three times) and the 9 ShareGPT rows 3
        assertEquals(12, run.data().train().size());
        assertTrue(run.lines().contains("data: note: mixture: chat.snappy.parquet (chat): 9 train examples drawn from 3"
                + " (weight 3, 75.0% of 12)"), run.lines().toString());
        assertTrue(run.lines().contains("data: note: mixture: sg.jsonl (sharegpt): 3 train examples drawn from 9"
                + " (weight 1, 25.0% of 12)"), run.lines().toString());
        assertTrue(run.lines().contains("data: train file sg.jsonl: 9 rows read, 9 kept, 0 dropped"), run.lines().toString());

        // validation is taken from each source before drawing: 1 of 3 and 3 of 9
        DataSection held = d.toBuilder().validationSplit(0.3).build();
        TestData.Run h = TestData.prepare(held, TestData.gpt2());
        assertEquals(1 + 3, h.data().validation().size());
        assertEquals(2 + 6, h.data().train().size());
        // same seed, same draw
        assertEquals(run.data().train(), TestData.prepare(d, TestData.gpt2()).data().train());
    }

    @Test
    void sharesFollowTheWeightsWithLargestRemainders() {
        assertEquals(List.of(7, 2), box(MixtureSampler.shares(9, List.of(3.0, 1.0), new int[] {3, 6})));
        assertEquals(List.of(0, 5), box(MixtureSampler.shares(5, List.of(3.0, 1.0), new int[] {0, 5})));
        assertEquals(List.of(1, 1, 1), box(MixtureSampler.shares(3, List.of(1.0, 1.0, 1.0), new int[] {1, 1, 1})));
    }

    private static List<Integer> box(int[] a) {
        return java.util.Arrays.stream(a).boxed().toList();
    }
}
