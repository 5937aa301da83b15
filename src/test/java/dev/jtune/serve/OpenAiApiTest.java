package dev.jtune.serve;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import dev.jtune.kernels.Ops;
import org.bytedeco.pytorch.Device;
import org.bytedeco.pytorch.global.torch.ScalarType;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.io.ByteArrayOutputStream;
import java.nio.charset.StandardCharsets;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.TimeUnit;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNotNull;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * The OpenAI protocol without any HTTP library: {@link OpenAiApi} answers an in-memory {@link ApiExchange} (the seam
 * {@link NettyHttpServer} implements), with a real tiny model and batcher behind it.
 */
class OpenAiApiTest {
    static final ObjectMapper JSON = new ObjectMapper();

    @TempDir
    static Path tmp;
    static ServedModels models;
    static ServeMetrics metrics;
    static ContinuousBatcher batcher;
    static OpenAiApi api;

    @BeforeAll
    static void start() {
        Path llama = ServeFixtures.model("llama", tmp.resolve("llama"), 5);
        models = ServedModels.load(llama, "tiny", Map.of(), ScalarType.Float, new Device("cpu"), Ops.AUTO);
        metrics = new ServeMetrics();
        batcher = new ContinuousBatcher(models, 4, 8, 256L << 20, metrics, null);
        api = new OpenAiApi(models, batcher, metrics, new OpenAiApi.Options("127.0.0.1", 0, null, 1024, 1000, 600));
    }

    @AfterAll
    static void stop() throws Exception {
        batcher.drain();
        api.close();
        batcher.close();
        models.close();
    }

    /** What the protocol wrote: one response, or a stream of events. */
    static final class Recorded implements ApiExchange {
        final String method, path;
        final byte[] body;
        final CompletableFuture<Integer> status = new CompletableFuture<>();
        final ByteArrayOutputStream out = new ByteArrayOutputStream();
        final List<String> headers = new ArrayList<>();
        Runnable onDisconnect;

        Recorded(String method, String path, String body) {
            this.method = method;
            this.path = path;
            this.body = body == null ? null : body.getBytes(StandardCharsets.UTF_8);
        }

        @Override public String method() { return method; }
        @Override public String path() { return path; }
        @Override public String header(String name) { return null; }
        @Override public byte[] body() { return body; }

        @Override
        public synchronized void respond(int status, String contentType, byte[] bytes, String... extraHeaders) {
            headers.addAll(List.of(extraHeaders));
            out.writeBytes(bytes);
            this.status.complete(status);
        }

        @Override public synchronized void startEvents() { out.writeBytes("<events>".getBytes(StandardCharsets.UTF_8)); }
        @Override public synchronized void event(byte[] data) { out.writeBytes(data); }
        @Override public synchronized void endEvents() { status.complete(200); }
        @Override public synchronized void onDisconnect(Runnable r) { onDisconnect = r; }

        synchronized String text() {
            return out.toString(StandardCharsets.UTF_8);
        }

        JsonNode error(int expectedStatus) throws Exception {
            assertEquals(expectedStatus, status.get(60, TimeUnit.SECONDS), text());
            JsonNode e = JSON.readTree(text()).get("error");
            assertNotNull(e, text());
            for (String k : List.of("message", "type", "param", "code")) assertTrue(e.has(k), k + " in " + text());
            return e;
        }
    }

    static Recorded call(String method, String path, String body) {
        Recorded r = new Recorded(method, path, body);
        api.handle(r);
        return r;
    }

    @Test
    void errorsInOpenAiShape() throws Exception {
        assertEquals("not_found", call("GET", "/v2/nothing", null).error(404).get("code").asText());
        assertEquals("method_not_allowed", call("GET", "/v1/completions", null).error(405).get("code").asText());
        assertEquals("request_too_large", call("POST", "/v1/completions", null).error(413).get("code").asText());
        assertTrue(call("POST", "/v1/completions", "{not json").error(400).get("message").asText().contains("not valid JSON"));
        assertEquals("top_p", call("POST", "/v1/completions", "{\"model\":\"tiny\",\"prompt\":\"x\",\"top_p\":5}").error(400).get("param").asText());
        assertEquals("model", call("POST", "/v1/completions", "{\"model\":\"nope\",\"prompt\":\"x\"}").error(404).get("param").asText());
    }

    @Test
    void aStreamStartsWithItsHeadersAndEndsWithDone() throws Exception {
        Recorded r = call("POST", "/v1/chat/completions",
                "{\"model\":\"tiny\",\"messages\":[{\"role\":\"user\",\"content\":\"Hello\"}],\"max_tokens\":5,\"temperature\":0,\"stream\":true}");
        assertEquals(200, r.status.get(60, TimeUnit.SECONDS));
        String text = r.text();
        assertTrue(text.startsWith("<events>data: {") && text.contains("\"role\":\"assistant\"") && text.endsWith("data: [DONE]\n\n"), text);
        assertNotNull(r.onDisconnect, "a completion listens for its client going away");
    }

    @Test
    void aDisconnectCancelsTheGenerationAndNothingIsWritten() throws Exception {
        double before = cancelled();
        Recorded r = call("POST", "/v1/completions", "{\"model\":\"tiny\",\"prompt\":\"Once upon a time\",\"max_tokens\":480,\"temperature\":0}");
        assertNotNull(r.onDisconnect);
        r.onDisconnect.run();
        long deadline = System.nanoTime() + 60_000_000_000L;
        while (cancelled() == before && System.nanoTime() < deadline) Thread.sleep(10);
        assertEquals(before + 1, cancelled());
        assertTrue(!r.status.isDone() && r.text().isEmpty(), "nobody to answer: " + r.text());
    }

    static double cancelled() throws Exception {
        ByteArrayOutputStream buf = new ByteArrayOutputStream();
        metrics.write(buf);
        return buf.toString(StandardCharsets.UTF_8).lines().filter(l -> l.startsWith("jtune_requests_total{model=\"tiny\",status=\"cancelled\"} "))
                .mapToDouble(l -> Double.parseDouble(l.substring(l.lastIndexOf(' ') + 1))).findFirst().orElse(0);
    }
}
