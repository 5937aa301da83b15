package dev.jtune.kernels;

import dev.jtune.util.Tensors;
import org.bytedeco.pytorch.MemoryFormatOptional;
import org.bytedeco.pytorch.NoGradGuard;
import org.bytedeco.pytorch.Tensor;
import org.bytedeco.pytorch.global.torch;
import org.bytedeco.pytorch.global.torch.ScalarType;

import java.util.function.Supplier;

/**
 * bitsandbytes' 4-bit dequantization (QLoRA's frozen base), the op a quantized linear layer runs before each matrix
 * product. The kernel path is kernels/dequantize_4bit.cu; the LibTorch composition is quant.FourBitCodec.dequantize,
 * handed in as {@code composition} (kernels/ does not depend on quant/). No gradient: the codes are frozen.
 *
 * <p>Shapes ({@code n} elements, {@code B = ceil(n / blocksize)} blocks): packed uint8 [(n + 1) / 2] (element 2i in
 * the high nibble), quantMap float32 [16]; without double quantization absmax float32 [B]; with it absmax holds
 * uint8 codes [B] of nestedMap float32 [256], scaled by nestedAbsmax float32 [ceil(B / nestedBlocksize)] plus offset.
 */
final class Dequantize4bit {
    private Dequantize4bit() {}

    /** The tensors of one quantized weight; nestedAbsmax and nestedMap are null without double quantization. */
    record Args(Tensor packed, Tensor absmax, Tensor nestedAbsmax, Tensor nestedMap, float offset, long nestedBlocksize,
                Tensor quantMap, long[] shape, long blocksize) {
        boolean nested() {
            return nestedAbsmax != null;
        }

        long numel() {
            long n = 1;
            for (long d : shape) n *= d;
            return n;
        }
    }

    /** @param k the kernel backend, or null for LibTorch ({@code composition}) */
    static Tensor apply(KernelBackend k, Args a, ScalarType dtype, Supplier<Tensor> composition) {
        boolean kernelDtype = dtype == ScalarType.Float || dtype == ScalarType.BFloat16;
        if (k == null || !kernelDtype || a.blocksize() % 2 != 0) return composition.get();
        Tensor out = torch.empty(a.shape(), Tensors.options(dtype, a.packed().device()), new MemoryFormatOptional());
        try (NoGradGuard ng = new NoGradGuard()) {
            k.dequantize4bit(out, a.packed().contiguous(), a.nested() ? null : a.absmax().contiguous(),
                    a.nested() ? a.absmax().contiguous() : null, a.nested() ? a.nestedAbsmax().contiguous() : null,
                    a.nested() ? a.nestedMap().contiguous() : null, a.offset(), a.nestedBlocksize(), a.quantMap().contiguous(),
                    a.numel(), a.blocksize());
        }
        return out;
    }
}
