package dev.jtune.infer;

import dev.jtune.model.CausalLM;
import dev.jtune.model.KvCache;
import dev.jtune.util.Tensors;
import org.bytedeco.javacpp.PointerScope;
import org.bytedeco.pytorch.NoGradGuard;
import org.bytedeco.pytorch.Tensor;
import org.bytedeco.pytorch.global.torch;
import org.bytedeco.pytorch.global.torch.ScalarType;

import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.Random;
import java.util.Set;
import java.util.function.LongConsumer;

/**
 * Autoregressive decoding with a KV cache: the prompt in one forward, then one token per forward.
 * Greedy when temperature is 0; otherwise temperature + nucleus (top-p) sampling from a seeded
 * Java Random, so a seed reproduces the same text on any machine.
 */
public final class TextGenerator {
    private final CausalLM model;
    private final boolean cudaGraphs;

    /** CUDA graphs for the decode steps when {@code JTUNE_CUDA_GRAPHS=1} (off until checked on a GPU: bench/gpu/session.sh decode). */
    public TextGenerator(CausalLM model) {
        this(model, "1".equals(System.getenv("JTUNE_CUDA_GRAPHS")));
    }

    /**
     * @param cudaGraphs on CUDA, run the steps after the prompt as one captured graph each ({@link StaticDecodeStep}:
     *                   static buffers, replayed per token, eager when it cannot be captured); no effect on the CPU
     */
    public TextGenerator(CausalLM model, boolean cudaGraphs) {
        this.model = model;
        this.cudaGraphs = cudaGraphs;
    }

    public record Settings(int maxNewTokens, double temperature, double topP, long seed) {}

    /** Returns the new token ids (EOS not included); {@code onToken} sees each as it is chosen. */
    public long[] generate(long[] prompt, Settings s, Set<Long> eosIds, LongConsumer onToken) {
        int capacity = Math.min(prompt.length + s.maxNewTokens(), model.config().maxPositions());
        int budget = capacity - prompt.length;
        List<Long> out = new ArrayList<>();
        Random random = new Random(s.seed());
        boolean graphs = cudaGraphs && model.device().is_cuda();
        StaticDecodeStep fixed = null;
        try (NoGradGuard ng = new NoGradGuard(); KvCache cache = model.newCache(1, Math.max(capacity, prompt.length))) {
            long[] input = prompt;
            for (int step = 0; step < budget; step++) {
                long next;
                try (PointerScope scope = new PointerScope()) {
                    Tensor last;                                                          // (V,)
                    if (graphs && step > 0) {
                        if (fixed == null) fixed = new StaticDecodeStep(model, cache, filled(cache), true);
                        long at = cache.length();                                        // position = cache slot
                        last = fixed.step(input, new long[] {at}, new long[] {at}).select(0, 0);
                    } else {
                        Tensor ids = Tensors.longs(new long[][] {input}).to(model.device(), ScalarType.Long);
                        Tensor logits = model.forward(ids, null, null, cache);          // (1, T, V)
                        last = logits.select(1, logits.size(1) - 1).squeeze(0);
                    }
                    next = choose(last, s, random);                                      // host sync
                }
                if (eosIds.contains(next)) break;
                out.add(next);
                if (onToken != null) onToken.accept(next);
                input = new long[] {next};
            }
        } finally {
            if (fixed != null) fixed.close();
        }
        return out.stream().mapToLong(Long::longValue).toArray();
    }

    /** (1, capacity) bool: the slots the cache has filled. */
    private static Tensor filled(KvCache cache) {
        return torch.arange(new org.bytedeco.pytorch.Scalar(cache.capacity()), Tensors.options(ScalarType.Long, new org.bytedeco.pytorch.Device("cpu")))
                .lt(new org.bytedeco.pytorch.Scalar(cache.length())).view(1, cache.capacity());
    }

    /** The next token from logits (V,): argmax when the temperature is 0, else a top-p sample drawn from {@code random}. */
    public static long choose(Tensor logits, Settings s, Random random) {
        if (s.temperature() <= 0) return torch.argmax(logits).item_long();
        float[] probs = Tensors.toFloats(torch.softmax(logits.to(ScalarType.Float).div(new org.bytedeco.pytorch.Scalar(s.temperature())), -1));
        Integer[] order = new Integer[probs.length];
        for (int i = 0; i < order.length; i++) order[i] = i;
        Arrays.sort(order, (a, b) -> Float.compare(probs[b], probs[a]));
        // keep the smallest prefix whose mass reaches top_p (at least one token)
        double mass = 0;
        int keep = 0;
        while (keep < order.length && (keep == 0 || mass < s.topP())) mass += probs[order[keep++]];
        double r = random.nextDouble() * mass;
        for (int i = 0; i < keep; i++) {
            r -= probs[order[i]];
            if (r <= 0) return order[i];
        }
        return order[keep - 1];
    }
}
