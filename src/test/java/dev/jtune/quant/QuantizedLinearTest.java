package dev.jtune.quant;

import dev.jtune.util.Tensors;
import org.bytedeco.javacpp.PointerScope;
import org.bytedeco.pytorch.Tensor;
import org.bytedeco.pytorch.global.torch;
import org.bytedeco.pytorch.global.torch.ScalarType;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.CsvSource;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * The quantized linear op against LibTorch's composition (dequantize, then autograd's linear): the
 * output, the gradient of the input, and the gradient of a trainable matrix upstream (as a LoRA A would
 * get), with dtype-aware tolerances; the frozen 4-bit weight gets none.
 */
@SuppressWarnings("try")
class QuantizedLinearTest {

    @ParameterizedTest
    @CsvSource({"nf4,true,Float,0", "fp4,false,Float,0", "nf4,true,BFloat16,2e-2"})
    void matchesTheComposition(String type, boolean dq, String compute, double tol) {
        try (PointerScope scope = new PointerScope()) {
            torch.manual_seed(7);
            ScalarType ct = ScalarType.valueOf(compute);
            QuantizedTensor w = FourBitCodec.quantize(torch.randn(40, 67).mul(new org.bytedeco.pytorch.Scalar(0.05)),
                    QuantType.parse(type, "test"), dq, "w");
            Tensor bias = torch.randn(40);
            Tensor a = torch.randn(2, 3, 5);
            Tensor upstream = torch.randn(5, 67).set_requires_grad(true);   // trainable, like a LoRA matrix
            Tensor upstreamRef = upstream.detach().clone().set_requires_grad(true);
            Tensor gy = torch.randn(2, 3, 40).to(ct);

            Tensor x = a.matmul(upstream);                                     // (2, 3, 67), requires grad
            Tensor y = QuantizedLinear.forward(x, w, bias, ct);
            Tensor xRef = a.matmul(upstreamRef);
            Tensor yRef = QuantizedLinear.reference(xRef, w, bias, ct);
            assertArrayEquals(new long[] {2, 3, 40}, Tensors.shape(y));
            assertEquals(ct, y.scalar_type().intern());
            close(Tensors.toFloats(yRef), Tensors.toFloats(y), tol == 0 ? 0 : tol, "output");

            x.retain_grad();
            xRef.retain_grad();
            y.mul(gy).sum().backward();
            yRef.mul(gy).sum().backward();
            close(Tensors.toFloats(xRef.grad()), Tensors.toFloats(x.grad()), tol == 0 ? 1e-5 : tol, "d input");
            close(Tensors.toFloats(upstreamRef.grad()), Tensors.toFloats(upstream.grad()), tol == 0 ? 1e-5 : tol, "d upstream");

            try (org.bytedeco.pytorch.NoGradGuard ng = new org.bytedeco.pytorch.NoGradGuard()) {
                close(Tensors.toFloats(yRef), Tensors.toFloats(QuantizedLinear.forward(x, w, bias, ct)), tol, "no-grad output");
            }
        }
    }

    /** |a - e| <= tol * (1 + |e|) element-wise (tol 0: equal). */
    static void close(float[] expected, float[] actual, double tol, String what) {
        assertEquals(expected.length, actual.length, what);
        double scale = 0;
        for (float e : expected) scale = Math.max(scale, Math.abs(e));
        for (int i = 0; i < expected.length; i++) {
            double err = Math.abs(actual[i] - expected[i]);
            assertTrue(err <= tol * (Math.abs(expected[i]) + 1e-3 * scale) || (tol == 0 && err == 0),
                    what + "[" + i + "]: expected " + expected[i] + ", got " + actual[i]);
        }
    }
}
