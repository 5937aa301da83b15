package dev.jtune.serve;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ArrayNode;
import com.fasterxml.jackson.databind.node.ObjectNode;
import com.sun.net.httpserver.HttpExchange;
import com.sun.net.httpserver.HttpServer;
import dev.jtune.infer.TextGenerator;

import java.io.ByteArrayOutputStream;
import java.io.IOException;
import java.io.InputStream;
import java.io.OutputStream;
import java.net.InetSocketAddress;
import java.nio.charset.StandardCharsets;
import java.security.MessageDigest;
import java.security.NoSuchAlgorithmException;
import java.util.UUID;
import java.util.concurrent.BlockingQueue;
import java.util.concurrent.LinkedBlockingQueue;
import java.util.concurrent.SynchronousQueue;
import java.util.concurrent.ThreadPoolExecutor;
import java.util.concurrent.TimeUnit;

/**
 * The OpenAI-compatible HTTP front of {@code jtune serve}, on the JDK's own HTTP server ({@code com.sun.net.httpserver},
 * module jdk.httpserver): no dependency, starts in milliseconds, streams with chunked responses. Each connection is
 * served on a thread of a bounded pool; the threads mostly wait on their request's queue of text while the one
 * batcher thread computes, so the pool bounds connections, and the batcher's queue bounds work.
 *
 * <p>Routes: POST /v1/chat/completions, POST /v1/completions, GET /v1/models, GET /health, GET /metrics. Errors are
 * OpenAI's JSON ({@link ApiError}); nothing else of an exception reaches a client.
 */
public final class OpenAiServer implements AutoCloseable {
    /** Settings of the HTTP side. */
    public record Options(String host, int port, String apiKey, long maxBodyBytes, int maxTokens, double timeoutSeconds, int maxConnections) {}

    private static final ObjectMapper JSON = new ObjectMapper();
    private final ServedModels models;
    private final ContinuousBatcher batcher;
    private final ServeMetrics metrics;
    private final Options options;
    private final byte[] keyDigest;
    private final HttpServer http;
    private final ThreadPoolExecutor pool;
    private final long created = System.currentTimeMillis() / 1000;

    public OpenAiServer(ServedModels models, ContinuousBatcher batcher, ServeMetrics metrics, Options options) throws IOException {
        this.models = models;
        this.batcher = batcher;
        this.metrics = metrics;
        this.options = options;
        this.keyDigest = options.apiKey() == null ? null : sha256(options.apiKey());
        this.http = HttpServer.create(new InetSocketAddress(options.host(), options.port()), 128);
        this.pool = new ThreadPoolExecutor(4, options.maxConnections(), 30, TimeUnit.SECONDS, new SynchronousQueue<>(),
                r -> {
                    Thread t = new Thread(r, "jtune-http");
                    t.setDaemon(true);
                    return t;
                }, (r, ex) -> {
                    throw new java.util.concurrent.RejectedExecutionException("too many connections");
                });
        http.setExecutor(pool);
        http.createContext("/", this::handle);
        http.start();
    }

    /** The port bound (useful with port 0). */
    public int port() {
        return http.getAddress().getPort();
    }

    private void handle(HttpExchange ex) {
        String path = ex.getRequestURI().getPath();
        String modelForMetrics = null;
        try {
            switch (path) {
                case "/health" -> {
                    requireMethod(ex, "GET");
                    if (batcher.draining()) throw ApiError.draining();
                    sendJson(ex, 200, JSON.createObjectNode().put("status", "ok"));
                }
                case "/metrics" -> {
                    requireMethod(ex, "GET");
                    ByteArrayOutputStream buf = new ByteArrayOutputStream();
                    metrics.write(buf);
                    send(ex, 200, metrics.contentType(), buf.toByteArray());
                }
                case "/v1/models" -> {
                    requireMethod(ex, "GET");
                    authorize(ex);
                    ObjectNode list = JSON.createObjectNode().put("object", "list");
                    ArrayNode data = list.putArray("data");
                    for (String id : models.ids()) {
                        data.addObject().put("id", id).put("object", "model").put("created", created).put("owned_by", "jtune");
                    }
                    sendJson(ex, 200, list);
                }
                case "/v1/chat/completions", "/v1/completions" -> {
                    requireMethod(ex, "POST");
                    authorize(ex);
                    JsonNode body = readBody(ex);
                    if (body != null && body.path("model").isTextual()) modelForMetrics = body.get("model").asText();
                    complete(ex, CompletionRequest.parse(body, path.endsWith("chat/completions"), options.maxTokens()));
                }
                default -> throw ApiError.notFound(path);
            }
        } catch (ApiError e) {
            if (path.startsWith("/v1/")) metrics.refused(modelForMetrics, e.status());
            sendError(ex, e);
        } catch (IOException e) {
            // the client went away mid-response: nothing to answer
        } catch (RuntimeException e) {
            System.err.println("jtune serve: " + path + ": " + e);
            sendError(ex, ApiError.internal());
        } finally {
            ex.close();
        }
    }

    /** Runs one completion: 200 with the whole answer, or server-sent events as tokens come. */
    private void complete(HttpExchange ex, CompletionRequest r) throws IOException {
        ServedModels.Entry entry = models.entry(r.model());
        String promptText = r.chat() ? render(entry, r) : r.prompt();
        // chat templates write BOS themselves (as apply_chat_template and `jtune generate --chat`); a plain prompt gets the tokenizer's specials
        long[] ids = entry.tokenizer().encode(promptText, !r.chat()).ids();
        int maxPositions = models.model().config().maxPositions();
        String promptParam = r.chat() ? "messages" : "prompt";
        if (ids.length == 0) throw ApiError.badParam(promptParam, "encodes to no tokens");
        if (ids.length >= maxPositions) {
            throw ApiError.badParam(promptParam, ids.length + " tokens leave no room in the model's context of " + maxPositions);
        }
        Channel channel = new Channel();
        Sequence s = new Sequence(entry, ids, promptText, r.maxTokens(), maxPositions,
                new TextGenerator.Settings(r.maxTokens(), r.temperature(), r.topP(), r.seed()), r.stop(), channel,
                (long) (options.timeoutSeconds() * 1e9));
        channel.sequence = s;
        batcher.submit(s);
        String id = (r.chat() ? "chatcmpl-" : "cmpl-") + UUID.randomUUID().toString().replace("-", "");
        long createdAt = System.currentTimeMillis() / 1000;
        if (r.stream()) {
            stream(ex, r, id, createdAt, channel);
            return;
        }
        Sequence.Outcome o = channel.await();
        if (o.error() != null) throw o.error();
        ObjectNode resp = JSON.createObjectNode().put("id", id).put("object", r.chat() ? "chat.completion" : "text_completion")
                .put("created", createdAt).put("model", r.model());
        ObjectNode choice = resp.putArray("choices").addObject().put("index", 0);
        if (r.chat()) choice.putObject("message").put("role", "assistant").put("content", o.text());
        else choice.put("text", o.text()).putNull("logprobs");
        choice.put("finish_reason", o.finishReason());
        resp.set("usage", usage(o));
        sendJson(ex, 200, resp);
    }

    /** Server-sent events: one chunk per piece of text, a last chunk with the finish reason, then {@code data: [DONE]}. */
    private void stream(HttpExchange ex, CompletionRequest r, String id, long createdAt, Channel channel) throws IOException {
        ex.getResponseHeaders().set("Content-Type", "text/event-stream; charset=utf-8");
        ex.getResponseHeaders().set("Cache-Control", "no-cache");
        ex.sendResponseHeaders(200, 0);
        OutputStream out = ex.getResponseBody();
        try {
            if (r.chat()) event(out, chunk(r, id, createdAt).set("choices", choices(r, "", true, null)));
            while (true) {
                Object next = channel.take();
                if (next instanceof String text) {
                    event(out, chunk(r, id, createdAt).set("choices", choices(r, text, false, null)));
                } else {
                    Sequence.Outcome o = (Sequence.Outcome) next;
                    if (o.error() != null) {
                        event(out, errorBody(o.error()));
                    } else {
                        event(out, chunk(r, id, createdAt).set("choices", choices(r, "", false, o.finishReason())));
                        if (r.includeUsage()) {
                            ObjectNode u = chunk(r, id, createdAt);
                            u.putArray("choices");
                            u.set("usage", usage(o));
                            event(out, u);
                        }
                    }
                    out.write("data: [DONE]\n\n".getBytes(StandardCharsets.UTF_8));
                    out.flush();
                    return;
                }
            }
        } catch (IOException e) {
            channel.sequence.cancel();   // the client went away: stop generating for it
            throw e;
        }
    }

    private ObjectNode chunk(CompletionRequest r, String id, long createdAt) {
        return JSON.createObjectNode().put("id", id).put("object", r.chat() ? "chat.completion.chunk" : "text_completion")
                .put("created", createdAt).put("model", r.model());
    }

    private ArrayNode choices(CompletionRequest r, String text, boolean first, String finishReason) {
        ArrayNode a = JSON.createArrayNode();
        ObjectNode c = a.addObject().put("index", 0);
        if (r.chat()) {
            ObjectNode delta = c.putObject("delta");
            if (first) delta.put("role", "assistant");
            if (finishReason == null) delta.put("content", text);
        } else {
            c.put("text", text).putNull("logprobs");
        }
        if (finishReason == null) c.putNull("finish_reason");
        else c.put("finish_reason", finishReason);
        return a;
    }

    private static void event(OutputStream out, JsonNode data) throws IOException {
        out.write(("data: " + JSON.writeValueAsString(data) + "\n\n").getBytes(StandardCharsets.UTF_8));
        out.flush();
    }

    private static ObjectNode usage(Sequence.Outcome o) {
        return JSON.createObjectNode().put("prompt_tokens", o.promptTokens()).put("completion_tokens", o.completionTokens())
                .put("total_tokens", o.promptTokens() + o.completionTokens());
    }

    private static String render(ServedModels.Entry entry, CompletionRequest r) {
        try {
            return entry.renderChat(r.messages());
        } catch (RuntimeException e) {   // the template refused these messages (raise_exception, a missing variable, ...)
            throw ApiError.badParam("messages", "the chat template of " + entry.id() + " cannot render them: " + firstLine(e.getMessage()));
        }
    }

    private static String firstLine(String s) {
        return s == null ? "" : s.lines().findFirst().orElse("");
    }

    private void authorize(HttpExchange ex) {
        if (keyDigest == null) return;
        String h = ex.getRequestHeaders().getFirst("Authorization");
        String given = h != null && h.regionMatches(true, 0, "Bearer ", 0, 7) ? h.substring(7).trim() : "";
        // digests of equal length, compared in time independent of where they differ
        if (!MessageDigest.isEqual(sha256(given), keyDigest)) throw ApiError.unauthorized();
    }

    private static byte[] sha256(String s) {
        try {
            return MessageDigest.getInstance("SHA-256").digest(s.getBytes(StandardCharsets.UTF_8));
        } catch (NoSuchAlgorithmException e) {
            throw new IllegalStateException(e);
        }
    }

    private static void requireMethod(HttpExchange ex, String method) {
        if (!ex.getRequestMethod().equalsIgnoreCase(method)) throw ApiError.methodNotAllowed(ex.getRequestMethod(), ex.getRequestURI().getPath());
    }

    /** The JSON body, at most maxBodyBytes (413 past it, whether or not Content-Length said so). */
    private JsonNode readBody(HttpExchange ex) throws IOException {
        long limit = options.maxBodyBytes();
        String declared = ex.getRequestHeaders().getFirst("Content-Length");
        if (declared != null) {
            try {
                if (Long.parseLong(declared.trim()) > limit) throw ApiError.tooLarge(limit);
            } catch (NumberFormatException e) {
                throw ApiError.badRequest("Content-Length is not a number");
            }
        }
        InputStream in = ex.getRequestBody();
        byte[] body = in.readNBytes((int) Math.min(Integer.MAX_VALUE - 8, limit + 1));
        if (body.length > limit) throw ApiError.tooLarge(limit);
        try {
            return JSON.readTree(body);
        } catch (IOException e) {
            throw ApiError.badRequest("The request body is not valid JSON: " + firstLine(e.getMessage()));
        }
    }

    private void sendError(HttpExchange ex, ApiError e) {
        try {
            if (e.status() == 401) ex.getResponseHeaders().set("WWW-Authenticate", "Bearer");
            sendJson(ex, e.status(), errorBody(e));
        } catch (IOException | RuntimeException ignored) {
            // headers already sent (a stream) or the client is gone
        }
    }

    private static ObjectNode errorBody(ApiError e) {
        ObjectNode root = JSON.createObjectNode();
        ObjectNode err = root.putObject("error").put("message", e.getMessage()).put("type", e.type());
        if (e.param() == null) err.putNull("param");
        else err.put("param", e.param());
        if (e.code() == null) err.putNull("code");
        else err.put("code", e.code());
        return root;
    }

    private static void sendJson(HttpExchange ex, int status, JsonNode body) throws IOException {
        send(ex, status, "application/json", JSON.writeValueAsBytes(body));
    }

    private static void send(HttpExchange ex, int status, String contentType, byte[] body) throws IOException {
        ex.getResponseHeaders().set("Content-Type", contentType);
        ex.sendResponseHeaders(status, body.length == 0 ? -1 : body.length);
        if (body.length > 0) ex.getResponseBody().write(body);
    }

    /** Stops listening; call after the batcher has drained, so every accepted request has had its answer. */
    @Override
    public void close() {
        http.stop(10);   // returns once the last exchanges (answers of drained requests) are written, 10 s at most
        pool.shutdown();
    }

    /** Text and the outcome of one request, handed from the batcher thread to the request's HTTP thread. */
    private static final class Channel implements TokenSink {
        private final BlockingQueue<Object> queue = new LinkedBlockingQueue<>();
        Sequence sequence;

        @Override
        public void text(String delta) {
            queue.add(delta);
        }

        @Override
        public void finished(Sequence.Outcome outcome) {
            queue.add(outcome);
        }

        Object take() {
            try {
                return queue.take();
            } catch (InterruptedException e) {
                Thread.currentThread().interrupt();
                sequence.cancel();
                throw ApiError.internal();
            }
        }

        /** The whole answer (text pieces are already collected in the outcome). */
        Sequence.Outcome await() {
            while (true) {
                Object o = take();
                if (o instanceof Sequence.Outcome outcome) return outcome;
            }
        }
    }
}
