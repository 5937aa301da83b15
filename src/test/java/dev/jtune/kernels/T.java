package dev.jtune.kernels;

import org.bytedeco.pytorch.Device;
import org.bytedeco.pytorch.DeviceOptional;
import org.bytedeco.pytorch.Scalar;
import org.bytedeco.pytorch.ScalarTypeOptional;
import org.bytedeco.pytorch.Tensor;
import org.bytedeco.pytorch.TensorOptions;
import org.bytedeco.pytorch.global.torch;
import org.bytedeco.pytorch.global.torch.ScalarType;

import java.util.Arrays;
import java.util.Locale;

import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assertions.fail;

/** Test helpers: random tensors, and element-wise closeness as torch.testing.assert_close checks it. */
final class T {
    private T() {}

    /**
     * Element-wise tolerance: {@code |got - want| <= atol + rtol * |want|} for every element.
     * {@link #of} gives torch.testing.assert_close's defaults for a dtype.
     */
    record Tol(double rtol, double atol) {
        /** torch.testing.assert_close's defaults: float32 1.3e-6 / 1e-5, bfloat16 1.6e-2 / 1e-5, float16 1e-3 / 1e-5, float64 1e-7 / 1e-7. */
        static Tol of(ScalarType dtype) {
            ScalarType s = dtype.intern();
            if (s == ScalarType.Float) return new Tol(1.3e-6, 1e-5);
            if (s == ScalarType.BFloat16) return new Tol(1.6e-2, 1e-5);
            if (s == ScalarType.Half) return new Tol(1e-3, 1e-5);
            if (s == ScalarType.Double) return new Tol(1e-7, 1e-7);
            throw new IllegalArgumentException("no default tolerance for " + s);
        }

        static final Tol EXACT = new Tol(0, 0);

        /** Both bounds times {@code f}: for results that add up many rounded terms (the error grows with their count). */
        Tol times(double f) {
            return new Tol(rtol * f, atol * f);
        }
    }

    static TensorOptions opts(ScalarType dtype, String device) {
        return new TensorOptions().dtype(new ScalarTypeOptional(dtype)).device(new DeviceOptional(new Device(device)));
    }

    static Tensor randn(ScalarType dtype, String device, long... shape) {
        return torch.randn(shape, opts(ScalarType.Float, device)).to(dtype);
    }

    /**
     * Fails unless got and want have one shape and every element satisfies {@code |got - want| <= atol + rtol *
     * |want|} (compared in float64; a NaN in either fails), naming the worst element: its index, both values and
     * how many elements are out of tolerance.
     */
    static void close(Tensor got, Tensor want, Tol tol, String what) {
        long[] shape = want.sizes().vec().get();
        assertTrue(Arrays.equals(got.sizes().vec().get(), shape),
                what + ": shape " + Arrays.toString(got.sizes().vec().get()) + ", expected " + Arrays.toString(shape));
        Tensor a = got.detach().to(ScalarType.Double).cpu().reshape(-1), b = want.detach().to(ScalarType.Double).cpu().reshape(-1);
        Tensor diff = a.sub(b).abs();                                                  // NaN where either is NaN
        Tensor allowed = b.abs().mul(new Scalar(tol.rtol())).add(new Scalar(tol.atol()));
        Tensor excess = torch.nan_to_num(diff.sub(allowed), new org.bytedeco.pytorch.DoubleOptional(Double.POSITIVE_INFINITY),
                new org.bytedeco.pytorch.DoubleOptional(Double.POSITIVE_INFINITY), new org.bytedeco.pytorch.DoubleOptional(Double.NEGATIVE_INFINITY));
        long bad = excess.gt(new Scalar(0)).sum().item_long();
        if (bad == 0) return;
        long i = excess.argmax().item_long();
        fail(String.format(Locale.ROOT, "%s: %d of %d elements out of tolerance (rtol %.3g, atol %.3g); worst at %s: got %s, expected %s, |diff| %.3g > allowed %.3g",
                what, bad, b.numel(), tol.rtol(), tol.atol(), Arrays.toString(unravel(i, shape)), a.get(i).item_double(),
                b.get(i).item_double(), diff.get(i).item_double(), allowed.get(i).item_double()));
    }

    /** {@link #close} with torch.testing.assert_close's default tolerance for {@code dtype}. */
    static void close(Tensor got, Tensor want, ScalarType dtype, String what) {
        close(got, want, Tol.of(dtype), what);
    }

    /** The multi-index of flat (row-major) index i in a tensor of this shape. */
    static long[] unravel(long i, long[] shape) {
        long[] idx = new long[shape.length];
        for (int d = shape.length - 1; d >= 0; d--) {
            idx[d] = shape[d] == 0 ? 0 : i % shape[d];
            i = shape[d] == 0 ? i : i / shape[d];
        }
        return idx;
    }

    static Tensor leaf(Tensor t) {
        return t.detach().clone().set_requires_grad(true);
    }
}
