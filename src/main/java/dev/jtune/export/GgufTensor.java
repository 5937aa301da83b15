package dev.jtune.export;

import java.io.IOException;
import java.nio.channels.WritableByteChannel;

/**
 * One tensor of a GGUF file before it is written: its llama.cpp name, its shape in PyTorch order (outermost
 * first; GGUF stores the reverse, {@code ne[0]} the innermost), its ggml type, and what writes its bytes.
 */
record GgufTensor(String name, long[] shape, GgmlType type, Data data) {

    /** Writes exactly {@link #byteSize()} bytes, when the writer reaches this tensor (not before: streaming). */
    @FunctionalInterface
    public interface Data {
        void write(WritableByteChannel out) throws IOException;
    }

    public long rows() {
        long r = 1;
        for (int i = 0; i < shape.length - 1; i++) r *= shape[i];
        return r;
    }

    public long rowLength() {
        return shape[shape.length - 1];
    }

    public long byteSize() {
        return rows() * type.rowBytes(rowLength());
    }
}
