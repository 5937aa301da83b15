package dev.jtune.export;

import dev.jtune.io.AtomicFiles;

import java.io.ByteArrayOutputStream;
import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.channels.WritableByteChannel;
import java.nio.charset.StandardCharsets;
import java.nio.file.Path;
import java.util.List;
import java.util.Map;
import java.util.function.IntConsumer;

/**
 * Writes a GGUF version 3 file (ggml's docs/gguf.md), little endian:
 * <pre>
 *   "GGUF" u32 version=3, u64 tensor_count, u64 kv_count
 *   kv_count × (string key, u32 type, value)            strings are u64 length + UTF-8 bytes
 *   tensor_count × (string name, u32 n_dims, u64 ne[n_dims], u32 ggml_type, u64 offset)
 *   zero padding to ALIGNMENT, then each tensor's data at its offset (offsets relative to here, aligned)
 * </pre>
 * The header is built in memory (it is small next to the weights); tensor data streams one tensor at a time
 * into a temporary file that is renamed into place only when complete.
 */
final class GgufWriter {
    public static final int VERSION = 3;
    /** general.alignment's default; jtune does not write the key, so readers use this. */
    public static final int ALIGNMENT = 32;

    private GgufWriter() {}

    /**
     * Writes {@code file}; {@code progress} is told the index of each tensor once written.
     *
     * @return the SHA-256 of the file
     */
    public static String write(Path file, GgufMetadata metadata, List<GgufTensor> tensors, IntConsumer progress) throws IOException {
        byte[] header = header(metadata, tensors);
        return AtomicFiles.write(file, ch -> {
            AtomicFiles.writeFully(ch, ByteBuffer.wrap(header));
            long pos = header.length;
            pos += pad(ch, pos);
            for (int i = 0; i < tensors.size(); i++) {
                GgufTensor t = tensors.get(i);
                CountingChannel counting = new CountingChannel(ch);
                t.data().write(counting);
                if (counting.count != t.byteSize()) {
                    throw new IllegalStateException(t.name() + ": wrote " + counting.count + " bytes, expected " + t.byteSize());
                }
                pos += counting.count;
                pos += pad(ch, pos);
                if (progress != null) progress.accept(i);
            }
        });
    }

    /** The header bytes: magic, counts, metadata and tensor infos (offsets computed from the sizes, aligned). */
    static byte[] header(GgufMetadata metadata, List<GgufTensor> tensors) {
        Out out = new Out();
        out.bytes("GGUF".getBytes(StandardCharsets.US_ASCII));
        out.u32(VERSION);
        out.u64(tensors.size());
        out.u64(metadata.entries().size());
        for (Map.Entry<String, GgufMetadata.Value> e : metadata.entries().entrySet()) {
            out.string(e.getKey());
            GgufMetadata.Value v = e.getValue();
            out.u32(v.type());
            if (v.type() == GgufMetadata.ARRAY) {
                out.u32(v.elementType());
                switch (v.elementType()) {
                    case GgufMetadata.STRING -> {
                        String[] a = (String[]) v.value();
                        out.u64(a.length);
                        for (String s : a) out.string(s);
                    }
                    case GgufMetadata.FLOAT32 -> {
                        float[] a = (float[]) v.value();
                        out.u64(a.length);
                        for (float f : a) out.u32(Float.floatToRawIntBits(f));
                    }
                    case GgufMetadata.INT32 -> {
                        int[] a = (int[]) v.value();
                        out.u64(a.length);
                        for (int x : a) out.u32(x);
                    }
                    default -> throw new IllegalStateException("array of type " + v.elementType());
                }
            } else {
                scalar(out, v.type(), v.value());
            }
        }
        long offset = 0;
        for (GgufTensor t : tensors) {
            out.string(t.name());
            out.u32(t.shape().length);
            for (int d = t.shape().length - 1; d >= 0; d--) out.u64(t.shape()[d]);   // ne[0] is the innermost dim
            out.u32(t.type().id);
            out.u64(offset);
            offset += t.byteSize();
            offset += padding(offset);
        }
        return out.toByteArray();
    }

    private static void scalar(Out out, int type, Object value) {
        switch (type) {
            case GgufMetadata.UINT32, GgufMetadata.INT32 -> out.u32((Integer) value);
            case GgufMetadata.FLOAT32 -> out.u32(Float.floatToRawIntBits((Float) value));
            case GgufMetadata.BOOL -> out.write((Boolean) value ? 1 : 0);
            case GgufMetadata.STRING -> out.string((String) value);
            case GgufMetadata.UINT64 -> out.u64((Long) value);
            default -> throw new IllegalStateException("scalar of type " + type);
        }
    }

    static long padding(long pos) {
        return (ALIGNMENT - pos % ALIGNMENT) % ALIGNMENT;
    }

    private static long pad(WritableByteChannel ch, long pos) throws IOException {
        int n = (int) padding(pos);
        if (n > 0) AtomicFiles.writeFully(ch, ByteBuffer.allocate(n));
        return n;
    }

    /** Little-endian primitives into a growing byte array. */
    private static final class Out extends ByteArrayOutputStream {
        void u32(int v) {
            write(v);
            write(v >>> 8);
            write(v >>> 16);
            write(v >>> 24);
        }

        void u64(long v) {
            for (int i = 0; i < 8; i++) write((int) (v >>> (8 * i)));
        }

        void bytes(byte[] b) {
            write(b, 0, b.length);
        }

        void string(String s) {
            byte[] b = s.getBytes(StandardCharsets.UTF_8);
            u64(b.length);
            bytes(b);
        }
    }

    /** Counts the bytes a tensor's writer passes through, so a short write is caught, not silently misaligned. */
    private static final class CountingChannel implements WritableByteChannel {
        private final WritableByteChannel inner;
        long count;

        CountingChannel(WritableByteChannel inner) {
            this.inner = inner;
        }

        @Override
        public int write(ByteBuffer src) throws IOException {
            int n = inner.write(src);
            count += n;
            return n;
        }

        @Override
        public boolean isOpen() {
            return inner.isOpen();
        }

        @Override
        public void close() {}
    }

    /** A little-endian buffer of {@code n} bytes (for tensor writers). */
    static ByteBuffer buffer(int n) {
        return ByteBuffer.allocate(n).order(ByteOrder.LITTLE_ENDIAN);
    }
}
