package dev.jtune.kernels;

import org.bytedeco.javacpp.PointerScope;
import org.bytedeco.pytorch.Scalar;
import org.bytedeco.pytorch.Tensor;
import org.bytedeco.pytorch.global.torch;
import org.bytedeco.pytorch.global.torch.ScalarType;
import org.junit.jupiter.api.Test;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * Who frees what the autograd bridge holds ({@link AutogradBridge}): a saved tensor as soon as the backward that used
 * it ran; everything of a step whose backward never ran when the step closes; and, through it all, gradients equal to
 * the LibTorch reference (what a hook hands to autograd stays valid until autograd has its own reference). "Freed"
 * is checked on the Java handle: JavaCPP sets a deallocated pointer's address to 0 ({@code isNull()}).
 */
class AutogradBridgeOwnershipTest {
    static final Ops KERNELS = KernelWiringTest.KERNELS;
    static final Ops LIBTORCH = Ops.OFF;
    static final T.Tol F32 = KernelWiringTest.F32;

    @Test
    void aSavedTensorIsFreedWhenItsBackwardHasRun() {
        int pendingBefore = AutogradBridge.pendingHooks();
        try (AutogradBridge.Step step = AutogradBridge.openStep()) {
            Tensor x = T.leaf(torch.ones(new long[] {3}, T.opts(ScalarType.Float, "cpu")));
            Tensor y = x.mul(new Scalar(2.0));
            Tensor saved = AutogradBridge.keep(torch.full(new long[] {3}, new Scalar(3.0), T.opts(ScalarType.Float, "cpu")));
            AutogradBridge.hook(y, g -> g.mul(saved), saved);
            assertEquals(pendingBefore + 1, AutogradBridge.pendingHooks());
            assertEquals(1, step.heldTensors());
            assertFalse(saved.isNull());
            y.sum().backward();
            assertTrue(saved.isNull(), "released right after the hook that used it, before the step closes");
            assertEquals(0, step.heldTensors());
            assertEquals(pendingBefore, AutogradBridge.pendingHooks());
            // d/dx sum(2x) = 2, times the 3 the hook multiplied in: the hook's result reached autograd intact
            T.close(x.grad(), torch.full(new long[] {3}, new Scalar(6.0), T.opts(ScalarType.Float, "cpu")), T.Tol.EXACT, "dx");
        }
    }

    /** A forward through every bridged op with no backward (an exception between them, say): the step frees it all. */
    @Test
    void closingAStepFreesWhatABackwardNeverReached() {
        int pendingBefore = AutogradBridge.pendingHooks();
        Tensor mine;
        try (AutogradBridge.Step step = AutogradBridge.openStep()) {
            try (PointerScope scope = new PointerScope()) {
                Tensor loss = forward(KERNELS, 50);
                assertTrue(loss.requires_grad());
            }
            mine = AutogradBridge.keep(torch.ones(new long[] {4}, T.opts(ScalarType.Float, "cpu")));
            AutogradBridge.hook(T.leaf(torch.ones(new long[] {4}, T.opts(ScalarType.Float, "cpu"))).mul(new Scalar(1.0)), g -> g, mine);
            assertTrue(AutogradBridge.pendingHooks() > pendingBefore + 4, "the ops registered hooks");
            assertTrue(step.heldTensors() > 4, "and kept tensors for their backward");
        }
        assertEquals(pendingBefore, AutogradBridge.pendingHooks(), "no hook of the closed step is pending");
        assertTrue(mine.isNull(), "a tensor saved for a backward that never ran is freed when its step closes");
    }

    /** The same ops under a step, backward inside it: every gradient as LibTorch's, nothing left held or pending. */
    @Test
    void gradientsThroughAStepEqualTheReference() {
        Tensor[] want = gradients(LIBTORCH, false);
        int pendingBefore = AutogradBridge.pendingHooks();
        for (int round = 0; round < 3; round++) {          // hook handles of one step are not reused by the next
            Tensor[] got = gradients(KERNELS, true);
            assertEquals(pendingBefore, AutogradBridge.pendingHooks());
            String[] names = {"dx", "dnorm", "dgate", "dup", "dhead"};
            for (int i = 0; i < want.length; i++) T.close(got[i], want[i], F32, names[i] + " round " + round);
        }
    }

    /** The leaves' gradients after backward of {@link #forward}, copied out; under a bridge step when {@code step}. */
    private static Tensor[] gradients(Ops ops, boolean step) {
        Leaves l = new Leaves(60);
        AutogradBridge.Step s = step ? AutogradBridge.openStep() : null;
        try (PointerScope scope = new PointerScope()) {
            Tensor loss = forward(ops, l);
            System.gc();   // the Java handles of the forward are unreachable now: nothing may depend on them
            loss.backward();
            if (s != null) assertEquals(0, s.heldTensors(), "every saved tensor and parked gradient released by the backward");
        } finally {
            if (s != null) s.close();
        }
        return new Tensor[] {l.x.grad().clone(), l.norm.grad().clone(), l.gate.grad().clone(), l.up.grad().clone(), l.head.grad().clone()};
    }

    /** rmsNorm -> swiglu of two projections -> rope on a view -> chunked cross-entropy; leaves drawn from {@code seed}. */
    private static final class Leaves {
        final Tensor x, norm, gate, up, head, cos, sin, targets;

        Leaves(long seed) {
            torch.manual_seed(seed);
            x = T.leaf(T.randn(ScalarType.Float, "cpu", 2, 5, 16));
            norm = T.leaf(T.randn(ScalarType.Float, "cpu", 16));
            gate = T.leaf(T.randn(ScalarType.Float, "cpu", 16, 16));
            up = T.leaf(T.randn(ScalarType.Float, "cpu", 16, 16));
            head = T.leaf(T.randn(ScalarType.Float, "cpu", 40, 16));
            cos = T.randn(ScalarType.Float, "cpu", 1, 1, 5, 8);
            sin = T.randn(ScalarType.Float, "cpu", 1, 1, 5, 8);
            targets = torch.randint(40, new long[] {10}, T.opts(ScalarType.Long, "cpu"));
            for (Tensor t : new Tensor[] {x, norm, gate, up, head, cos, sin, targets}) t.retainReference();
        }
    }

    private static Tensor forward(Ops ops, long seed) {
        return forward(ops, new Leaves(seed));
    }

    private static Tensor forward(Ops ops, Leaves l) {
        Tensor n = ops.rmsNorm(l.x, l.norm, 1e-5);                                              // (2, 5, 16)
        Tensor act = ops.swiglu(torch.linear(n, l.gate), torch.linear(n, l.up));                // (2, 5, 16)
        Tensor r = ops.rope(act.mul(new Scalar(1.0)).view(2, 5, 2, 8).transpose(1, 2), l.cos, l.sin);   // (2, 2, 5, 8)
        Tensor h = r.transpose(1, 2).reshape(10, 16);                                          // (10, 16)
        return ops.crossEntropySum(h, l.head, l.targets, 3);
    }
}
