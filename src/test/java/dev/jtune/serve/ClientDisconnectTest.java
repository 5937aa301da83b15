package dev.jtune.serve;

import dev.jtune.kernels.Ops;
import org.bytedeco.pytorch.Device;
import org.bytedeco.pytorch.global.torch.ScalarType;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.io.BufferedReader;
import java.io.InputStreamReader;
import java.net.Socket;
import java.net.URI;
import java.net.http.HttpClient;
import java.net.http.HttpRequest;
import java.net.http.HttpResponse;
import java.nio.charset.StandardCharsets;
import java.nio.file.Path;
import java.util.Map;
import java.util.function.DoublePredicate;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * A client that goes away cancels its generation, streaming or not, and a request that runs past --request-timeout
 * gets 504 in OpenAI's shape: real sockets against a real server (tiny Llama, context 512), observed through /metrics.
 * Each request asks for {@link #MAX_TOKENS} tokens, which takes the tiny model well over a second here; each
 * check asserts the generation stopped at under half of them.
 */
class ClientDisconnectTest {
    static final int MAX_TOKENS = 480;
    static final String MODEL = "tiny";

    @TempDir
    static Path tmp;
    static Path llama;
    final HttpClient http = HttpClient.newHttpClient();

    @BeforeAll
    static void model() {
        llama = ServeFixtures.model("llama", tmp.resolve("llama"), 5);
    }

    static ModelServer start(double timeoutSeconds) throws Exception {
        ServedModels models = ServedModels.load(llama, MODEL, Map.of(), ScalarType.Float, new Device("cpu"), Ops.AUTO);
        return new ModelServer(models, 4, 8, 256L << 20, null,
                new OpenAiApi.Options("127.0.0.1", 0, null, 64 * 1024, 1000, timeoutSeconds));
    }

    static String body(boolean stream) {
        return "{\"model\":\"" + MODEL + "\",\"prompt\":\"Once upon a time\",\"max_tokens\":" + MAX_TOKENS + ",\"temperature\":0,\"stream\":" + stream + "}";
    }

    /** One sample of the Prometheus text: the line starting with {@code series} (name and labels exactly), or 0. */
    double metric(int port, String series) throws Exception {
        String text = http.send(HttpRequest.newBuilder(URI.create("http://127.0.0.1:" + port + "/metrics")).build(),
                HttpResponse.BodyHandlers.ofString()).body();
        return text.lines().filter(l -> l.startsWith(series + " ")).mapToDouble(l -> Double.parseDouble(l.substring(series.length() + 1)))
                .findFirst().orElse(0);
    }

    double awaitMetric(int port, String series, DoublePredicate until) throws Exception {
        long deadline = System.nanoTime() + 60_000_000_000L;
        while (true) {
            double v = metric(port, series);
            if (until.test(v) || System.nanoTime() > deadline) return v;
            Thread.sleep(10);
        }
    }

    static final String TOKENS = "jtune_generation_tokens_total{model=\"" + MODEL + "\"}";
    static final String CANCELLED = "jtune_requests_total{model=\"" + MODEL + "\",status=\"cancelled\"}";
    static final String OK = "jtune_requests_total{model=\"" + MODEL + "\",status=\"200\"}";

    /** Sends a completion on a raw socket, waits until it is generating, closes the socket; the generation must stop. */
    void disconnectMidGeneration(int port, boolean stream, int cancelledBefore) throws Exception {
        double tokensBefore = metric(port, TOKENS);
        try (Socket s = new Socket("127.0.0.1", port)) {
            byte[] body = body(stream).getBytes(StandardCharsets.UTF_8);
            s.getOutputStream().write(("POST /v1/completions HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nContent-Length: "
                    + body.length + "\r\n\r\n").getBytes(StandardCharsets.US_ASCII));
            s.getOutputStream().write(body);
            s.getOutputStream().flush();
            if (stream) {   // the first event with text: it is generating
                BufferedReader in = new BufferedReader(new InputStreamReader(s.getInputStream(), StandardCharsets.UTF_8));
                for (String line; (line = in.readLine()) != null; ) if (line.startsWith("data: {")) break;
            } else {        // nothing comes before the whole answer: watch the server count tokens
                awaitMetric(port, TOKENS, v -> v > tokensBefore);
            }
        }
        // wait until the request has ended either way (cancelled, or answered in full when the server missed the close)
        long deadline = System.nanoTime() + 60_000_000_000L;
        while (metric(port, CANCELLED) + metric(port, OK) <= cancelledBefore && System.nanoTime() < deadline) Thread.sleep(10);
        double cancelled = metric(port, CANCELLED);
        assertEquals(cancelledBefore + 1, cancelled, (stream ? "streaming" : "non-streaming") + ": the server counted the request cancelled");
        double generated = metric(port, TOKENS) - tokensBefore;
        assertTrue(generated >= 1 && generated < MAX_TOKENS / 2.0, "the generation stopped early: " + generated + " of " + MAX_TOKENS + " tokens");
        assertEquals(0, metric(port, OK), "no request finished normally");
        assertEquals(0, awaitMetric(port, "jtune_running_requests", v -> v == 0), "the batch is empty again");
    }

    @Test
    void aClientThatDisconnectsCancelsItsGeneration() throws Exception {
        try (ModelServer server = start(600)) {
            disconnectMidGeneration(server.port(), false, 0);
            disconnectMidGeneration(server.port(), true, 1);
        }
    }

    @Test
    void aRequestPastTheTimeoutGets504AndStops() throws Exception {
        try (ModelServer server = start(0.05)) {
            URI uri = URI.create("http://127.0.0.1:" + server.port() + "/v1/completions");
            HttpResponse<String> r = http.send(HttpRequest.newBuilder(uri).header("Content-Type", "application/json")
                    .POST(HttpRequest.BodyPublishers.ofString(body(false))).build(), HttpResponse.BodyHandlers.ofString());
            assertEquals(504, r.statusCode(), r.body());
            assertTrue(r.body().startsWith("{\"error\":{") && r.body().contains("\"type\":\"server_error\"")
                    && r.body().contains("\"code\":\"timeout\"") && r.body().contains("0.05 s"), r.body());
            HttpResponse<String> s = http.send(HttpRequest.newBuilder(uri).header("Content-Type", "application/json")
                    .POST(HttpRequest.BodyPublishers.ofString(body(true))).build(), HttpResponse.BodyHandlers.ofString());
            assertEquals(200, s.statusCode(), "a stream has begun before its time runs out");
            assertTrue(s.body().contains("data: {\"error\":{") && s.body().contains("\"code\":\"timeout\"") && s.body().endsWith("data: [DONE]\n\n"), s.body());
            int port = server.port();
            assertEquals(2, metric(port, "jtune_requests_total{model=\"" + MODEL + "\",status=\"504\"}"));
            assertTrue(metric(port, TOKENS) < MAX_TOKENS, "both stopped early: " + metric(port, TOKENS) + " tokens");
        }
    }
}
