package dev.jtune.serve;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ArrayNode;
import com.fasterxml.jackson.databind.node.ObjectNode;
import dev.jtune.infer.TextGenerator;

import java.io.ByteArrayOutputStream;
import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.security.MessageDigest;
import java.security.NoSuchAlgorithmException;
import java.util.Queue;
import java.util.UUID;
import java.util.concurrent.ConcurrentLinkedQueue;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.atomic.AtomicBoolean;

/**
 * The OpenAI-compatible protocol of {@code jtune serve}, independent of the HTTP library ({@link ApiExchange}; the
 * server is {@link NettyHttpServer}). Routes: POST /v1/chat/completions, POST /v1/completions, GET /v1/models,
 * GET /health, GET /metrics. Errors are OpenAI's JSON ({@link ApiError}); nothing else of an exception reaches a client.
 *
 * <p>Nothing here waits for a generation: a completion is parsed and submitted to the batcher; the batcher's thread
 * queues text into the request's {@link TokenSink}, and a writer thread sends it as tokens come (a stream) or when it
 * ends (one JSON response). A client that disconnects cancels its sequence, which leaves the batch at the next step.
 */
public final class OpenAiApi implements AutoCloseable {
    /** Settings of the HTTP side: where to listen, the API key (null: none), limits and the per-request timeout. */
    public record Options(String host, int port, String apiKey, long maxBodyBytes, int maxTokens, double timeoutSeconds) {}

    private static final ObjectMapper JSON = new ObjectMapper();
    private final ServedModels models;
    private final ContinuousBatcher batcher;
    private final ServeMetrics metrics;
    private final Options options;
    private final byte[] keyDigest;
    private final long created = System.currentTimeMillis() / 1000;
    /** Turn generated text into JSON and write it (see {@link Answer}). */
    private final ExecutorService writers = Executors.newFixedThreadPool(2, r -> {
        Thread t = new Thread(r, "jtune-answer");
        t.setDaemon(true);
        return t;
    });

    public OpenAiApi(ServedModels models, ContinuousBatcher batcher, ServeMetrics metrics, Options options) {
        this.models = models;
        this.batcher = batcher;
        this.metrics = metrics;
        this.options = options;
        this.keyDigest = options.apiKey() == null ? null : sha256(options.apiKey());
    }

    public Options options() {
        return options;
    }

    /** Stops the writer threads; call once the HTTP server has written its last answer. */
    @Override
    public void close() {
        writers.shutdown();
    }

    /** Answers one request (at once, or later from the batcher's thread for a completion). Never throws. */
    void handle(ApiExchange ex) {
        String path = ex.path();
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
                    ex.respond(200, metrics.contentType(), buf.toByteArray());
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
        } catch (IOException | RuntimeException e) {
            System.err.println("jtune serve: " + path + ": " + e);
            sendError(ex, ApiError.internal());
        }
    }

    /** A request the HTTP parser could not read (a bad request line or header): 400. */
    void malformed(ApiExchange ex) {
        sendError(ex, ApiError.badRequest("The request is not valid HTTP"));
    }

    /** Submits one completion; its sink answers 200 with the whole answer, or server-sent events as tokens come. */
    private void complete(ApiExchange ex, CompletionRequest r) {
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
        String id = (r.chat() ? "chatcmpl-" : "cmpl-") + UUID.randomUUID().toString().replace("-", "");
        long createdAt = System.currentTimeMillis() / 1000;
        Answer answer = r.stream() ? new EventStream(ex, r, id, createdAt) : new WholeAnswer(ex, r, id, createdAt);
        Sequence s = new Sequence(entry, ids, promptText, r.maxTokens(), maxPositions,
                new TextGenerator.Settings(r.maxTokens(), r.temperature(), r.topP(), r.seed()), r.stop(), answer,
                (long) (options.timeoutSeconds() * 1e9));
        batcher.submit(s);                  // 429, 503 or 400 thrown here, before anything is written
        ex.onDisconnect(s::cancel);        // the client went away: the sequence leaves the batch at the next step
        answer.open();
    }

    /**
     * Where a sequence's output goes: a response that may start only once the request is accepted ({@link #open}).
     * The batcher's thread only queues text and the outcome here; a writer thread turns them into JSON and writes
     * them, so the thread that owns the model spends its time on the model.
     */
    private abstract class Answer implements TokenSink {
        final ApiExchange ex;
        final CompletionRequest r;
        final String id;          // chatcmpl-… or cmpl-…
        final long createdAt;     // seconds since the epoch
        private final Queue<Object> pending = new ConcurrentLinkedQueue<>();   // text pieces, then the outcome
        private final AtomicBoolean scheduled = new AtomicBoolean();
        private volatile boolean open;

        Answer(ApiExchange ex, CompletionRequest r, String id, long createdAt) {
            this.ex = ex;
            this.r = r;
            this.id = id;
            this.createdAt = createdAt;
        }

        /** Called once the batcher accepted the request, on the request's thread; then what comes is written. */
        void open() {
            opened();
            open = true;
            schedule();
        }

        @Override
        public void text(String delta) {
            pending.add(delta);
            schedule();
        }

        @Override
        public void finished(Sequence.Outcome outcome) {
            pending.add(outcome);
            schedule();
        }

        /** At most one drain runs or waits per answer, so pieces are written in order. */
        private void schedule() {
            if (open && !pending.isEmpty() && scheduled.compareAndSet(false, true)) writers.execute(this::drain);
        }

        private void drain() {
            for (Object o; (o = pending.poll()) != null; ) {
                if (o instanceof String text) sendText(text);
                else sendEnd((Sequence.Outcome) o);
            }
            scheduled.set(false);
            schedule();   // what came after the last poll
        }

        abstract void opened();   // the response may start (a stream's headers)

        abstract void sendText(String delta);

        abstract void sendEnd(Sequence.Outcome o);
    }

    private static boolean cancelled(Sequence.Outcome o) {
        return o.error() == null && o.finishReason() == null;   // the client went away: nobody to answer
    }

    /** One JSON response when the sequence ends. */
    private final class WholeAnswer extends Answer {
        WholeAnswer(ApiExchange ex, CompletionRequest r, String id, long createdAt) {
            super(ex, r, id, createdAt);
        }

        @Override
        void opened() {}

        @Override
        void sendText(String delta) {}   // the outcome carries the whole text

        @Override
        void sendEnd(Sequence.Outcome o) {
            if (cancelled(o)) return;
            if (o.error() != null) {
                sendError(ex, o.error());
                return;
            }
            ObjectNode resp = JSON.createObjectNode().put("id", id).put("object", r.chat() ? "chat.completion" : "text_completion")
                    .put("created", createdAt).put("model", r.model());
            ObjectNode choice = resp.putArray("choices").addObject().put("index", 0);
            if (r.chat()) choice.putObject("message").put("role", "assistant").put("content", o.text());
            else choice.put("text", o.text()).putNull("logprobs");
            choice.put("finish_reason", o.finishReason());
            resp.set("usage", usage(o));
            sendJson(ex, 200, resp);
        }
    }

    /** Server-sent events: one chunk per piece of text, a last chunk with the finish reason, then {@code data: [DONE]}. */
    private final class EventStream extends Answer {
        EventStream(ApiExchange ex, CompletionRequest r, String id, long createdAt) {
            super(ex, r, id, createdAt);
        }

        @Override
        void opened() {
            ex.startEvents();
            if (r.chat()) event(chunk().set("choices", choices("", true, null)));
        }

        @Override
        void sendText(String delta) {
            event(chunk().set("choices", choices(delta, false, null)));
        }

        @Override
        void sendEnd(Sequence.Outcome o) {
            if (o.error() != null) {
                event(errorBody(o.error()));
            } else if (!cancelled(o)) {
                event(chunk().set("choices", choices("", false, o.finishReason())));
                if (r.includeUsage()) {
                    ObjectNode u = chunk();
                    u.putArray("choices");
                    u.set("usage", usage(o));
                    event(u);
                }
            }
            ex.event("data: [DONE]\n\n".getBytes(StandardCharsets.UTF_8));
            ex.endEvents();
        }

        private ObjectNode chunk() {
            return JSON.createObjectNode().put("id", id).put("object", r.chat() ? "chat.completion.chunk" : "text_completion")
                    .put("created", createdAt).put("model", r.model());
        }

        private ArrayNode choices(String text, boolean first, String finishReason) {
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

        private void event(JsonNode data) {
            try {
                ex.event(("data: " + JSON.writeValueAsString(data) + "\n\n").getBytes(StandardCharsets.UTF_8));
            } catch (IOException e) {
                throw new IllegalStateException(e);   // Jackson writing its own tree to a string does not fail
            }
        }
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

    private void authorize(ApiExchange ex) {
        if (keyDigest == null) return;
        String h = ex.header("Authorization");
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

    private static void requireMethod(ApiExchange ex, String method) {
        if (!ex.method().equalsIgnoreCase(method)) throw ApiError.methodNotAllowed(ex.method(), ex.path());
    }

    /** The JSON body; 413 when it was over the limit (the adapter counts every byte, whether or not Content-Length said). */
    private JsonNode readBody(ApiExchange ex) {
        byte[] body = ex.body();
        if (body == null) throw ApiError.tooLarge(options.maxBodyBytes());
        try {
            return JSON.readTree(body);
        } catch (IOException e) {
            throw ApiError.badRequest("The request body is not valid JSON: " + firstLine(e.getMessage()));
        }
    }

    private static void sendError(ApiExchange ex, ApiError e) {
        if (e.status() == 401) ex.respond(e.status(), "application/json", json(errorBody(e)), "WWW-Authenticate", "Bearer");
        else ex.respond(e.status(), "application/json", json(errorBody(e)));
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

    private static void sendJson(ApiExchange ex, int status, JsonNode body) {
        ex.respond(status, "application/json", json(body));
    }

    private static byte[] json(JsonNode node) {
        try {
            return JSON.writeValueAsBytes(node);
        } catch (IOException e) {
            throw new IllegalStateException(e);
        }
    }
}
