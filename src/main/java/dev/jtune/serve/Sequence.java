package dev.jtune.serve;

import dev.jtune.infer.TextGenerator;
import dev.jtune.model.KvCache;
import dev.jtune.tokenizer.StreamingDecoder;

import java.util.Random;
import java.util.Set;

/**
 * One request being decoded: its prompt, sampling settings, its own KV cache (batch 1, room for the prompt and every
 * new token), the text so far and where the text goes. Owned by the batcher's thread, except {@link #cancel}.
 */
final class Sequence {
    /** How a request ended: {@code finishReason} "stop" or "length", or an error (then the reason is null). */
    record Outcome(String finishReason, int promptTokens, int completionTokens, String text, ApiError error) {}

    final String modelId;
    final int adapter;
    final long[] prompt;
    /** New tokens allowed: max_tokens, or fewer where the model's context ends first (as TextGenerator). */
    final int budget;
    final TextGenerator.Settings settings;
    final Random random;
    final Set<Long> eosIds;
    final StreamingDecoder decoder;
    final StopStrings stops;
    final TokenSink sink;
    final long createdNanos;
    final long deadlineNanos;
    final String promptText;   // for the request log (texts only when asked)

    private volatile boolean cancelled;
    KvCache cache;
    long lastToken;
    int generated;
    long firstTokenNanos;
    long lastTokenNanos;
    final StringBuilder text = new StringBuilder();
    boolean done;

    Sequence(ServedModels.Entry model, long[] prompt, String promptText, int maxTokens, int maxPositions, TextGenerator.Settings settings,
             java.util.List<String> stop, TokenSink sink, long timeoutNanos) {
        this.modelId = model.id();
        this.adapter = model.adapter();
        this.prompt = prompt;
        this.promptText = promptText;
        this.budget = Math.min(prompt.length + maxTokens, maxPositions) - prompt.length;
        this.settings = settings;
        this.random = new Random(settings.seed());
        this.eosIds = model.tokenizer().eosTokenIds();
        this.decoder = model.tokenizer().streamingDecoder(prompt, true);   // the prompt is context, as in generate
        this.stops = new StopStrings(stop);
        this.sink = sink;
        this.createdNanos = System.nanoTime();
        this.deadlineNanos = createdNanos + timeoutNanos;
    }

    /** Cache positions this request needs: its prompt and the new tokens fed back (the last one never is). */
    int capacity() {
        return prompt.length + budget;
    }

    /** Asks the batcher to drop this request at its next step (the client went away). */
    void cancel() {
        cancelled = true;
    }

    boolean cancelled() {
        return cancelled;
    }
}
