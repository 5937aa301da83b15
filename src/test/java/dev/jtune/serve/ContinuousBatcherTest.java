package dev.jtune.serve;

import dev.jtune.cli.CliTest;
import dev.jtune.data.ChatTemplate;
import dev.jtune.infer.TextGenerator;
import dev.jtune.kernels.Ops;
import org.bytedeco.pytorch.Device;
import org.bytedeco.pytorch.global.torch.ScalarType;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.nio.file.Path;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.TimeUnit;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNotEquals;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * Continuous batching must be invisible in a greedy answer: requests that join a running batch mid-way (prefilled
 * together, left-padded, when they arrive during one step), run beside others of other lengths and adapters, and leave at different steps each get exactly the text that
 * {@code jtune generate --chat} (one request, its own forward) prints.
 */
class ContinuousBatcherTest {
    static final Device CPU = new Device("cpu");
    static final List<String> QUESTIONS = List.of("Hello", "What is cross-validation, and why does it matter?",
            "Name three rivers.", "ok", "Why is the sky blue on a clear day at noon?");
    static final int MAX_TOKENS = 7;

    @TempDir
    static Path tmp;
    static Path llama;
    static Path gpt2;

    @BeforeAll
    static void models() {
        llama = tmp.resolve("llama");
        gpt2 = tmp.resolve("gpt2");
        ServeFixtures.model("llama", llama, 5);
        ServeFixtures.model("gpt2", gpt2, 6);
    }

    /** What a request's sink saw. */
    static final class Collect implements TokenSink {
        final StringBuilder streamed = new StringBuilder();
        final CompletableFuture<Sequence.Outcome> done = new CompletableFuture<>();
        final CountDownLatch firstText = new CountDownLatch(1);

        @Override
        public void text(String delta) {
            streamed.append(delta);
            firstText.countDown();
        }

        @Override
        public void finished(Sequence.Outcome outcome) {
            done.complete(outcome);
            firstText.countDown();
        }
    }

    static Sequence chat(ServedModels models, String modelId, String question, Collect sink) {
        ServedModels.Entry e = models.entry(modelId);
        String prompt = e.renderChat(List.of(new ChatTemplate.Message("user", question)));
        long[] ids = e.tokenizer().encode(prompt, false).ids();
        return new Sequence(e, ids, prompt, MAX_TOKENS, models.model().config().maxPositions(),
                new TextGenerator.Settings(MAX_TOKENS, 0, 1, 0), List.of(), sink, 60_000_000_000L);
    }

    /** Submits the questions: the first alone until it has a token, then the rest at once (they join a running batch). */
    static List<Sequence.Outcome> serve(ServedModels models, List<String> modelIds, List<String> questions, int maxBatch) throws Exception {
        return serve(models, modelIds, questions, maxBatch, new int[1]);
    }

    static List<Sequence.Outcome> serve(ServedModels models, List<String> modelIds, List<String> questions, int maxBatch, int[] largestBatch) throws Exception {
        ServeMetrics metrics = new ServeMetrics();
        List<Collect> sinks = new ArrayList<>();
        try (ContinuousBatcher b = new ContinuousBatcher(models, maxBatch, 64, 1L << 30, metrics, null)) {
            for (int i = 0; i < questions.size(); i++) {
                Collect c = new Collect();
                sinks.add(c);
                b.submit(chat(models, modelIds.get(i), questions.get(i), c));
                if (i == 0) assertTrue(c.firstText.await(60, TimeUnit.SECONDS));
            }
            List<Sequence.Outcome> out = new ArrayList<>();
            for (Collect c : sinks) {
                Sequence.Outcome o = c.done.get(60, TimeUnit.SECONDS);
                assertNull(o.error());
                assertEquals(o.text(), c.streamed.toString(), "what was streamed is the answer");
                out.add(o);
            }
            b.drain();
            largestBatch[0] = b.largestBatch();
            if (largestBatch.length > 1) largestBatch[1] = b.largestPrefill();
            return out;
        }
    }

    /** `jtune generate --chat` as a user runs it: the answer it prints (without the final newline). */
    static String generate(Path model, Path adapter, String question) {
        List<String> args = new ArrayList<>(List.of("generate", "--model", model.toString(), "--chat", "--prompt", question,
                "--max-new-tokens", "" + MAX_TOKENS));
        if (adapter != null) args.addAll(List.of("--adapter", adapter.toString()));
        CliTest.Run r = CliTest.run(args.toArray(String[]::new));
        assertEquals(0, r.code(), r.err());
        return r.out().substring(0, r.out().length() - System.lineSeparator().length());
    }

    @Test
    void greedyAnswersAreTheSameAloneBatchedAndAsGenerate() throws Exception {
        for (Path dir : List.of(llama, gpt2)) {
            try (ServedModels models = ServedModels.load(dir, "base", Map.of(), ScalarType.Float, CPU, Ops.AUTO)) {
                List<String> ids = QUESTIONS.stream().map(q -> "base").toList();
                int[] largest = new int[2];
                List<Sequence.Outcome> batched = serve(models, ids, QUESTIONS, 8, largest);
                assertTrue(largest[0] >= 3, "requests joined the running batch: at most " + largest[0] + " rows");
                assertTrue(largest[1] >= 2, "requests that arrived during a step were prefilled together: at most " + largest[1]);
                List<Sequence.Outcome> oneAtATime = serve(models, ids, QUESTIONS, 1, largest);
                assertEquals(1, largest[0]);
                for (int i = 0; i < QUESTIONS.size(); i++) {
                    String want = generate(dir, null, QUESTIONS.get(i));
                    assertEquals(want, oneAtATime.get(i).text(), dir.getFileName() + " alone, question " + i);
                    assertEquals(want, batched.get(i).text(), dir.getFileName() + " batched, question " + i);
                    assertEquals(MAX_TOKENS, batched.get(i).completionTokens());
                    assertEquals("length", batched.get(i).finishReason());
                }
            }
        }
    }

    @Test
    void adaptersAndTheBaseShareOneBatchRowByRow() throws Exception {
        Map<String, Path> adapters = new LinkedHashMap<>();
        adapters.put("qv", ServeFixtures.adapter(llama, List.of("q_proj", "v_proj"), 1, tmp.resolve("adapter-qv")));
        adapters.put("mlp", ServeFixtures.adapter(llama, List.of("up_proj", "down_proj"), 2, tmp.resolve("adapter-mlp")));
        List<String> ids = List.of("base", "qv", "mlp", "qv", "base", "mlp");
        List<String> questions = List.of(QUESTIONS.get(0), QUESTIONS.get(1), QUESTIONS.get(2), QUESTIONS.get(3), QUESTIONS.get(4), QUESTIONS.get(0));
        try (ServedModels models = ServedModels.load(llama, "base", adapters, ScalarType.Float, CPU, Ops.AUTO)) {
            assertEquals(List.of("base", "qv", "mlp"), models.ids());
            int[] largest = new int[2];
            List<Sequence.Outcome> batched = serve(models, ids, questions, 8, largest);
            assertTrue(largest[0] >= 3, "base and both adapters in one step: at most " + largest[0] + " rows");
            assertTrue(largest[1] >= 2, "adapters prefilled together: at most " + largest[1]);
            for (int i = 0; i < ids.size(); i++) {
                Path adapter = ids.get(i).equals("base") ? null : adapters.get(ids.get(i));
                assertEquals(generate(llama, adapter, questions.get(i)), batched.get(i).text(), ids.get(i) + ", question " + i);
            }
            assertNotEquals(batched.get(0).text(), batched.get(5).text(), "the adapter changes the answer to the same question");
        }
    }

    @Test
    void admissionRefusesARequestThatCanNeverFitTheKvBudget() throws Exception {
        try (ServedModels models = ServedModels.load(llama, "base", Map.of(), ScalarType.Float, CPU, Ops.AUTO)) {
            Sequence probe = chat(models, "base", "Hello", new Collect());
            long oneRequest;
            try (ContinuousBatcher b = new ContinuousBatcher(models, 1, 1, 1L << 30, new ServeMetrics(), null)) {
                oneRequest = b.reservation(probe);
            }
            try (ContinuousBatcher small = new ContinuousBatcher(models, 4, 1, oneRequest - 1, new ServeMetrics(), null)) {
                ApiError e = assertThrows(ApiError.class, () -> small.submit(chat(models, "base", "Hello", new Collect())));
                assertEquals(400, e.status());
                assertEquals("max_tokens", e.param());
            }
            ApiError unknown = assertThrows(ApiError.class, () -> models.entry("nope"));
            assertEquals(404, unknown.status());
        }
    }
}
