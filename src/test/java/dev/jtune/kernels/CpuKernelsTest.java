package dev.jtune.kernels;

import org.bytedeco.javacpp.PointerScope;
import org.bytedeco.pytorch.NoGradGuard;
import org.bytedeco.pytorch.Tensor;
import org.bytedeco.pytorch.global.torch;
import org.bytedeco.pytorch.global.torch.ScalarType;
import org.junit.jupiter.api.Test;

import java.util.List;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNotNull;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assumptions.assumeTrue;

/**
 * jtune's CPU kernels (libjtunecpu.so): built and loaded wherever the build had a C++ compiler (always under CI, which
 * has g++), and each instruction-set variant of the matrix-vector kernel this CPU runs equals a float64 reference
 * within the float32 error of its own summation, on widths and row counts that hit every tail.
 */
class CpuKernelsTest {
    @Test
    void libraryIsBuiltAndLoads() {
        boolean ci = "true".equals(System.getenv("CI"));
        if (!ci) assumeTrue(CpuKernelLibrary.class.getResource(CpuKernelLibrary.RESOURCE) != null, "built without a C++ compiler");
        assertNotNull(CpuKernelLibrary.class.getResource(CpuKernelLibrary.RESOURCE),
                CpuKernelLibrary.RESOURCE + " was not built (native/build-cpu.sh): CPU decoding would fall back to LibTorch in silence");
        assertTrue(CpuKernelLibrary.available(), CpuKernelLibrary.reason());
        assertTrue(List.of("avx512f", "avx2+fma", "generic").contains(CpuKernelLibrary.status().isa()), CpuKernelLibrary.reason());
        assertEquals(CpuKernelLibrary.ABI_VERSION, CpuKernelNative.abiVersion());
    }

    @Test
    void offOrMissingIsReportedNotThrown() {
        CpuKernelLibrary.Status off = CpuKernelLibrary.probe(CpuKernelLibrary.RESOURCE, "0");
        assertFalse(off.available());
        assertEquals("CPU kernels off (JTUNE_CPU_KERNELS=0)", off.reason());
        CpuKernelLibrary.Status missing = CpuKernelLibrary.probe("linux-x86_64/libnosuchcpu.so", null);
        assertFalse(missing.available());
        assertTrue(missing.reason().startsWith("CPU kernel library missing"), missing.reason());
    }

    @Test
    void matvecEqualsAFloat64ReferenceOnEveryInstructionSetHere() {
        assumeTrue(CpuKernelLibrary.available(), CpuKernelLibrary.reason());
        int variants = 0;
        try (PointerScope scope = new PointerScope(); NoGradGuard ng = new NoGradGuard()) {
            for (int isa : new int[] {CpuKernelNative.ISA_BEST, CpuKernelNative.ISA_AVX512, CpuKernelNative.ISA_AVX2, CpuKernelNative.ISA_GENERIC}) {
                if (CpuKernelNative.matvec(isa, 0, 1, 0, 0, 0, 0, 1) == CpuKernelNative.ERR_ISA) continue;   // this CPU lacks it
                variants++;
                // widths around the 16- and 8-float vectors (tails of 0..15), the decode shapes' 896 and 4864 + 3;
                // row counts around the 4-row blocks
                for (long d : new long[] {1, 5, 8, 15, 16, 17, 33, 896, 4867}) {
                    for (long rows : new long[] {1, 3, 4, 7, 64}) {
                        for (long pad : new long[] {0, 5}) {
                            for (boolean withBias : new boolean[] {false, true}) {
                                check(isa, rows, d, d + pad, withBias);
                            }
                        }
                    }
                }
            }
        }
        assertTrue(variants >= 2, "the best variant and at least the generic one run everywhere");
    }

    @Test
    void linearRowsEqualsAFloat64ReferenceOnEveryInstructionSetHere() {
        assumeTrue(CpuKernelLibrary.available(), CpuKernelLibrary.reason());
        int variants = 0;
        try (PointerScope scope = new PointerScope(); NoGradGuard ng = new NoGradGuard()) {
            for (int isa : new int[] {CpuKernelNative.ISA_BEST, CpuKernelNative.ISA_AVX512, CpuKernelNative.ISA_AVX2, CpuKernelNative.ISA_GENERIC}) {
                if (CpuKernelNative.linearRows(isa, 0, 1, 0, 1, 1, 0, 0, 1, 0, 1) == CpuKernelNative.ERR_ISA) continue;
                variants++;
                for (long d : new long[] {1, 15, 17, 896}) {
                    for (int rows = 1; rows <= CpuKernelNative.LINEAR_ROWS_MAX; rows++) {
                        for (long n : new long[] {1, 2, 7}) checkRows(isa, rows, n, d, n % 2 == 1);
                    }
                }
                checkRows(isa, 8, 64, 4867, true);
            }
            assertEquals(CpuKernelNative.ERR_ARG, CpuKernelNative.linearRows(CpuKernelNative.ISA_BEST, 0, 1, 0, 1, 0, 0, 0, 1, 1, 1), "0 rows");
            assertEquals(CpuKernelNative.ERR_ARG, CpuKernelNative.linearRows(CpuKernelNative.ISA_BEST, 0, 1, 0, 1, 9, 0, 0, 1, 1, 1), "9 rows");
        }
        assertTrue(variants >= 2, "the best variant and at least the generic one run everywhere");
    }

    /**
     * rows of x (row stride d + 3) times the column block [2, 2 + n) of a (n + 4, d) weight, written into the same
     * columns of y (rows, n + 4): the block a thread gets. The columns outside it must stay untouched.
     */
    private static void checkRows(int isa, int rows, long n, long d, boolean withBias) {
        long total = n + 4, r0 = 2, ldx = d + 3;
        Tensor w = T.randn(ScalarType.Float, "cpu", total, d);
        Tensor x = T.randn(ScalarType.Float, "cpu", rows, ldx);
        Tensor bias = withBias ? T.randn(ScalarType.Float, "cpu", total) : null;
        Tensor y = torch.full(new long[] {rows, total}, new org.bytedeco.pytorch.Scalar(Float.NaN), T.opts(ScalarType.Float, "cpu"));
        int st = CpuKernelNative.linearRows(isa, w.data_ptr().address() + 4 * r0 * d, d, x.data_ptr().address(), ldx, rows,
                bias == null ? 0 : bias.data_ptr().address() + 4 * r0, y.data_ptr().address() + 4 * r0, total, n, d);
        assertEquals(CpuKernelNative.OK, st);
        Tensor wd = w.narrow(0, r0, n).to(ScalarType.Double), xd = x.narrow(1, 0, d).to(ScalarType.Double);
        Tensor want = xd.matmul(wd.t()), magnitude = xd.abs().matmul(wd.abs().t());      // (rows, n)
        if (bias != null) {
            want = want.add(bias.narrow(0, r0, n).to(ScalarType.Double));
            magnitude = magnitude.add(bias.narrow(0, r0, n).to(ScalarType.Double).abs());
        }
        double eps = Math.ulp(1.0f) / 2;
        String what = "isa " + isa + ", rows " + rows + ", n " + n + ", d " + d + (withBias ? ", bias" : "");
        for (int i = 0; i < rows; i++) {
            for (int c = 0; c < total; c++) {
                float got = y.select(0, i).select(0, c).item_float();
                if (c < r0 || c >= r0 + n) {
                    assertTrue(Float.isNaN(got), what + ": wrote y[" + i + ", " + c + "] outside its columns");
                    continue;
                }
                double ref = want.select(0, i).select(0, c - r0).item_double();
                double tol = (d / 8.0 + 17) * eps * magnitude.select(0, i).select(0, c - r0).item_double() + 1e-30;
                assertTrue(Math.abs(got - ref) <= tol, what + ": y[" + i + ", " + c + "] = " + got + ", want " + ref + " within " + tol);
            }
        }
    }

    /** One product: y (rows + 2 guard elements) against w·x in float64; the guards must stay untouched. */
    private static void check(int isa, long rows, long d, long ldw, boolean withBias) {
        Tensor w = T.randn(ScalarType.Float, "cpu", rows, ldw);                // row stride ldw, the first d columns used
        Tensor x = T.randn(ScalarType.Float, "cpu", d);
        Tensor bias = withBias ? T.randn(ScalarType.Float, "cpu", rows) : null;
        Tensor y = torch.full(new long[] {rows + 2}, new org.bytedeco.pytorch.Scalar(Float.NaN), T.opts(ScalarType.Float, "cpu"));
        int st = CpuKernelNative.matvec(isa, w.data_ptr().address(), ldw, x.data_ptr().address(),
                bias == null ? 0 : bias.data_ptr().address(), y.data_ptr().address(), rows, d);
        assertEquals(CpuKernelNative.OK, st);
        Tensor wd = w.narrow(1, 0, d).to(ScalarType.Double), xd = x.to(ScalarType.Double);
        Tensor want = torch.mv(wd, xd);
        if (bias != null) want = want.add(bias.to(ScalarType.Double));
        // the kernel sums each row in 8 or 16 lanes, then across them: at most d/8 + 16 roundings on the way, each
        // relative to the sum of |w·x| (plus one for the bias)
        Tensor magnitude = torch.mv(wd.abs(), xd.abs());
        if (bias != null) magnitude = magnitude.add(bias.to(ScalarType.Double).abs());
        double eps = Math.ulp(1.0f) / 2;
        String what = "isa " + isa + ", rows " + rows + ", d " + d + ", ldw " + ldw + (withBias ? ", bias" : "");
        for (int r = 0; r < rows; r++) {
            float got = y.select(0, r).item_float();
            double ref = want.select(0, r).item_double(), tol = (d / 8.0 + 17) * eps * magnitude.select(0, r).item_double() + 1e-30;
            assertTrue(Math.abs(got - ref) <= tol, what + ": y[" + r + "] = " + got + ", want " + ref + " within " + tol);
        }
        assertTrue(Float.isNaN(y.select(0, rows).item_float()) && Float.isNaN(y.select(0, rows + 1).item_float()), what + ": wrote past the last row");
    }
}
