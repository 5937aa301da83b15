package dev.jtune.export;

import dev.jtune.io.AtomicFiles;
import dev.jtune.util.Tensors;
import org.bytedeco.javacpp.BytePointer;
import org.bytedeco.javacpp.PointerScope;
import org.bytedeco.pytorch.Tensor;
import org.bytedeco.pytorch.global.torch.ScalarType;

import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.channels.WritableByteChannel;

/**
 * Writes a tensor's elements in a ggml type, a slab of rows at a time so that no more than ~16 MB of converted
 * data exists at once (the source stays memory-mapped). Float types convert in LibTorch (round to nearest even,
 * as numpy and ggml's converters do); quantized types go through {@link BlockQuantizer}.
 */
@SuppressWarnings("try")
final class TensorEncoder {
    /** Elements converted per slab. */
    private static final long SLAB_ELEMENTS = 1L << 22;

    private TensorEncoder() {}

    /** @param t a CPU tensor of any float dtype, shape (rows, cols) or (n) */
    static void write(Tensor t, GgmlType type, WritableByteChannel out) throws IOException {
        long cols = t.size(t.dim() - 1);
        long rows = t.numel() / cols;
        Tensor m = t.reshape(rows, cols);
        long slabRows = Math.max(1, SLAB_ELEMENTS / cols);
        BlockQuantizer q = type.quantized() ? BlockQuantizer.of(type) : null;
        for (long r = 0; r < rows; r += slabRows) {
            long n = Math.min(slabRows, rows - r);
            try (PointerScope scope = new PointerScope()) {
                Tensor slab = m.narrow(0, r, n);
                if (q == null) {
                    Tensor c = slab.to(scalarType(type)).contiguous();
                    long bytes = c.numel() * Tensors.elementSize(scalarType(type));
                    ByteBuffer buf = new BytePointer(c.data_ptr()).capacity(bytes).asByteBuffer();
                    AtomicFiles.writeFully(out, buf);
                } else {
                    float[] x = Tensors.toFloats(slab);
                    ByteBuffer buf = GgufWriter.buffer((int) (n * type.rowBytes(cols)));
                    for (int i = 0; i < n; i++) q.quantizeRow(x, (int) (i * cols), (int) cols, buf);
                    buf.flip();
                    AtomicFiles.writeFully(out, buf);
                }
            }
        }
    }

    private static ScalarType scalarType(GgmlType type) {
        return switch (type) {
            case F32 -> ScalarType.Float;
            case F16 -> ScalarType.Half;
            case BF16 -> ScalarType.BFloat16;
            default -> throw new IllegalArgumentException(type.toString());
        };
    }
}
