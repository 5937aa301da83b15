package dev.jtune.kernels;

import dev.jtune.quant.FourBitCodec;
import dev.jtune.quant.QuantType;
import dev.jtune.quant.QuantizedTensor;
import dev.jtune.util.Devices;
import dev.jtune.util.Tensors;
import org.bytedeco.javacpp.PointerScope;
import org.bytedeco.pytorch.Device;
import org.bytedeco.pytorch.Scalar;
import org.bytedeco.pytorch.Tensor;
import org.bytedeco.pytorch.global.torch;
import org.bytedeco.pytorch.global.torch.ScalarType;
import org.junit.jupiter.api.Tag;
import org.junit.jupiter.api.Test;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * Ops.dequantize4bit: the kernel path (the emulated backend on the CPU, the CUDA kernel on a GPU) against the LibTorch
 * composition FourBitCodec.dequantize, bit for bit: the kernel rounds as the composition does (products and sums
 * rounded separately in float32, one rounding to the output dtype). Odd sizes (a partial block, an odd element count),
 * a block of zeros and extreme values; the GPU test poisons the output with NaN first, so an unwritten element fails.
 */
@SuppressWarnings("try")
class Dequantize4bitTest {
    /** Weights with a partial last block, an odd count, a zero block and values near float16's range. */
    static Tensor weights(long rows, long cols, Device d) {
        Tensor w = torch.randn(new long[] {rows, cols}, Tensors.options(ScalarType.Float, d)).mul(new Scalar(0.05));
        w.view(-1).narrow(0, 64, 64).zero_();                                 // a block of zeros
        w.view(-1).narrow(0, 130, 1).fill_(new Scalar(6.0e4));                // extreme values
        w.view(-1).narrow(0, 131, 1).fill_(new Scalar(-6.0e4));
        return w;
    }

    static Tensor viaOps(Ops ops, QuantizedTensor q, ScalarType dt) {
        var s = q.state();
        return ops.dequantize4bit(q.packed(), q.absmax(), q.nestedAbsmax(), q.nestedQuantMap(), s.nestedOffset(), s.nestedBlocksize(),
                q.quantMap(), s.shape(), s.blocksize(), dt, () -> FourBitCodec.dequantize(q, dt));
    }

    @Test
    void emulatedKernelPathEqualsTheComposition() {
        Device cpu = new Device("cpu");
        for (QuantType t : QuantType.values()) {
            for (boolean dq : new boolean[] {false, true}) {
                for (ScalarType dt : new ScalarType[] {ScalarType.Float, ScalarType.BFloat16}) {
                    try (PointerScope s = new PointerScope()) {
                        QuantizedTensor q = FourBitCodec.quantize(weights(7, 301, cpu), t, dq, "test");   // 2107 elements, odd
                        Tensor want = FourBitCodec.dequantize(q, dt);
                        Tensor got = viaOps(EmulatedOps.policy(), q, dt);
                        assertEquals(dt, got.scalar_type().intern());
                        assertTrue(torch.equal(want, got), t + " dq=" + dq + " " + dt);
                        assertTrue(torch.equal(want, viaOps(Ops.OFF, q, dt)), "kernels: off takes the composition");
                    }
                }
            }
        }
    }

    @Test
    @Tag("gpu")
    void cudaKernelEqualsTheComposition() {
        dev.jtune.GpuTests.assumeCuda();
        dev.jtune.GpuTests.assumeGpu(KernelLibrary.available(), KernelLibrary.reason());
        Device cuda = new Device("cuda");
        for (QuantType t : QuantType.values()) {
            for (boolean dq : new boolean[] {false, true}) {
                for (ScalarType dt : new ScalarType[] {ScalarType.Float, ScalarType.BFloat16}) {
                    for (long[] shape : new long[][] {{7, 301}, {4096, 4097}, {1, 65}}) {
                        try (PointerScope s = new PointerScope()) {
                            QuantizedTensor q = FourBitCodec.quantize(weights(shape[0], shape[1], cuda), t, dq, "test");
                            Tensor want = FourBitCodec.dequantize(q, dt);
                            Tensor out = torch.full(shape, new Scalar(Double.NaN), Tensors.options(dt, cuda));
                            var st = q.state();
                            CudaKernels.INSTANCE.dequantize4bit(out, q.packed(), dq ? null : q.absmax(), dq ? q.absmax() : null,
                                    q.nestedAbsmax(), q.nestedQuantMap(), st.nestedOffset(), st.nestedBlocksize(), q.quantMap(),
                                    st.numel(), st.blocksize());
                            assertTrue(torch.equal(want, out), t + " dq=" + dq + " " + dt + " " + java.util.Arrays.toString(shape));
                            assertTrue(torch.equal(want, viaOps(Ops.AUTO, q, dt)), "Ops on CUDA");
                        }
                    }
                }
            }
        }
    }
}
