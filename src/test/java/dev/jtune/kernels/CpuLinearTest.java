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
    void severalWeightsInOnePassEqualTorchLinearEach() {
        try (PointerScope scope = new PointerScope(); NoGradGuard ng = new NoGradGuard()) {
            long d = 96;
            // q/k/v-like: a large weight, two small ones (below a chunk), a bias on one only; rows 1 and several
            Tensor[] w = {T.randn(ScalarType.Float, "cpu", 1000, d), T.randn(ScalarType.Float, "cpu", 40, d), T.randn(ScalarType.Float, "cpu", 2000, d)};
            Tensor[] bias = {null, T.randn(ScalarType.Float, "cpu", 40), null};
            // up to 8 rows take jtune's kernels (when built); more rows, unregistered, sgemm; registered (the session a
            // build without the kernels opens: opened here directly, since CpuLinear.reorderedWeights does nothing where
            // the kernels run), oneDNN on reordered blocks of 64 rows, the tail rows (1000 = 3 x 256 + 192 + 40; 40;
            // 2000 = ... + 16) through sgemm
            java.util.List<Tensor> weights = java.util.List.of(w);
            try (CpuLinear.Session viaCpuLinear = CpuLinear.reorderedWeights(weights)) {
                assertEquals(!CpuKernelLibrary.available(), PackedWeights.registered(w[0]), "a session reorders only without the kernels");
            }
            for (boolean registered : new boolean[] {false, true}) {
                if (registered) PackedWeights.open(weights);
                for (long[] shape : new long[][] {{1, 1, d}, {3, 2, d}, {8, 1, d}, {3, 4, d}}) {
                    Tensor x = T.randn(ScalarType.Float, "cpu", shape);
                    Tensor[] got = CpuLinear.applyAll(x, w, bias);
                    for (int j = 0; j < w.length; j++) {
                        Tensor want = torch.linear(x, w[j], bias[j] == null ? new TensorOptional() : new TensorOptional(bias[j]));
                        assertArrayEquals(want.sizes().vec().get(), got[j].sizes().vec().get());
                        T.close(got[j], want, T.Tol.of(ScalarType.Float).times(20), "registered " + registered + ", weight " + j + ", x " + java.util.Arrays.toString(shape));
                    }
                }
                w[0].mul_(new org.bytedeco.pytorch.Scalar(-1.0));               // written in place (an optimizer step): the reordered copy must follow
                for (long r : new long[] {4, 12}) {
                    Tensor x = T.randn(ScalarType.Float, "cpu", r, d);
                    T.close(CpuLinear.applyAll(x, w, bias)[0], torch.linear(x, w[0]), T.Tol.of(ScalarType.Float).times(20), "after an in-place update, " + r + " rows");
                }
            }
            PackedWeights.close(weights);
            Tensor x = T.randn(ScalarType.Float, "cpu", 12, d);
            w[2].add_(new org.bytedeco.pytorch.Scalar(1.0));                     // after the session: sgemm, never a stale copy
            T.close(CpuLinear.applyAll(x, w, bias)[2], torch.linear(x, w[2]), T.Tol.of(ScalarType.Float).times(20), "after the session");
        }
    }

    @Test
    void chunksAreAlignedAndSizedForTheThreads() {
        // the 448M decode shapes on 2 threads: gate (4864 x 896) in 4 chunks of 1216 rows, q (896 x 896) in 4 of 224; a
        // 100-row weight in chunks of at least 256 KiB (74 rows of 896 floats, rounded up to 16)
        assertEquals(1216, CpuLinear.chunkRows(4864, 896, 2));
        assertEquals(224, CpuLinear.chunkRows(896, 896, 2));
        assertEquals(80, CpuLinear.chunkRows(100, 896, 2));
        assertEquals(7, CpuLinear.chunkRows(7, 5, 2), "below the split threshold: one task");
        assertEquals(4864, CpuLinear.chunkRows(4864, 896, 1), "one thread: one task");
        for (long n : new long[] {100, 1003, 4864, 50257}) {
            for (int threads = 2; threads <= 5; threads++) {
                long c = CpuLinear.chunkRows(n, 896, threads);
                assertEquals(0, c % 16, "n " + n + " threads " + threads);
                assertTrue((n + c - 1) / c <= (long) threads * CpuLinear.TASKS_PER_THREAD, "n " + n + " threads " + threads);
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
