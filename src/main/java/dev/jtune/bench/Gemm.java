package dev.jtune.bench;

import dev.jtune.util.Tensors;
import org.bytedeco.javacpp.PointerScope;
import org.bytedeco.pytorch.Device;
import org.bytedeco.pytorch.Tensor;
import org.bytedeco.pytorch.global.torch;
import org.bytedeco.pytorch.global.torch.ScalarType;

/**
 * A square matrix product measured in the benchmark's own process (same thread pool, same device): the rate the
 * hardware actually reaches on the easiest dense work, to set a training step's model FLOP/s against.
 */
final class Gemm {
    private Gemm() {}

    /**
     * TFLOP/s of an n×n by n×n product in {@code dtype} (2·n³ FLOPs each), after two untimed products, over at least
     * {@code minIters} products and {@code minSeconds}.
     */
    public static double tflops(ScalarType dtype, Device device, int n, int minIters, double minSeconds) {
        try (PointerScope outer = new PointerScope()) {
            Tensor a = torch.randn(new long[] {n, n}, Tensors.options(dtype, device));
            Tensor b = torch.randn(new long[] {n, n}, Tensors.options(dtype, device));
            for (int i = 0; i < 2; i++) {
                try (PointerScope s = new PointerScope()) {
                    torch.mm(a, b);
                }
            }
            DeviceInfo.sync(device);
            long start = System.nanoTime();
            int iters = 0;
            double elapsed;
            do {
                try (PointerScope s = new PointerScope()) {
                    torch.mm(a, b);
                }
                iters++;
                if (iters % 4 == 0 || device.is_cpu()) DeviceInfo.sync(device);
                elapsed = (System.nanoTime() - start) / 1e9;
            } while (iters < minIters || elapsed < minSeconds);
            DeviceInfo.sync(device);
            elapsed = (System.nanoTime() - start) / 1e9;
            return 2.0 * n * n * (double) n * iters / elapsed / 1e12;
        }
    }
}
