package dev.jtune.serve;

import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.io.BufferedReader;
import java.io.IOException;
import java.io.InputStreamReader;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.TimeUnit;
import java.util.regex.Matcher;
import java.util.regex.Pattern;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assumptions.assumeTrue;

/**
 * A real {@code jtune serve} process (tiny Llama + one LoRA adapter, an API key, small limits) checked by the official
 * OpenAI Node client: src/test/node/serve/serve.test.mjs lists models, completes, streams, runs concurrent requests,
 * provokes each error code, disconnects mid-stream, reads /metrics with curl, and finally sends SIGTERM under load.
 * The server must then exit 0 on its own.
 */
class OpenAiClientTest {
    static final Path NODE_PROJECT = Path.of("src/test/node/serve");
    static final Pattern LISTENING = Pattern.compile("listening on http://127\\.0\\.0\\.1:(\\d+)");

    @TempDir
    Path tmp;

    static boolean nodeAvailable() {
        try {
            return new ProcessBuilder("node", "--version").redirectErrorStream(true).start().waitFor() == 0;
        } catch (IOException | InterruptedException e) {
            return false;
        }
    }

    @Test
    void officialClientAgainstARunningServer() throws Exception {
        assumeTrue(nodeAvailable(), "node is not installed");
        assertTrue(Files.isDirectory(NODE_PROJECT.resolve("node_modules/openai")),
                "the openai npm package is missing: run .ci/npm-install.sh (npm ci in " + NODE_PROJECT + ")");
        Path model = ServeFixtures.model("llama", tmp.resolve("tiny-llama"), 5);
        Path adapter = ServeFixtures.adapter(model, List.of("q_proj", "v_proj"), 1, tmp.resolve("qv"));
        int maxBatch = 4, maxQueue = 8, maxBody = 64 * 1024;   // the queue holds the 8 concurrent requests whenever they arrive
        Path log = tmp.resolve("requests.jsonl");
        List<String> cmd = new ArrayList<>(List.of(Path.of(System.getProperty("java.home"), "bin", "java").toString(), "-Xmx1g",
                "-cp", System.getProperty("java.class.path"), "dev.jtune.cli.Main", "serve", "--model", model.toString(),
                "--served-model-name", "tiny", "--adapter", "tiny-qv=" + adapter, "--port", "0", "--api-key", "sekrit",
                "--max-batch", "" + maxBatch, "--max-queue", "" + maxQueue, "--max-body", "" + maxBody, "--max-tokens", "64",
                "--kv-memory", "256MiB", "--request-log", log.toString()));
        Process server = new ProcessBuilder(cmd).redirectOutput(ProcessBuilder.Redirect.DISCARD).start();
        StringBuilder serverErr = new StringBuilder();
        CompletableFuture<Integer> port = new CompletableFuture<>();
        Thread reader = new Thread(() -> {
            try (BufferedReader r = new BufferedReader(new InputStreamReader(server.getErrorStream(), StandardCharsets.UTF_8))) {
                for (String line; (line = r.readLine()) != null; ) {
                    synchronized (serverErr) {
                        serverErr.append(line).append('\n');
                    }
                    Matcher m = LISTENING.matcher(line);
                    if (m.find()) port.complete(Integer.parseInt(m.group(1)));
                }
            } catch (IOException ignored) {
                // the process ended
            }
            port.complete(-1);
        });
        reader.start();
        try {
            int p = port.get(120, TimeUnit.SECONDS);
            assertTrue(p > 0, "the server did not start: " + serverErr);
            ProcessBuilder node = new ProcessBuilder("node", "--test", "--test-reporter=spec", "serve.test.mjs")
                    .directory(NODE_PROJECT.toFile()).redirectErrorStream(true).redirectOutput(tmp.resolve("node.log").toFile());
            node.environment().put("JTUNE_URL", "http://127.0.0.1:" + p + "/v1");
            node.environment().put("JTUNE_KEY", "sekrit");
            node.environment().put("JTUNE_BASE", "tiny");
            node.environment().put("JTUNE_ADAPTER", "tiny-qv");
            node.environment().put("JTUNE_PID", "" + server.pid());
            node.environment().put("JTUNE_MAX_BODY", "" + maxBody);
            node.environment().put("JTUNE_MAX_RUNNING", "" + (maxBatch + maxQueue));
            node.environment().put("JTUNE_MAX_QUEUE", "" + maxQueue);
            Process n = node.start();
            boolean ended = n.waitFor(300, TimeUnit.SECONDS);
            if (!ended) n.destroyForcibly().waitFor();
            String out = Files.readString(tmp.resolve("node.log"));
            assertTrue(ended, "the node tests did not finish in 300 s: " + out);
            assertEquals(0, n.exitValue(), out + "\n--- server log ---\n" + serverErr);
            // the last node test sent SIGTERM: the server drains and exits 0 by itself
            assertTrue(server.waitFor(60, TimeUnit.SECONDS), "the server did not exit after SIGTERM: " + serverErr);
            assertEquals(0, server.exitValue(), serverErr.toString());
            reader.join(5000);
            assertTrue(serverErr.toString().contains("draining"), serverErr.toString());
            assertFalse(serverErr.toString().contains("Exception"), serverErr.toString());
            List<String> lines = Files.readAllLines(log);
            assertTrue(lines.size() >= 20 && lines.stream().anyMatch(l -> l.contains("\"status\":\"cancelled\"")), lines.toString());
            assertFalse(lines.get(0).contains("\"prompt\""), "no texts in the request log without --log-texts");
        } finally {
            server.destroyForcibly();
        }
    }
}
