package dev.jtune.kernels;

import org.bytedeco.javacpp.PointerScope;
import org.bytedeco.pytorch.Tensor;
import org.bytedeco.pytorch.global.torch;
import org.bytedeco.pytorch.global.torch.ScalarType;
import org.junit.jupiter.api.Test;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * Under bf16 autocast q arrives in bf16 while cos/sin are float32 (the model's dtype): the RoPE kernel is taken with
 * cos/sin cast to bf16 (as transformers' rotary embedding returns cos.to(x.dtype)), and OpPaths says which path each
 * call took. Before, the dtype mismatch sent every call to LibTorch while the log claimed the kernel.
 */
class RopeUnderAutocastTest {
    @Test
    void bf16QueriesWithFloat32CosSinTakeTheKernel() {
        try (PointerScope scope = new PointerScope()) {
            torch.manual_seed(11);
            Ops ops = Ops.withBackend(EmulatedKernels.INSTANCE);
            Tensor q = T.randn(ScalarType.BFloat16, "cpu", 2, 5, 3, 8).transpose(1, 2);      // (B, H, T, hd), strided
            Tensor cos = T.randn(ScalarType.Float, "cpu", 2, 1, 5, 8), sin = T.randn(ScalarType.Float, "cpu", 2, 1, 5, 8);
            Tensor want = RotaryEmbedding.reference(q, cos.to(ScalarType.BFloat16), sin.to(ScalarType.BFloat16));
            OpPaths.reset();
            Tensor got = ops.rope(q.clone(), cos, sin);
            assertEquals("CUDA kernel ×1", OpPaths.taken().get("rope"), OpPaths.taken().toString());
            assertTrue(got.scalar_type().intern() == ScalarType.BFloat16);
            T.close(got, want, new T.Tol(0x1p-8, 1e-6), "rope with cos/sin cast to bf16");

            // cos that needs a gradient is not the kernel's: recorded as LibTorch, with the reason
            ops.rope(q.clone(), T.leaf(cos), sin);
            String rope = OpPaths.taken().get("rope");
            assertTrue(rope.contains("CUDA kernel ×1") && rope.contains("LibTorch: x BFloat16 [2, 3, 5, 8], cos Float"), rope);
            OpPaths.reset();
            Ops.OFF.rope(q.clone(), cos, sin);
            assertTrue(OpPaths.taken().isEmpty(), "kernels off: nothing to report beyond the policy");
        }
    }
}
