package dev.jtune.serve;

import io.prometheus.metrics.core.metrics.Counter;
import io.prometheus.metrics.core.metrics.Gauge;
import io.prometheus.metrics.core.metrics.Histogram;
import io.prometheus.metrics.expositionformats.PrometheusTextFormatWriter;
import io.prometheus.metrics.model.registry.PrometheusRegistry;

import java.io.IOException;
import java.io.OutputStream;

/**
 * The server's Prometheus metrics, kept and written by Prometheus' own Java client (classic histograms, text format
 * 0.0.4). Names follow vLLM's where they mean the same (time to first token, inter-token latency, end-to-end latency).
 */
public final class ServeMetrics {
    /** Seconds: from 1 ms (a tiny model's step) to 2 minutes. */
    private static final double[] LATENCY_BOUNDS = {0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120};

    private final PrometheusRegistry registry = new PrometheusRegistry();
    private final PrometheusTextFormatWriter writer = PrometheusTextFormatWriter.create();
    private final Counter requests = Counter.builder().name("jtune_requests_total")
            .help("Requests finished, by model and HTTP status (cancelled: the client went away)").labelNames("model", "status").register(registry);
    private final Histogram ttft = Histogram.builder().name("jtune_time_to_first_token_seconds")
            .help("From arrival to the first generated token").labelNames("model").classicOnly().classicUpperBounds(LATENCY_BOUNDS).register(registry);
    private final Histogram interToken = Histogram.builder().name("jtune_inter_token_latency_seconds")
            .help("Between two generated tokens of one request").labelNames("model").classicOnly().classicUpperBounds(LATENCY_BOUNDS).register(registry);
    private final Histogram e2e = Histogram.builder().name("jtune_request_duration_seconds")
            .help("From arrival to the last token, queueing included").labelNames("model").classicOnly().classicUpperBounds(LATENCY_BOUNDS).register(registry);
    private final Counter promptTokens = Counter.builder().name("jtune_prompt_tokens_total")
            .help("Prompt tokens prefilled").labelNames("model").register(registry);
    private final Counter generatedTokens = Counter.builder().name("jtune_generation_tokens_total")
            .help("Tokens generated (EOS not counted)").labelNames("model").register(registry);
    private final Gauge batchSize = Gauge.builder().name("jtune_running_requests")
            .help("Requests in the running batch").register(registry);
    private final Gauge queueDepth = Gauge.builder().name("jtune_waiting_requests")
            .help("Requests accepted and waiting to join the batch").register(registry);
    private final Gauge kvBytes = Gauge.builder().name("jtune_kv_cache_bytes")
            .help("Bytes of the running requests' own KV caches").register(registry);
    private final Gauge kvBudget = Gauge.builder().name("jtune_kv_cache_budget_bytes")
            .help("The KV cache budget admission works within").register(registry);

    public void finished(String model, String status, double seconds) {
        requests.labelValues(model, status).inc();
        if (status.equals("200")) e2e.labelValues(model).observe(seconds);
    }

    /** A request refused before it reached the batcher (bad parameter, unknown model, queue full, ...). */
    public void refused(String model, int status) {
        requests.labelValues(model == null ? "" : model, String.valueOf(status)).inc();
    }

    void timeToFirstToken(String model, double seconds) {
        ttft.labelValues(model).observe(seconds);
    }

    void interTokenLatency(String model, double seconds) {
        interToken.labelValues(model).observe(seconds);
    }

    void promptTokens(String model, long n) {
        promptTokens.labelValues(model).inc(n);
    }

    void generatedTokens(String model, long n) {
        generatedTokens.labelValues(model).inc(n);
    }

    void batchSize(int n) {
        batchSize.set(n);
    }

    void queueDepth(int n) {
        queueDepth.set(n);
    }

    void kvCacheBytes(long n) {
        kvBytes.set(n);
    }

    public void kvCacheBudget(long n) {
        kvBudget.set(n);
    }

    public String contentType() {
        return writer.getContentType();
    }

    /** The text exposition of every metric. */
    public void write(OutputStream out) throws IOException {
        writer.write(out, registry.scrape());
    }
}
