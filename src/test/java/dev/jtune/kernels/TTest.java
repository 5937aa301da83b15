package dev.jtune.kernels;

import org.bytedeco.javacpp.PointerScope;
import org.bytedeco.pytorch.Scalar;
import org.bytedeco.pytorch.ScalarTypeOptional;
import org.bytedeco.pytorch.Tensor;
import org.bytedeco.pytorch.global.torch;
import org.bytedeco.pytorch.global.torch.ScalarType;
import org.junit.jupiter.api.Test;
import org.opentest4j.AssertionFailedError;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

/** The comparison helper itself: it must fail on what the kernel tests exist to catch. */
class TTest {
    /**
     * A cross-entropy gradient (softmax - onehot) over 257 classes whose small entries (~1/V) are all wrong by
     * a factor of 2: a max-relative check (max |diff| / max |want|, the old T.relErr) passes it at bf16's 1e-2;
     * the element-wise check fails it and names the worst element.
     */
    @Test
    void wrongSmallGradientEntriesFail() {
        try (PointerScope s = new PointerScope()) {
            torch.manual_seed(1);
            long rows = 4, v = 257;
            Tensor z = T.randn(ScalarType.Float, "cpu", rows, v).mul(new Scalar(0.1));   // near-uniform: p_i ~ 1/V
            Tensor targets = torch.randint(v, new long[] {rows}, T.opts(ScalarType.Long, "cpu"));
            Tensor onehot = torch.one_hot(targets, v).to(ScalarType.Float);
            Tensor want = torch.softmax(z, -1, new ScalarTypeOptional()).sub(onehot);
            Tensor wrong = want.add(torch.softmax(z, -1, new ScalarTypeOptional()).mul(onehot.neg().add(new Scalar(1))));   // p_i -> 2 p_i off target
            double maxRelative = wrong.sub(want).abs().max().item_double() / want.abs().max().item_double();
            assertTrue(maxRelative <= 1e-2, "the old check would pass this: " + maxRelative);
            AssertionFailedError e = assertThrows(AssertionFailedError.class,
                    () -> T.close(wrong, want, T.Tol.of(ScalarType.BFloat16), "d logits"));
            assertTrue(e.getMessage().startsWith("d logits: " + (rows * (v - 1)) + " of " + (rows * v) + " elements out of tolerance"), e.getMessage());
            assertTrue(e.getMessage().contains("worst at ["), e.getMessage());
            // the same gradient rounded to bf16 (what a correct bf16 kernel returns) passes
            T.close(want.to(ScalarType.BFloat16), want, ScalarType.BFloat16, "bf16 rounding");
        }
    }

    @Test
    void reportsTheWorstElementByIndexAndFailsOnNaN() {
        try (PointerScope s = new PointerScope()) {
            Tensor want = torch.ones(new long[] {3, 4}, T.opts(ScalarType.Float, "cpu"));
            Tensor got = want.clone();
            got.get(1).get(2).fill_(new Scalar(1.001));
            AssertionFailedError e = assertThrows(AssertionFailedError.class, () -> T.close(got, want, ScalarType.Float, "x"));
            assertTrue(e.getMessage().contains("1 of 12 elements") && e.getMessage().contains("worst at [1, 2]: got 1.00"), e.getMessage());
            T.close(got, want, new T.Tol(2e-3, 0), "x within rtol");
            Tensor nan = want.clone();
            nan.get(2).get(3).fill_(new Scalar(Double.NaN));
            e = assertThrows(AssertionFailedError.class, () -> T.close(nan, want, new T.Tol(1, 1), "nan"));
            assertTrue(e.getMessage().contains("worst at [2, 3]: got NaN"), e.getMessage());
            assertThrows(AssertionFailedError.class, () -> T.close(want.view(4, 3), want, ScalarType.Float, "shape"));
            assertArrayEquals(new long[] {1, 0, 1}, T.unravel(1 * 12 + 1, new long[] {2, 6, 2}));
        }
    }
}
