package dev.jtune.train.optim;

import dev.jtune.distributed.ZeroPartition;
import dev.jtune.util.Tensors;
import org.bytedeco.pytorch.Generator;
import org.bytedeco.pytorch.GeneratorOptional;
import org.bytedeco.pytorch.NoGradGuard;
import org.bytedeco.pytorch.Tensor;
import org.bytedeco.pytorch.global.torch;
import org.bytedeco.pytorch.global.torch.ScalarType;
import org.junit.jupiter.api.Test;

import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * One AdamW over every tensor against three ZeRO shards of it (what the ranks of a ZeRO stage 1 run hold), in one
 * process: each shard updates exactly its own tensors, with the whole optimizer's bits (the fused kernel works tensor by
 * tensor, so a smaller group changes nothing), leaves the others alone, and the shards' states together are the whole
 * state under the same keys. Both implementations; and a shard made after the fact ({@link AdamW#keepOnly}).
 */
class ShardedAdamWTest {
    static final long[][] SHAPES = {{64, 48}, {48}, {100, 33}, {7}, {5, 5}, {48, 64}};

    @Test
    void shardsTogetherAreTheWholeOptimizer() {
        for (AdamW.Impl impl : AdamW.Impl.values()) {
            Generator g = torch.make_generator_cpu(5);
            Map<String, Long> sizes = new LinkedHashMap<>();
            Map<String, Tensor> whole = new LinkedHashMap<>();
            List<Map<String, Tensor>> copies = new ArrayList<>();
            for (int r = 0; r < 3; r++) copies.add(new LinkedHashMap<>());
            for (int i = 0; i < SHAPES.length; i++) {
                Tensor init = torch.randn(SHAPES[i], new GeneratorOptional(g), Tensors.options(ScalarType.Float));
                whole.put("p" + i, init.clone().requires_grad_(true));
                for (Map<String, Tensor> c : copies) c.put("p" + i, init.clone().requires_grad_(true));
                sizes.put("p" + i, init.numel());
            }
            ZeroPartition part = ZeroPartition.of(sizes, 3);
            java.util.function.Predicate<String> decayed = n -> !n.equals("p1") && !n.equals("p3");
            AdamW full = new AdamW(whole, decayed, 0.1, 0.9, 0.999, 1e-8).implementation(impl);
            List<AdamW> shards = new ArrayList<>();
            for (int r = 0; r < 3; r++) {
                int rank = r;
                shards.add(new AdamW(copies.get(r), decayed, n -> part.ownerOf(n) == rank, 0.1, 0.9, 0.999, 1e-8).implementation(impl));
            }
            for (int step = 0; step < 4; step++) {
                for (String n : whole.keySet()) {
                    Tensor grad = torch.randn(SHAPES[Integer.parseInt(n.substring(1))], new GeneratorOptional(g), Tensors.options(ScalarType.Float));
                    try (NoGradGuard ng = new NoGradGuard()) {
                        whole.get(n).mutable_grad().put(grad.clone());
                        for (Map<String, Tensor> c : copies) c.get(n).mutable_grad().put(grad.clone());
                    }
                }
                full.step(1e-2);
                for (AdamW s : shards) s.step(1e-2);
            }
            Map<String, Tensor> unionState = new LinkedHashMap<>();
            long bytes = 0;
            for (int r = 0; r < 3; r++) {
                AdamW s = shards.get(r);
                for (String n : whole.keySet()) {
                    boolean mine = part.ownerOf(n) == r;
                    assertEquals(mine, s.owns(n));
                    float[] got = Tensors.toFloats(copies.get(r).get(n).detach());
                    if (mine) assertArrayEquals(Tensors.toFloats(whole.get(n).detach()), got, impl + ": rank " + r + "'s " + n);
                    else assertFalse(java.util.Arrays.equals(Tensors.toFloats(whole.get(n).detach()), got), n + " is not rank " + r + "'s to update");
                }
                unionState.putAll(s.state());
                bytes += s.stateBytes();
                assertEquals(4, s.stepCount());
            }
            assertEquals(full.stateBytes(), bytes, "the shards' state adds up to the whole");
            assertEquals(new java.util.TreeSet<>(full.allStateKeys()), new java.util.TreeSet<>(unionState.keySet()));
            assertEquals(new java.util.TreeSet<>(full.state().keySet()), new java.util.TreeSet<>(unionState.keySet()));
            for (String k : full.state().keySet()) {
                assertArrayEquals(Tensors.toFloats(full.state().get(k)), Tensors.toFloats(unionState.get(k)), k);
                assertEquals(k.substring(k.indexOf('.') + 1), AdamW.parameterOf(k));
            }
            // a resumed shard takes its own keys from the whole state, whatever the world size that wrote it
            AdamW fresh = new AdamW(copies.get(0), decayed, n -> part.ownerOf(n) == 0, 0.1, 0.9, 0.999, 1e-8);
            fresh.load(full.state(), full.stepCount());
            for (String k : fresh.state().keySet()) assertArrayEquals(Tensors.toFloats(full.state().get(k)), Tensors.toFloats(fresh.state().get(k)), k);
        }
    }
}
