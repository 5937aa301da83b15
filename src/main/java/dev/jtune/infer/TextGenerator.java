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

    public TextGenerator(CausalLM model) {
        this.model = model;
    }

    public record Settings(int maxNewTokens, double temperature, double topP, long seed) {}

    /** Returns the new token ids (EOS not included); {@code onToken} sees each as it is chosen. */
    public long[] generate(long[] prompt, Settings s, Set<Long> eosIds, LongConsumer onToken) {
        int capacity = Math.min(prompt.length + s.maxNewTokens(), model.config().maxPositions());
        int budget = capacity - prompt.length;
        List<Long> out = new ArrayList<>();
        Random random = new Random(s.seed());
        try (NoGradGuard ng = new NoGradGuard(); KvCache cache = model.newCache(1, Math.max(capacity, prompt.length))) {
            long[] input = prompt;
            for (int step = 0; step < budget; step++) {
                long next;
                try (PointerScope scope = new PointerScope()) {
                    Tensor ids = Tensors.longs(new long[][] {input}).to(model.device(), ScalarType.Long);
                    Tensor logits = model.forward(ids, null, null, cache);              // (1, T, V)
                    Tensor last = logits.select(1, logits.size(1) - 1).squeeze(0);      // (V,)
                    next = choose(last, s, random);                                      // host sync
                }
                if (eosIds.contains(next)) break;
                out.add(next);
                if (onToken != null) onToken.accept(next);
                input = new long[] {next};
            }
        }
        return out.stream().mapToLong(Long::longValue).toArray();
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
