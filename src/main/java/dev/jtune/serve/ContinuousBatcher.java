package dev.jtune.serve;

import dev.jtune.infer.TextGenerator;
import dev.jtune.model.CausalLM;
import dev.jtune.model.KvCache;
import dev.jtune.util.Tensors;
import org.bytedeco.javacpp.PointerScope;
import org.bytedeco.pytorch.NoGradGuard;
import org.bytedeco.pytorch.Scalar;
import org.bytedeco.pytorch.Tensor;
import org.bytedeco.pytorch.TensorVector;
import org.bytedeco.pytorch.global.torch;
import org.bytedeco.pytorch.global.torch.ScalarType;

import java.util.ArrayDeque;
import java.util.ArrayList;
import java.util.Iterator;
import java.util.List;

/**
 * Continuous batching: one thread owns the model and runs a loop of steps. Between two decode steps waiting requests
 * join (prefilled together in one forward, each into its own KV cache, which gives its first token) and finished or
 * cancelled ones leave; a decode step then feeds the last token of every running request in one forward.
 *
 * <p>A decode step over B > 1 requests assembles their caches into one batch cache, left-padded to the longest
 * (B, kvHeads, S + 1, headDim) per layer, with a boolean mask (B, 1, 1, S + 1) that hides the padding and positions
 * (B, 1) that count each request's own tokens, as {@link dev.jtune.infer.BatchGenerator} does; the new keys and values
 * are copied back into each request's cache. A greedy answer is therefore the same token for token alone, with
 * others, and as {@code jtune generate}. One request alone decodes straight on its own cache, as TextGenerator does.
 *
 * <p>Memory: each request's cache is reserved twice (its own, and its rows of the step's batch cache) against the KV
 * budget; a request waits in the queue until it fits.
 */
public final class ContinuousBatcher implements AutoCloseable {
    private final ServedModels models;
    private final CausalLM model;
    private final int maxBatch;
    private final int maxQueue;
    private final long kvBudgetBytes;
    private final ServeMetrics metrics;
    private final RequestLog log;
    private final Object lock = new Object();
    private final ArrayDeque<Sequence> pending = new ArrayDeque<>();   // guarded by lock
    private final List<Sequence> running = new ArrayList<>();          // batcher thread only
    private boolean draining;                                          // guarded by lock
    private boolean stopped;                                           // guarded by lock
    private int inFlight;                                              // pending + running, guarded by lock
    private long kvInUse;                                              // batcher thread only
    private volatile int largestBatch;                                 // the most rows one decode step has had
    private volatile int largestPrefill;                               // the most prompts one prefill has had
    private final Thread thread;

    public ContinuousBatcher(ServedModels models, int maxBatch, int maxQueue, long kvBudgetBytes, ServeMetrics metrics, RequestLog log) {
        this.models = models;
        this.model = models.model();
        this.maxBatch = maxBatch;
        this.maxQueue = maxQueue;
        this.kvBudgetBytes = kvBudgetBytes;
        this.metrics = metrics;
        this.log = log;
        this.thread = new Thread(this::loop, "jtune-batcher");
        this.thread.setDaemon(true);
        this.thread.start();
    }

    /** Bytes of one request's own cache: keys and values of every layer for its capacity. */
    public long cacheBytes(int capacity) {
        var c = model.config();
        return 2L * c.numLayers() * c.numKvHeads() * c.headDim() * capacity * Tensors.elementSize(model.dtype());
    }

    /** What admission reserves for a request: its cache and its rows of a step's batch cache. */
    long reservation(Sequence s) {
        return 2 * cacheBytes(s.capacity());
    }

    /** Queues a request; 503 while draining, 429 when the queue is full, 400 when it could never fit the KV budget. */
    void submit(Sequence s) {
        if (reservation(s) > kvBudgetBytes) {
            throw ApiError.badParam("max_tokens", "the prompt (" + s.prompt.length + " tokens) and " + s.budget + " new tokens need "
                    + reservation(s) + " bytes of KV cache, over the server's budget of " + kvBudgetBytes + " bytes; ask for fewer tokens");
        }
        synchronized (lock) {
            if (draining) throw ApiError.draining();
            if (pending.size() >= maxQueue) throw ApiError.queueFull(maxQueue);
            pending.add(s);
            inFlight++;
            metrics.queueDepth(pending.size());
            lock.notifyAll();
        }
    }

    /** Stops accepting (new requests get 503) and waits until every accepted request has finished. */
    public void drain() throws InterruptedException {
        synchronized (lock) {
            draining = true;
            lock.notifyAll();
            while (inFlight > 0) lock.wait(200);
        }
    }

    public boolean draining() {
        synchronized (lock) {
            return draining;
        }
    }

    /** The most requests one decode step has fed so far. */
    int largestBatch() {
        return largestBatch;
    }

    /** The most prompts one prefill forward has taken so far. */
    int largestPrefill() {
        return largestPrefill;
    }

    /** Requests accepted and not yet finished (queued or running). */
    public int inFlight() {
        synchronized (lock) {
            return inFlight;
        }
    }

    private void loop() {
        try (NoGradGuard ng = new NoGradGuard()) {
            while (true) {
                List<Sequence> admitted = new ArrayList<>();
                synchronized (lock) {
                    while (pending.isEmpty() && running.isEmpty() && !stopped) lock.wait();
                    if (stopped) break;
                    // join: oldest first, while the batch has room and the cache fits (one always may when alone)
                    while (!pending.isEmpty() && running.size() + admitted.size() < maxBatch) {
                        Sequence s = pending.peek();
                        long need = reservation(s);
                        if (kvInUse + need > kvBudgetBytes && !(running.isEmpty() && admitted.isEmpty())) break;
                        pending.poll();
                        kvInUse += need;
                        admitted.add(s);
                    }
                    metrics.queueDepth(pending.size());
                    expireQueued();
                }
                List<Sequence> joining = new ArrayList<>();
                for (Sequence s : admitted) {
                    if (s.cancelled()) finish(s, null, null);
                    else if (s.budget <= 0) finish(s, "length", null);
                    else joining.add(s);
                }
                if (!joining.isEmpty()) {
                    try {
                        prefill(joining);
                    } catch (RuntimeException e) {
                        for (Sequence s : joining) failed(s, e);
                    }
                    for (Sequence s : joining) if (!s.done) running.add(s);
                }
                running.removeIf(s -> s.done || leaves(s));
                metrics.batchSize(running.size());
                metrics.kvCacheBytes(kvInUse / 2);
                if (running.isEmpty()) continue;
                try {
                    decodeStep();
                } catch (RuntimeException e) {
                    for (Sequence s : running) failed(s, e);
                }
                running.removeIf(s -> s.done || leaves(s));
                metrics.batchSize(running.size());
                metrics.kvCacheBytes(kvInUse / 2);
            }
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
        }
    }

    /** Queued requests whose client left or whose time ran out go now, without running (caller holds the lock). */
    private void expireQueued() {
        long now = System.nanoTime();
        for (Iterator<Sequence> it = pending.iterator(); it.hasNext(); ) {
            Sequence s = it.next();
            if (s.cancelled() || now > s.deadlineNanos) {
                it.remove();
                kvInUse += reservation(s);   // finish() gives it back
                endOutsideLock(s);
            }
        }
    }

    private void endOutsideLock(Sequence s) {
        if (s.cancelled()) finish(s, null, null);
        else finish(s, null, ApiError.timeout((s.deadlineNanos - s.createdNanos) / 1e9));
    }

    /** Whether a running request leaves before the next step: its client went away or its time ran out. */
    private boolean leaves(Sequence s) {
        if (s.cancelled()) {
            finish(s, null, null);
            return true;
        }
        if (System.nanoTime() > s.deadlineNanos) {
            finish(s, null, ApiError.timeout((s.deadlineNanos - s.createdNanos) / 1e9));
            return true;
        }
        return false;
    }

    /**
     * The prompts of the requests joining at this step, each into its own new cache; each one's last position gives
     * its first token. One request runs alone, as TextGenerator does; several run in one forward, left-padded to the
     * longest (B, L) with positions counting each prompt's own tokens and a (B, 1, L, L) mask hiding the padding (as
     * {@link dev.jtune.infer.BatchGenerator} prefills), then each row's keys and values, padding cut, are copied into
     * its own cache.
     */
    private void prefill(List<Sequence> joining) {
        int b = joining.size();
        largestPrefill = Math.max(largestPrefill, b);
        long[] chosen = new long[b];
        try (PointerScope scope = new PointerScope()) {
            int[] adapters = new int[b];
            for (int i = 0; i < b; i++) adapters[i] = joining.get(i).adapter;
            models.rows().set(adapters);
            if (b == 1) {
                Sequence s = joining.get(0);
                s.cache = model.newCache(1, s.capacity());
                Tensor ids = Tensors.longs(new long[][] {s.prompt}).to(model.device(), ScalarType.Long);
                Tensor logits = model.forward(ids, null, null, s.cache);                  // (1, T, V)
                Tensor last = logits.select(1, logits.size(1) - 1).squeeze(0);            // (V,)
                chosen[0] = TextGenerator.choose(last, s.settings, s.random);            // host sync
            } else {
                Tensor logits = batchedPrefill(joining);                                  // (B, V)
                for (int i = 0; i < b; i++) chosen[i] = TextGenerator.choose(logits.select(0, i), joining.get(i).settings, joining.get(i).random);
            }
        }
        for (int i = 0; i < b; i++) {
            Sequence s = joining.get(i);
            metrics.promptTokens(s.modelId, s.prompt.length);
            accept(s, chosen[i]);
        }
    }

    /** Several prompts in one forward (see {@link #prefill}); returns the last real position's logits, (B, V). */
    private Tensor batchedPrefill(List<Sequence> joining) {
        int b = joining.size();
        int l = 0;
        for (Sequence s : joining) l = Math.max(l, s.prompt.length);
        long[][] ids = new long[b][l];                 // padding holds token 0; masked out
        long[][] positions = new long[b][l];
        long[] valid = new long[b * l];                // (B, L): 1 where a slot holds a real token
        for (int i = 0; i < b; i++) {
            long[] p = joining.get(i).prompt;
            int pad = l - p.length;
            System.arraycopy(p, 0, ids[i], pad, p.length);
            for (int j = pad; j < l; j++) {
                positions[i][j] = j - pad;
                valid[i * l + j] = 1;
            }
        }
        var dev = model.device();
        Tensor keyValid = Tensors.longs(valid).view(b, 1, 1, l).to(dev, ScalarType.Long).ne(new Scalar(0));       // (B, 1, 1, L)
        Tensor mask = keyValid.logical_or(torch.eye(l, Tensors.options(ScalarType.Bool, dev)))                      // a padded query sees itself
                .logical_and(torch.ones(new long[] {l, l}, Tensors.options(ScalarType.Bool, dev)).tril());        // (B, 1, L, L)
        try (KvCache batch = model.newCache(b, l)) {
            Tensor hidden = model.hidden(Tensors.longs(ids).to(dev, ScalarType.Long), Tensors.longs(positions).to(dev, ScalarType.Long), mask, batch);
            Tensor logits = model.logits(hidden.select(1, l - 1));                                                  // (B, V)
            for (int i = 0; i < b; i++) {
                Sequence s = joining.get(i);
                int pad = l - s.prompt.length;
                s.cache = model.newCache(1, s.capacity());
                for (int layer = 0; layer < model.config().numLayers(); layer++) {
                    Tensor[] kv = batch.cached(layer);                                                              // (B, kvH, L, hd)
                    s.cache.append(layer, kv[0].narrow(0, i, 1).narrow(2, pad, s.prompt.length), kv[1].narrow(0, i, 1).narrow(2, pad, s.prompt.length));
                }
                s.cache.advance(s.prompt.length);
            }
            return logits;
        }
    }

    /** One token for every running request, in one forward. */
    private void decodeStep() {
        int b = running.size();
        largestBatch = Math.max(largestBatch, b);
        long[] chosen = new long[b];
        try (PointerScope scope = new PointerScope()) {
            int[] adapters = new int[b];
            long[][] tokens = new long[b][1];
            for (int i = 0; i < b; i++) {
                adapters[i] = running.get(i).adapter;
                tokens[i][0] = running.get(i).lastToken;
            }
            models.rows().set(adapters);
            Tensor input = Tensors.longs(tokens).to(model.device(), ScalarType.Long);   // (B, 1)
            Tensor logits;                                                              // (B, V)
            if (b == 1) {
                logits = model.forward(input, null, null, running.get(0).cache).select(1, 0);
            } else {
                logits = batchedForward(input);
            }
            long[] greedy = Tensors.toLongs(torch.argmax(logits, new org.bytedeco.pytorch.LongOptional(-1), false));   // host sync
            for (int i = 0; i < b; i++) {
                Sequence s = running.get(i);
                chosen[i] = s.settings.temperature() > 0 ? TextGenerator.choose(logits.select(0, i), s.settings, s.random) : greedy[i];
            }
        }
        for (int i = 0; i < b; i++) accept(running.get(i), chosen[i]);
    }

    /**
     * The step's forward over several requests: their caches left-padded into one (B, kvHeads, S + 1, headDim) per
     * layer, padding masked out, then each request's new key and value copied back into its own cache.
     */
    private Tensor batchedForward(Tensor input) {
        int b = running.size();
        int s = 0;
        for (Sequence q : running) s = Math.max(s, q.cache.length());
        var c = model.config();
        long[] valid = new long[b * (s + 1)];                  // (B, S + 1): 1 where a slot holds a real token
        long[][] positions = new long[b][1];
        for (int i = 0; i < b; i++) {
            int len = running.get(i).cache.length();
            for (int j = s - len; j <= s; j++) valid[i * (s + 1) + j] = 1;
            positions[i][0] = len;                             // the next position of this request's own sequence
        }
        try (KvCache batch = model.newCache(b, s + 1)) {
            for (int layer = 0; layer < c.numLayers(); layer++) {
                TensorVector ks = new TensorVector(), vs = new TensorVector();
                for (Sequence q : running) {
                    Tensor[] kv = q.cache.cached(layer);                                  // each (1, kvH, len, hd)
                    int pad = s - q.cache.length();
                    ks.push_back(leftPad(kv[0], pad));
                    vs.push_back(leftPad(kv[1], pad));
                }
                batch.append(layer, torch.cat(ks, 0), torch.cat(vs, 0));                 // (B, kvH, S, hd)
            }
            batch.advance(s);
            Tensor mask = Tensors.longs(valid).view(b, 1, 1, s + 1).to(model.device(), ScalarType.Long).ne(new Scalar(0));
            Tensor logits = model.forward(input, Tensors.longs(positions).to(model.device(), ScalarType.Long), mask, batch).select(1, 0);
            for (int layer = 0; layer < c.numLayers(); layer++) {
                Tensor[] kv = batch.cached(layer);                                        // (B, kvH, S + 1, hd)
                Tensor k = kv[0].narrow(2, s, 1), v = kv[1].narrow(2, s, 1);              // (B, kvH, 1, hd)
                for (int i = 0; i < b; i++) running.get(i).cache.append(layer, k.narrow(0, i, 1), v.narrow(0, i, 1));
            }
            for (Sequence q : running) q.cache.advance(1);
            return logits;
        }
    }

    private static Tensor leftPad(Tensor kv, int pad) {
        if (pad == 0) return kv;
        Tensor zeros = torch.zeros(new long[] {kv.size(0), kv.size(1), pad, kv.size(3)}, Tensors.options(kv.scalar_type(), kv.device()));
        return torch.cat(new TensorVector(zeros, kv), 2);
    }

    /** A chosen token: EOS ends the request; otherwise its text goes out, and a stop string or the budget may end it. */
    private void accept(Sequence s, long token) {
        long now = System.nanoTime();
        if (s.generated == 0) {
            s.firstTokenNanos = now;
            metrics.timeToFirstToken(s.modelId, (now - s.createdNanos) / 1e9);
        } else {
            metrics.interTokenLatency(s.modelId, (now - s.lastTokenNanos) / 1e9);
        }
        s.lastTokenNanos = now;
        if (s.eosIds.contains(token)) {
            finish(s, "stop", null);
            return;
        }
        s.generated++;
        s.lastToken = token;
        metrics.generatedTokens(s.modelId, 1);
        String out = s.stops.push(s.decoder.push(token));
        if (!out.isEmpty()) {
            s.text.append(out);
            s.sink.text(out);
        }
        if (s.stops.hit()) finish(s, "stop", null);
        else if (s.generated >= s.budget) finish(s, "length", null);
    }

    private void failed(Sequence s, RuntimeException e) {
        System.err.println("jtune serve: request for " + s.modelId + " failed: " + e);
        finish(s, null, ApiError.internal());
    }

    /** Ends a request once: frees its cache, flushes held-back text, tells the sink, counts it. */
    private void finish(Sequence s, String reason, ApiError error) {
        if (s.done) return;
        s.done = true;
        if (s.cache != null) {
            s.cache.close();
            s.cache = null;
        }
        kvInUse -= reservation(s);
        if (error == null && reason != null && !s.stops.hit()) {
            String rest = s.stops.push(s.decoder.flush());
            rest += s.stops.hit() ? "" : s.stops.flush();
            if (!rest.isEmpty()) {
                s.text.append(rest);
                s.sink.text(rest);
            }
        }
        String status = error != null ? String.valueOf(error.status()) : reason == null ? "cancelled" : "200";
        double seconds = (System.nanoTime() - s.createdNanos) / 1e9;
        metrics.finished(s.modelId, status, seconds);
        if (log != null) log.write(s, status, reason, seconds);
        s.sink.finished(new Sequence.Outcome(reason, s.prompt.length, s.generated, s.text.toString(), error));
        synchronized (lock) {
            inFlight--;
            lock.notifyAll();
        }
    }

    /** Stops the loop (after {@link #drain}, nothing is left to do). */
    @Override
    public void close() {
        synchronized (lock) {
            stopped = true;
            lock.notifyAll();
        }
        try {
            thread.join(5000);
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
        }
    }
}
