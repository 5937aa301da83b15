package dev.jtune.quant;

import org.bytedeco.javacpp.BytePointer;
import org.bytedeco.pytorch.Tensor;
import org.bytedeco.pytorch.global.torch;
import org.bytedeco.pytorch.global.torch.ScalarType;

/** Bytes in and out of 1-D uint8 tensors (the quant state's JSON travels as one). */
final class StateBytes {
    private StateBytes() {}

    /** A 1-D uint8 CPU tensor holding a copy of {@code bytes}. */
    static Tensor tensor(byte[] bytes) {
        try (BytePointer p = new BytePointer(bytes)) {
            return torch.from_blob(p, new long[] {bytes.length}, dev.jtune.util.Tensors.options(ScalarType.Byte)).clone();
        }
    }

    /** The bytes of a uint8 tensor (any shape, flattened; copied to the CPU when needed). */
    static byte[] bytes(Tensor t) {
        Tensor c = t.contiguous().cpu();
        byte[] out = new byte[(int) c.numel()];
        new BytePointer(c.data_ptr()).capacity(out.length).get(out);
        return out;
    }
}
