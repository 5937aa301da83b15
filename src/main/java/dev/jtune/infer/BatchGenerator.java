package dev.jtune.infer;

import dev.jtune.kernels.CpuLinear;
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
import java.util.Set;

/**
 * Greedy decoding of many prompts at once with one KV cache: prompts left-padded to the longest (B, L), one forward
 * for all of them, then one token per row per forward, each row stopping at its first EOS.
 *
 * <p>Padding must change nothing: each row's positions count its own tokens from 0 (cumsum of the attention mask
 * minus 1, as transformers' generate does, so RoPE and GPT-2's learned positions see what an unpadded prompt would),
 * and the boolean mask (B, 1, T, S) lets a query see only earlier, non-padding keys. A padding query sees itself only
 * (never used, but a row with no visible key would give NaN, and NaN values in the cache poison every later
 * softmax even under a false mask). One host sync per step: the B chosen ids.
 */
public final class BatchGenerator {
    private final CausalLM model;

    public BatchGenerator(CausalLM model) {
        this.model = model;
    }

    /**
     * The new tokens of each prompt (EOS not included), greedy, at most {@code maxNewTokens} each, and fewer when
     * the model's maximum positions are reached first (the padded length plus the new tokens must fit).
     *
     * @param padId a token id to put in padding slots (its embedding is masked out)
     */
    public List<long[]> greedy(List<long[]> prompts, int maxNewTokens, Set<Long> eosIds, long padId) {
        int b = prompts.size();
        List<long[]> out = new ArrayList<>(b);
        if (b == 0) return out;
        int l = 0;
        for (long[] p : prompts) {
            if (p.length == 0) throw new IllegalArgumentException("an empty prompt");
            l = Math.max(l, p.length);
        }
        int budget = Math.min(maxNewTokens, model.config().maxPositions() - l);
        if (budget <= 0) {
            for (int i = 0; i < b; i++) out.add(new long[0]);
            return out;
        }
        int capacity = l + budget;
        long[][] ids = new long[b][l];
        long[] valid = new long[b * capacity];      // (B, capacity): 1 where a cache slot holds a real token
        long[][] positions = new long[b][l];
        long[] nextPosition = new long[b];
        for (int i = 0; i < b; i++) {
            long[] p = prompts.get(i);
            int pad = l - p.length;
            Arrays.fill(ids[i], padId);
            System.arraycopy(p, 0, ids[i], pad, p.length);
            for (int j = 0; j < l; j++) {
                valid[i * capacity + j] = j >= pad ? 1 : 0;
                positions[i][j] = Math.max(0, j - pad);   // padding gets 0; masked anyway
            }
            Arrays.fill(valid, i * capacity + l, (i + 1) * capacity, 1);   // generated slots
            nextPosition[i] = p.length;
        }
        List<List<Long>> generated = new ArrayList<>(b);
        for (int i = 0; i < b; i++) generated.add(new ArrayList<>());
        boolean[] done = new boolean[b];
        int running = b;

        // the weights are reordered once for this generation's several-row products (dev.jtune.kernels.PackedWeights)
        try (NoGradGuard ng = new NoGradGuard(); PointerScope outer = new PointerScope(); KvCache cache = model.newCache(b, capacity);
             CpuLinear.Session weights = CpuLinear.reorderedWeights(model.parameters().values())) {
            Tensor keyValid = Tensors.longs(valid).view(b, capacity).to(model.device(), ScalarType.Long).ne(new org.bytedeco.pytorch.Scalar(0));   // (B, capacity) bool
            Tensor causal = causalWithSelf(l, model.device());                        // (L, L)
            long[] input = null;
            for (int step = 0; step < budget && running > 0; step++) {
                long[] chosen;
                try (PointerScope scope = new PointerScope()) {
                    Tensor logits;
                    if (step == 0) {
                        // prompt: query i sees key j <= i that is real, or itself
                        Tensor mask = keyValid.narrow(1, 0, l).unsqueeze(1).unsqueeze(1)     // (B, 1, 1, L)
                                .logical_or(torch.eye(l, Tensors.options(ScalarType.Bool, model.device())))
                                .logical_and(causal);                                          // (B, 1, L, L)
                        Tensor hidden = model.hidden(Tensors.longs(ids).to(model.device(), ScalarType.Long),
                                Tensors.longs(positions).to(model.device(), ScalarType.Long), mask, cache);    // (B, L, D)
                        logits = model.logits(hidden.select(1, l - 1));                                      // (B, V): the last position only
                    } else {
                        long s = cache.length() + 1;
                        Tensor mask = keyValid.narrow(1, 0, s).unsqueeze(1).unsqueeze(1);      // (B, 1, 1, S)
                        long[][] pos = new long[b][1];
                        long[][] tok = new long[b][1];
                        for (int i = 0; i < b; i++) {
                            pos[i][0] = nextPosition[i]++;
                            tok[i][0] = input[i];
                        }
                        logits = model.forward(Tensors.longs(tok).to(model.device(), ScalarType.Long),
                                Tensors.longs(pos).to(model.device(), ScalarType.Long), mask, cache).select(1, 0);   // (B, V)
                    }
                    chosen = Tensors.toLongs(torch.argmax(logits, new org.bytedeco.pytorch.LongOptional(-1), false));   // host sync
                }
                for (int i = 0; i < b; i++) {
                    if (done[i]) {
                        chosen[i] = padId;   // keeps feeding something; its output is ignored
                        continue;
                    }
                    if (eosIds.contains(chosen[i])) {
                        done[i] = true;
                        running--;
                    } else {
                        generated.get(i).add(chosen[i]);
                    }
                }
                input = chosen;
            }
        }
        for (List<Long> g : generated) out.add(g.stream().mapToLong(Long::longValue).toArray());
        return out;
    }

    /** (T, T) bool: key j visible to query i iff j <= i. */
    private static Tensor causalWithSelf(int t, org.bytedeco.pytorch.Device device) {
        return torch.ones(new long[] {t, t}, Tensors.options(ScalarType.Bool, device)).tril();
    }
}
