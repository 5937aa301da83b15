package dev.jtune.serve;

import java.io.IOException;
import java.util.concurrent.CountDownLatch;

/**
 * A running {@code jtune serve}: the models, the batcher, the metrics, the request log and the HTTP front, started
 * together and stopped in the order that loses no accepted request ({@link #drainAndClose}).
 */
public final class ModelServer implements AutoCloseable {
    private final ServedModels models;
    private final ContinuousBatcher batcher;
    private final OpenAiApi api;
    private final NettyHttpServer http;
    private final RequestLog log;
    private final CountDownLatch stopped = new CountDownLatch(1);

    public ModelServer(ServedModels models, int maxBatch, int maxQueue, long kvBudgetBytes, RequestLog log, OpenAiApi.Options options) throws IOException {
        this.models = models;
        this.log = log;
        ServeMetrics metrics = new ServeMetrics();
        metrics.kvCacheBudget(kvBudgetBytes);
        this.batcher = new ContinuousBatcher(models, maxBatch, maxQueue, kvBudgetBytes, metrics, log);
        this.api = new OpenAiApi(models, batcher, metrics, options);
        NettyHttpServer h;
        try {
            h = new NettyHttpServer(api);
        } catch (IOException | RuntimeException e) {
            api.close();
            batcher.close();
            throw e;
        }
        this.http = h;
    }

    public int port() {
        return http.port();
    }

    /**
     * New requests get 503 from now on; those accepted (queued or running) finish and get their answers; then the
     * server stops listening and frees the models. Idempotent; {@link #awaitStopped} returns after it.
     */
    public synchronized void drainAndClose() throws InterruptedException {
        if (stopped.getCount() == 0) return;
        batcher.drain();
        http.close();   // after the last answers are written
        api.close();
        batcher.close();
        if (log != null) {
            try {
                log.close();
            } catch (IOException e) {
                System.err.println("jtune serve: closing the request log: " + e.getMessage());
            }
        }
        models.close();
        stopped.countDown();
    }

    public void awaitStopped() throws InterruptedException {
        stopped.await();
    }

    @Override
    public void close() throws InterruptedException {
        drainAndClose();
    }
}
