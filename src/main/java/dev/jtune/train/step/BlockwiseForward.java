package dev.jtune.train.step;

import dev.jtune.data.TensorBatch;
import dev.jtune.distributed.GradientsReady;
import dev.jtune.kernels.AutogradBridge;
import dev.jtune.model.BlockContext;
import dev.jtune.model.CausalLM;
import org.bytedeco.pytorch.Tensor;

/**
 * The model's forward to the final hidden states ({@link CausalLM#hidden}), block by block, with gradient hooks that tell
 * a data-parallel step when each block's gradients are final in the backward, so that their all-reduce starts while the
 * backward goes on below (what DistributedDataParallel does with its hooks on the parameters' AccumulateGrad nodes).
 *
 * <p>A hook on block i's input x_i (B, T, D) runs when x_i's gradient is complete: every node of block i's backward has
 * run. Block i's parameter gradients are then accumulated too: an AccumulateGrad node becomes ready as soon as the node
 * feeding it ran, and LibTorch's engine takes its ready nodes by priority, highest sequence number first, where
 * AccumulateGrad's is UINT64_MAX (so it runs before any other ready node) and every other node's is its creation
 * order in the forward. The nodes on block i's weights (a transpose, an autocast copy: made in block i's forward) are
 * thus taken before the node that made x_i (made before block i), which is the one whose pre-hook this is. The hook on
 * the last block's output says the same of the head (final norm, output projection). A tied head is the embedding's
 * tensor: its last contribution comes in the embedding's backward, after every hook (its group is the last).
 * GradientReadinessTest checks it: the gradients seen at each signal are the final ones.
 *
 * <p>No hook where x_i needs no gradient (block 0's input under LoRA: the embedding is frozen): that block's gradients
 * are final only when the backward returns. Hooks go through {@link AutogradBridge} (which frees them and their
 * handles with the micro-batch's step); each passes the gradient on unchanged.
 */
final class BlockwiseForward {
    private BlockwiseForward() {}

    /** Final hidden states (B, T, D); with {@code ready} null, exactly {@link CausalLM#hidden} without a cache. */
    static Tensor hidden(CausalLM model, TensorBatch tb, GradientsReady ready) {
        if (ready == null) return model.hidden(tb.inputIds(), tb.positionIds(), tb.attentionMask(), null);
        BlockContext ctx = model.context(tb.inputIds(), tb.positionIds(), tb.attentionMask(), null);
        Tensor x = model.embed(tb.inputIds(), ctx);                            // (B, T, D)
        for (int i = 0; i < model.numBlocks(); i++) {
            int block = i;
            if (x.requires_grad()) AutogradBridge.hook(x, g -> signal(g, () -> ready.block(block)));
            x = model.block(i, x, ctx);                                       // (B, T, D)
        }
        if (x.requires_grad()) AutogradBridge.hook(x, g -> signal(g, ready::head));
        return model.finalNorm(x);
    }

    private static Tensor signal(Tensor grad, Runnable r) {
        r.run();
        return grad;
    }
}
