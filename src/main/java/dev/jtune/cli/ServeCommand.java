package dev.jtune.cli;

import dev.jtune.kernels.Ops;
import dev.jtune.model.CausalLM;
import dev.jtune.plan.DeviceMemory;
import dev.jtune.plan.MemoryPlanner;
import dev.jtune.serve.ModelServer;
import dev.jtune.serve.OpenAiApi;
import dev.jtune.serve.RequestLog;
import dev.jtune.serve.ServedModels;
import dev.jtune.util.Devices;
import dev.jtune.util.Tensors;
import dev.jtune.util.UserError;
import org.bytedeco.pytorch.Device;
import picocli.CommandLine.Command;
import picocli.CommandLine.Option;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.concurrent.Callable;

@Command(name = "serve", mixinStandardHelpOptions = true,
        description = {"Serve a model (and LoRA adapters on it) over an OpenAI-compatible HTTP API with continuous batching.",
                "Routes: POST /v1/chat/completions, POST /v1/completions, GET /v1/models, GET /health, GET /metrics (Prometheus).",
                "SIGTERM (or Ctrl-C) stops accepting, finishes the accepted requests and exits 0."})
final class ServeCommand implements Callable<Integer> {
    static final String API_KEY_ENV = "JTUNE_API_KEY";

    @Option(names = "--model", required = true, paramLabel = "DIR", description = "Hugging Face model directory (the base).")
    Path model;

    @Option(names = "--served-model-name", paramLabel = "ID", description = "The base model's id in the API. Default: the directory's name.")
    String servedName;

    @Option(names = "--adapter", paramLabel = "NAME=DIR", description = "A PEFT LoRA adapter to serve on the base under the id NAME; repeatable.")
    List<String> adapters = List.of();

    @Option(names = "--host", defaultValue = "127.0.0.1", description = "Address to bind; 0.0.0.0 exposes the server to the network. Default: ${DEFAULT-VALUE}.")
    String host;

    @Option(names = "--port", defaultValue = "8000", description = "Port (0: any free one). Default: ${DEFAULT-VALUE}.")
    int port;

    @Option(names = "--api-key", paramLabel = "KEY", description = "Require 'Authorization: Bearer KEY' on /v1 routes; or set " + API_KEY_ENV + ".")
    String apiKey;

    @Option(names = "--max-batch", defaultValue = "8", description = "Requests decoded together at most. Default: ${DEFAULT-VALUE}.")
    int maxBatch;

    @Option(names = "--max-queue", defaultValue = "64", description = "Requests waiting to join the batch at most; more get 429. Default: ${DEFAULT-VALUE}.")
    int maxQueue;

    @Option(names = "--max-tokens", defaultValue = "1024", description = "The most new tokens a request may ask for (and its default). Default: ${DEFAULT-VALUE}.")
    int maxTokens;

    @Option(names = "--max-body", defaultValue = "1MiB", paramLabel = "SIZE", description = "Largest request body; larger ones get 413. Default: ${DEFAULT-VALUE}.")
    String maxBody;

    @Option(names = "--request-timeout", defaultValue = "600", paramLabel = "SECONDS", description = "A request still running after this gets 504 and stops. Default: ${DEFAULT-VALUE}.")
    double requestTimeout;

    @Option(names = "--kv-memory", paramLabel = "SIZE", description = "KV cache budget for the running requests (e.g. 2GiB). "
            + "Default: 90% of what the device's memory (as `jtune plan` finds it, or " + DeviceMemory.ENV + ") leaves after the weights.")
    String kvMemory;

    @Option(names = "--request-log", paramLabel = "FILE", description = "Append one JSON line per finished request (no texts unless --log-texts).")
    Path requestLog;

    @Option(names = "--log-texts", description = "Write prompts and completions into --request-log (for `jtune drift --requests`).")
    boolean logTexts;

    @Option(names = "--dtype", defaultValue = "float32", description = "Compute dtype: float32 or bfloat16. Default: ${DEFAULT-VALUE}.")
    String dtype;

    @Option(names = "--device", defaultValue = "cpu", description = "cpu, cuda, cuda:N or auto. Default: ${DEFAULT-VALUE}.")
    String device;

    @Option(names = "--kernels", defaultValue = "auto", paramLabel = "auto|off", description = "jtune's fused CUDA kernels (auto) or LibTorch only (off). Default: ${DEFAULT-VALUE}.")
    String kernels;

    @Override
    public Integer call() throws Exception {
        if (!Files.isRegularFile(model.resolve("config.json"))) throw new UserError("--model " + model + ": no config.json; expected a Hugging Face model directory");
        if (maxBatch < 1) throw new UserError("--max-batch: must be at least 1, got " + maxBatch);
        if (maxQueue < 1) throw new UserError("--max-queue: must be at least 1, got " + maxQueue);
        if (maxTokens < 1) throw new UserError("--max-tokens: must be at least 1, got " + maxTokens);
        if (!(requestTimeout > 0)) throw new UserError("--request-timeout: must be positive, got " + requestTimeout);
        if (port < 0 || port > 65535) throw new UserError("--port: must be 0..65535, got " + port);
        if (logTexts && requestLog == null) throw new UserError("--log-texts: only with --request-log FILE");
        long bodyLimit = DeviceMemory.parse(maxBody, "--max-body");
        Map<String, Path> adapterDirs = new LinkedHashMap<>();
        for (String a : adapters) {
            int eq = a.indexOf('=');
            if (eq <= 0 || eq == a.length() - 1) throw new UserError("--adapter " + a + ": expected NAME=DIR");
            if (adapterDirs.put(a.substring(0, eq), Path.of(a.substring(eq + 1))) != null) {
                throw new UserError("--adapter " + a + ": the name '" + a.substring(0, eq) + "' is given twice");
            }
        }
        String key = apiKey != null ? apiKey : System.getenv(API_KEY_ENV);
        if (key != null && key.isBlank()) throw new UserError("--api-key: must not be empty");
        Device dev = Devices.parse(device, "--device");
        Ops ops = ModelOptions.kernels(kernels);
        String baseId = servedName != null ? servedName : model.toAbsolutePath().normalize().getFileName().toString();
        RequestLog log = requestLog == null ? null : new RequestLog(requestLog, logTexts);
        ServedModels served = ServedModels.load(model, baseId, adapterDirs, Tensors.parseDtype(dtype, "--dtype"), dev, ops);
        long kvBudget = kvBudget(served.model(), dev);
        ModelServer server;
        try {
            server = new ModelServer(served, maxBatch, maxQueue, kvBudget, log,
                    new OpenAiApi.Options(host, port, key, bodyLimit, maxTokens, requestTimeout));
        } catch (IOException e) {
            served.close();
            throw new UserError("--host " + host + " --port " + port + ": cannot listen: " + e.getMessage());
        }
        Runnable drain = () -> {
            System.err.println("jtune serve: draining: finishing the accepted requests, refusing new ones");
            try {
                server.drainAndClose();
            } catch (InterruptedException e) {
                Thread.currentThread().interrupt();
            }
        };
        // SIGTERM and SIGINT drain and exit 0 (the JVM's default would exit 143 at once, dropping requests in flight)
        for (String sig : new String[] {"TERM", "INT"}) {
            try {
                sun.misc.Signal.handle(new sun.misc.Signal(sig), s -> new Thread(drain, "jtune-drain").start());
            } catch (IllegalArgumentException e) {
                // signal not available on this platform
            }
        }
        System.err.printf("jtune serve: listening on http://%s:%d (models: %s; max batch %d, KV budget %s)%n", host, server.port(),
                String.join(", ", served.ids()), maxBatch, MemoryPlanner.human(kvBudget));
        System.err.flush();
        server.awaitStopped();
        System.err.println("jtune serve: stopped");
        return 0;
    }

    /** --kv-memory, or 90% of the device's memory less the weights and the runtime (LibTorch, or a CUDA context). */
    private long kvBudget(CausalLM m, Device dev) {
        if (kvMemory != null) return DeviceMemory.parse(kvMemory, "--kv-memory");
        boolean cuda = dev.is_cuda();
        DeviceMemory.Budget b = DeviceMemory.resolve(null, cuda, cuda ? dev.index() : 0);
        long weights = 0;
        for (var t : m.parameters().values()) weights += t.numel() * t.element_size();
        long runtime = cuda ? 1L << 30 : 300L << 20;
        long left = b.bytes() - weights - runtime;
        if (left <= 0) throw new UserError("the model's weights (" + MemoryPlanner.human(weights) + ") leave no memory for KV caches in "
                + b.source() + "; give a budget with --kv-memory");
        return (long) (left * 0.9);
    }
}
