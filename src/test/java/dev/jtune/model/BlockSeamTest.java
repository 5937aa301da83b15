package dev.jtune.model;

import dev.jtune.util.Tensors;
import org.bytedeco.javacpp.PointerScope;
import org.bytedeco.pytorch.Device;
import org.bytedeco.pytorch.NoGradGuard;
import org.bytedeco.pytorch.Tensor;
import org.bytedeco.pytorch.global.torch;
import org.bytedeco.pytorch.global.torch.ScalarType;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;

import java.nio.file.Path;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * The public block seam (what activation checkpointing will drive): embed, each block by its index, the final norm
 * and the output projection, run by the caller, give exactly what {@link CausalLM#forward} gives, with and
 * without a KV cache.
 */
class BlockSeamTest {
    static final Path MODELS = Path.of("src/test/resources/models");
    static final long[][] IDS = {{5, 9, 17, 33, 2, 8, 90, 1, 14}, {7, 7, 64, 3, 120, 44, 0, 0, 3}};

    private static Tensor byBlocks(CausalLM m, Tensor ids, KvCache cache) {
        BlockContext ctx = m.context(ids, null, null, cache);
        Tensor x = m.embed(ids, ctx);                                 // (B, T, D)
        for (int i = 0; i < m.numBlocks(); i++) x = m.block(i, x, ctx);
        if (cache != null) cache.advance(ctx.length());
        return m.logits(m.finalNorm(x));                              // (B, T, V)
    }

    @ParameterizedTest
    @ValueSource(strings = {"llama-tiny", "qwen3-tiny", "mistral-window-tiny", "gpt2-tiny"})
    void blocksRunOneByOneEqualTheForward(String name) {
        try (CausalLM m = ModelLoader.load(MODELS.resolve(name), ScalarType.Float, new Device("cpu"));
             PointerScope s = new PointerScope(); NoGradGuard ng = new NoGradGuard()) {
            assertEquals(m.config().numLayers(), m.numBlocks());
            Tensor ids = Tensors.longs(IDS);
            assertTrue(torch.equal(m.forward(ids), byBlocks(m, ids, null)), name + ": bit-identical logits");
            // through the cache: a 5-token prefill then 4 more, against the forward doing the same
            KvCache a = m.newCache(2, 9), b = m.newCache(2, 9);
            for (long[] span : new long[][] {{0, 5}, {5, 4}}) {
                Tensor part = ids.narrow(1, span[0], span[1]);
                assertTrue(torch.equal(m.forward(part, null, null, a), byBlocks(m, part, b)), name + ": cached chunk at " + span[0]);
            }
            assertEquals(a.length(), b.length());
        }
    }
}
