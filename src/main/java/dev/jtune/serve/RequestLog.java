package dev.jtune.serve;

import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ObjectNode;
import dev.jtune.util.UserError;

import java.io.BufferedWriter;
import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;
import java.time.Instant;

/**
 * {@code --request-log FILE}: one JSON line per finished request (time, model, status, finish reason, token counts,
 * latency), appended and flushed. The prompt and completion texts are written only with {@code --log-texts}
 * (they may be personal data); {@code jtune drift --requests} reads the prompts from it.
 */
public final class RequestLog implements AutoCloseable {
    private static final ObjectMapper JSON = new ObjectMapper();
    private final Path file;
    private final BufferedWriter out;
    private final boolean texts;

    public RequestLog(Path file, boolean texts) {
        this.file = file;
        this.texts = texts;
        try {
            if (file.getParent() != null) Files.createDirectories(file.getParent());
            this.out = Files.newBufferedWriter(file, StandardCharsets.UTF_8, StandardOpenOption.CREATE, StandardOpenOption.APPEND);
        } catch (IOException e) {
            throw new UserError("--request-log " + file + ": cannot open for appending: " + e.getMessage());
        }
    }

    synchronized void write(Sequence s, String status, String finishReason, double seconds) {
        ObjectNode n = JSON.createObjectNode();
        n.put("time", Instant.now().toString());
        n.put("model", s.modelId);
        n.put("status", status);
        if (finishReason != null) n.put("finish_reason", finishReason);
        n.put("prompt_tokens", s.prompt.length);
        n.put("completion_tokens", s.generated);
        if (s.firstTokenNanos > 0) n.put("ttft_s", (s.firstTokenNanos - s.createdNanos) / 1e9);
        n.put("duration_s", seconds);
        if (texts) {
            n.put("prompt", s.promptText);
            n.put("completion", s.text.toString());
        }
        try {
            out.write(JSON.writeValueAsString(n));
            out.write('\n');
            out.flush();
        } catch (IOException e) {
            System.err.println("jtune serve: cannot write the request log " + file + ": " + e.getMessage());
        }
    }

    @Override
    public synchronized void close() throws IOException {
        out.close();
    }
}
