package dev.jtune.kernels;

import org.bytedeco.javacpp.PointerScope;
import org.bytedeco.pytorch.NoGradGuard;
import org.bytedeco.pytorch.Tensor;
import org.bytedeco.pytorch.TensorOptional;
import org.bytedeco.pytorch.global.torch;
import org.bytedeco.pytorch.global.torch.ScalarType;
import org.junit.jupiter.api.Test;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * The split matrix-vector linear equals torch.linear (float32 tolerance, scaled for the d-term sums) for one row and
 * several, with and without bias, for HF (n, d) weights and GPT-2's transposed (d, n) ones, on sizes that split into
 * uneven blocks; and it is taken only without autograd, in fp32 on the CPU.
 */
class CpuLinearTest {
    @Test
    void equalsTorchLinearForOneRowAndSeveral() {
        try (PointerScope scope = new PointerScope(); NoGradGuard ng = new NoGradGuard()) {
            long d = 300, n = 1003;                        // n * d above the split threshold; n not a multiple of 16
            assertTrue(n * d >= CpuLinear.MIN_SPLIT_ELEMENTS);
            Tensor w = T.randn(ScalarType.Float, "cpu", n, d);
            Tensor wT = T.randn(ScalarType.Float, "cpu", d, n).t();     // GPT-2 Conv1D weight, seen as (n, d)
            Tensor bias = T.randn(ScalarType.Float, "cpu", n);
            for (long[] shape : new long[][] {{1, 1, d}, {d}, {3, 1, d}, {2, 5, d}, {1, 17, d}}) {
                Tensor x = T.randn(ScalarType.Float, "cpu", shape);
                for (Tensor weight : new Tensor[] {w, wT}) {
                    for (Tensor b : new Tensor[] {null, bias}) {
                        assertTrue(CpuLinear.applies(x, weight));
                        Tensor got = CpuLinear.apply(x, weight, b);
                        Tensor want = torch.linear(x, weight, b == null ? new TensorOptional() : new TensorOptional(b));
                        assertArrayEquals(want.sizes().vec().get(), got.sizes().vec().get());
                        T.close(got, want, T.Tol.of(ScalarType.Float).times(20), "x " + java.util.Arrays.toString(shape));
                    }
                }
            }
        }
    }

    @Test
    void smallProductsAreNotSplitButStillRight() {
        try (PointerScope scope = new PointerScope(); NoGradGuard ng = new NoGradGuard()) {
            Tensor w = T.randn(ScalarType.Float, "cpu", 7, 5);
            Tensor x = T.randn(ScalarType.Float, "cpu", 1, 5);
            T.close(CpuLinear.apply(x, w, null), torch.linear(x, w), T.Tol.of(ScalarType.Float), "7x5");
        }
    }

    @Test
    void blocksCoverTheOutputOnceAlignedToSixteen() {
        for (long n : new long[] {1, 15, 16, 100, 1003, 4864, 50257}) {
            for (int parts = 1; parts <= 5; parts++) {
                long next = 0;
                for (int p = 0; p < parts; p++) {
                    long[] r = CpuLinear.block(n, p, parts);
                    assertEquals(next, r[0], "n " + n + " part " + p + "/" + parts);
                    assertTrue(r[1] >= 0);
                    if (p > 0 && r[0] < n) assertEquals(0, r[0] % 16);
                    next = r[0] + r[1];
                }
                assertEquals(n, next, "n " + n + " parts " + parts);
            }
        }
    }

    @Test
    void notTakenUnderAutogradOrForOtherDtypes() {
        try (PointerScope scope = new PointerScope()) {
            Tensor w = T.randn(ScalarType.Float, "cpu", 64, 32);
            Tensor x = T.randn(ScalarType.Float, "cpu", 1, 32);
            assertFalse(CpuLinear.applies(x, w), "grad mode on: torch.linear must record the graph");
            try (NoGradGuard ng = new NoGradGuard()) {
                assertTrue(CpuLinear.applies(x, w));
                assertFalse(CpuLinear.applies(x.to(ScalarType.BFloat16), w.to(ScalarType.BFloat16)));
            }
        }
    }

    @Test
    void aFailingPartIsRethrownToTheCaller() {
        SplitWorkers pool = SplitWorkers.shared();
        if (pool.parts() < 2) return;                     // one core: nothing runs on a worker
        IllegalStateException e = org.junit.jupiter.api.Assertions.assertThrows(IllegalStateException.class,
                () -> pool.run(2, p -> {
                    if (p == 1) throw new IllegalStateException("part 1 failed");
                }));
        assertEquals("part 1 failed", e.getMessage());
        int[] seen = new int[2];
        pool.run(2, p -> seen[p]++);                       // the pool still works after a failure
        assertArrayEquals(new int[] {1, 1}, seen);
    }
}
