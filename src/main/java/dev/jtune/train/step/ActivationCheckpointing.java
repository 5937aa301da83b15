package dev.jtune.train.step;

import dev.jtune.config.Precision;
import dev.jtune.data.TensorBatch;
import dev.jtune.distributed.GradientsReady;
import dev.jtune.model.BlockContext;
import dev.jtune.model.CausalLM;
import org.bytedeco.javacpp.PointerScope;
import org.bytedeco.pytorch.BoolOptional;
import org.bytedeco.pytorch.Device;
import org.bytedeco.pytorch.Generator;
import org.bytedeco.pytorch.MemoryFormatOptional;
import org.bytedeco.pytorch.NoGradGuard;
import org.bytedeco.pytorch.Tensor;
import org.bytedeco.pytorch.TensorArrayRefOptional;
import org.bytedeco.pytorch.global.torch;

import java.util.function.UnaryOperator;

/**
 * Forward and backward of one micro-batch with activation checkpointing ({@code training.gradient_checkpointing}):
 * only each decoder block's input (B, T, D) is kept from the forward, and each block is run again, with autograd on,
 * when its backward comes. LibTorch has no C++ {@code checkpoint()}, so the step is written out here:
 * <ol>
 * <li>embedding with autograd (its graph holds only the token ids); the blocks without autograd ({@link NoGradGuard}),
 *     keeping the input of each and the random generator's state before it (dropout);</li>
 * <li>the final norm, the loss and its backward from the last block's output, detached and requiring grad;</li>
 * <li>from the last block to the first: the generator put back to that block's state (so dropout draws the same
 *     masks), the block recomputed from its saved input with autograd, and backward fed the gradient from above;
 *     the gradient reaching the block's input goes on to the block below;</li>
 * <li>the embedding's backward with the first block's input gradient; the generator left where the plain forward
 *     leaves it, so later steps draw what they would have drawn without checkpointing.</li>
 * </ol>
 * Each backward above is a call of its own, so when it returns the gradients of what it covered are final: a
 * data-parallel step is told ({@link GradientsReady}: the head after step 2, block i after its step 3) and starts their
 * all-reduce while the blocks below are recomputed.
 * Every random draw of a training step comes from that one generator: LoRA dropout, the model's own dropout inside
 * the blocks (attention probabilities; GPT-2's residual dropout), and, outside them, NEFTune noise and GPT-2's
 * embedding dropout in the embedding, which runs once with autograd and is never recomputed.
 * Memory: blocks × (B, T, D) saved inputs plus one block's activations, instead of every block's activations.
 * Each block runs in its own {@link PointerScope}, so its temporaries are freed when it is done, not at the end of
 * the step; a saved input is freed right after its block's backward.
 *
 * <p>{@code offload}: on CUDA the saved inputs go to pinned host memory (asynchronous copies on the current stream) and
 * come back one block ahead of use on a side stream ({@link OffloadPrefetch}): block i-1's input is copied while block i
 * is recomputed and run backward, so at most two block inputs are on the device at once. On the CPU the inputs are
 * already in host memory: offload is a no-op (documented as such in the README).
 */
public final class ActivationCheckpointing {
    /**
     * {@code training.gradient_checkpointing} and its {@code gradient_checkpointing_kwargs}.
     *
     * @param enabled recompute each block in the backward instead of keeping its activations
     * @param offload keep the saved block inputs in pinned host memory (CUDA; a no-op on the CPU)
     */
    public record Settings(boolean enabled, boolean offload) {
        public static final Settings OFF = new Settings(false, false);
    }

    private ActivationCheckpointing() {}

    /** As below, telling no one when gradients are final. */
    public static Tensor lossAndBackward(CausalLM model, TensorBatch tb, Precision precision, boolean offload,
                                  UnaryOperator<Tensor> lossOf, UnaryOperator<Tensor> backwardOf) {
        return lossAndBackward(model, tb, precision, offload, lossOf, backwardOf, null);
    }

    /**
     * @param lossOf      final hidden states (B, T, D) -> the 0-d loss to log (run under autocast)
     * @param backwardOf  that loss -> the tensor backward starts from (divided by the batch's targets, scaled for fp16)
     * @param ready       told when the head's and each block's gradients are final (null: no one)
     * @return the loss, detached
     */
    public static Tensor lossAndBackward(CausalLM model, TensorBatch tb, Precision precision, boolean offload,
                                  UnaryOperator<Tensor> lossOf, UnaryOperator<Tensor> backwardOf, GradientsReady ready) {
        Device device = model.device();
        boolean offloading = offload && device.is_cuda();
        int n = model.numBlocks();
        Generator gen = device.is_cuda() ? torch.globalContext().defaultGenerator(device) : torch.getDefaultCPUGenerator();
        Tensor[] saved = new Tensor[n];          // block i's input (B, T, D), on the device or in pinned host memory
        Tensor[] rng = new Tensor[n];            // the generator's state before block i
        BlockContext ctx;
        Tensor embedded;                         // (B, T, D), with its graph back to the embedding weights
        Tensor last;                             // the last block's output (B, T, D)
        Tensor loss;
        Tensor rngAfter;
        try (Autocast ac = Autocast.enter(precision, device)) {
            ctx = model.context(tb.inputIds(), tb.positionIds(), tb.attentionMask(), null);
            embedded = model.embed(tb.inputIds(), ctx);
            Tensor x = embedded.detach();
            try (NoGradGuard ng = new NoGradGuard()) {
                for (int i = 0; i < n; i++) {
                    rng[i] = gen.get_state();
                    Tensor y;
                    try (PointerScope block = new PointerScope()) {
                        // what outlives the block's scope is retained once here and released by hand below
                        if (offloading) saved[i] = toPinnedHost(x).retainReference();
                        y = model.block(i, x, ctx).retainReference();
                    }
                    if (!offloading) saved[i] = x;
                    else if (i > 0) x.releaseReference();   // its host copy is what we keep (stream-ordered: safe)
                    x = y;
                }
            }
            rngAfter = gen.get_state();
            last = x.detach().requires_grad_(true);
            x.releaseReference();
            loss = lossOf.apply(last);
        }
        // offload: the last block's input starts back to the device now, under the loss's backward
        OffloadPrefetch prefetch = offloading ? new OffloadPrefetch(device) : null;
        OffloadPrefetch.Fetch next = null;
        if (offloading) {
            try (PointerScope first = new PointerScope()) {
                next = prefetch.start(saved[n - 1]);
            }
        }
        backwardOf.apply(loss).backward();
        if (ready != null) ready.head();
        // grad() is a reference into the tensor's autograd data: copied to a handle of our own (shares the storage)
        Tensor grad = new Tensor(last.grad());                   // dLoss/d(last block's output), (B, T, D)
        for (int i = n - 1; i >= 0; i--) {
            boolean wantInputGrad = i > 0 || embedded.requires_grad();
            Tensor above = grad;
            OffloadPrefetch.Fetch fetched = next;
            try (PointerScope block = new PointerScope()) {
                gen.set_state(rng[i]);
                Tensor in = saved[i];
                if (offloading) {
                    in = prefetch.await(fetched);                            // the compute stream waits for this copy only
                    next = i > 0 ? prefetch.start(saved[i - 1]) : null;      // the block below's input, during this block
                }
                Tensor xi = in.detach();
                if (wantInputGrad) xi.requires_grad_(true);
                Tensor y;
                try (Autocast ac = Autocast.enter(precision, device)) {
                    y = model.block(i, xi, ctx);
                }
                y.backward(above, new BoolOptional(), false, new TensorArrayRefOptional());
                grad = wantInputGrad ? new Tensor(xi.grad()).retainReference() : null;   // handed to the block below
            }
            if (ready != null) ready.block(i);                  // its gradients are final: their all-reduce may start
            if (i < n - 1) above.releaseReference();            // retained by the block above
            if (offloading || i > 0) saved[i].releaseReference();   // the block's input is done with
            if (fetched != null) fetched.release();
            saved[i] = null;
        }
        if (prefetch != null) prefetch.close();
        if (grad != null) {
            embedded.backward(grad, new BoolOptional(), false, new TensorArrayRefOptional());
            grad.releaseReference();
        }
        gen.set_state(rngAfter);
        return loss.detach();
    }

    /** A copy of x in pinned host memory, made asynchronously on the current CUDA stream. */
    private static Tensor toPinnedHost(Tensor x) {
        Tensor host = torch.empty(dev.jtune.util.Tensors.shape(x), x.options().device(new org.bytedeco.pytorch.DeviceOptional(new Device("cpu"))).pinned_memory(new BoolOptional(true)),
                new MemoryFormatOptional());
        return host.copy_(x, true);
    }
}
