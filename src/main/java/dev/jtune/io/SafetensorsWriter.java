package dev.jtune.io;

import com.fasterxml.jackson.core.JsonProcessingException;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ArrayNode;
import com.fasterxml.jackson.databind.node.ObjectNode;
import dev.jtune.util.UserError;
import org.bytedeco.javacpp.BytePointer;
import org.bytedeco.javacpp.PointerScope;
import org.bytedeco.pytorch.Tensor;

import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.channels.WritableByteChannel;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;
import java.util.ArrayList;
import java.util.Comparator;
import java.util.List;
import java.util.Map;

/** Writes {@code .safetensors} files, atomically and one tensor at a time. */
@SuppressWarnings("try") // PointerScope blocks are used for their effect, not referenced
public final class SafetensorsWriter {

    /** Bytes handed to one write call: a direct view of the tensor's memory, never a heap copy. */
    private static final long CHUNK = 64L << 20;
    private static final ObjectMapper JSON = new ObjectMapper();

    private SafetensorsWriter() {
    }

    /** What the header needs to know about one tensor, before any byte is written. */
    record Planned(String name, Tensor tensor, DType dtype, long[] shape, long byteSize) {
    }

    /**
     * Writes {@code tensors} (in map order) and {@code metadata} to {@code file}.
     *
     * <p>The header lists the tensors in the map's iteration order, with {@code __metadata__} first (as the
     * reference implementation writes it; omitted when {@code metadata} is null or empty), and is padded with
     * spaces to a multiple of 8 bytes. The data section is ordered by element size, largest first (stable,
     * so equal sizes keep map order), so every tensor starts at a multiple of its element size in the file
     * and {@link SafetensorsFile#tensor} can map it without copying.
     *
     * <p>Tensors may live on any device, in any layout/strides: each is copied to a contiguous CPU tensor
     * (a no-op when it already is one), written, and freed before the next, so at most one tensor's copy is
     * in memory. The file appears atomically: the bytes go to a temporary file in the same directory,
     * which is fsynced and renamed over {@code file}; the directory is fsynced after.
     *
     * @return the SHA-256 of the file's bytes ({@code "sha256:<hex>"}), hashed as they were written
     * @throws UserError on an empty or reserved tensor name, an undefined tensor, a dtype safetensors
     *                   cannot hold, or an I/O failure (each naming the file and the tensor)
     */
    public static String write(Path file, Map<String, Tensor> tensors, Map<String, String> metadata) {
        List<Planned> plan = plan(file, tensors);
        byte[] header = header(plan, metadata);

        List<Planned> dataOrder = dataOrder(plan);
        try {
            return AtomicFiles.write(file, ch -> {
                ByteBuffer len = ByteBuffer.allocate(8).order(ByteOrder.LITTLE_ENDIAN).putLong(0, header.length);
                writeFully(ch, len);
                writeFully(ch, ByteBuffer.wrap(header));
                for (Planned p : dataOrder) {
                    writeTensor(file, ch, p);
                }
            });
        } catch (IOException e) {
            throw WriteError.writing(file, "the safetensors file", e);
        }
    }

    static List<Planned> plan(Path file, Map<String, Tensor> tensors) {
        List<Planned> plan = new ArrayList<>(tensors.size());
        for (Map.Entry<String, Tensor> e : tensors.entrySet()) {
            String name = e.getKey();
            Tensor t = e.getValue();
            String where = file + ": tensor '" + name + "'";
            if (name == null || name.isEmpty()) {
                throw new UserError(file + ": tensor names must be non-empty");
            }
            if (name.equals(SafetensorsFile.METADATA_KEY)) {
                throw new UserError(where + ": the name " + SafetensorsFile.METADATA_KEY + " is reserved for metadata");
            }
            if (t == null || t.isNull() || !t.defined()) {
                throw new UserError(where + ": tensor is null or undefined");
            }
            DType dtype;
            try {
                dtype = DType.of(t.scalar_type());
            } catch (UserError u) {
                throw new UserError(where + ": " + u.getMessage());
            }
            long[] shape = new long[(int) t.dim()];
            for (int i = 0; i < shape.length; i++) {
                shape[i] = t.size(i);
            }
            long bytes = t.numel() * dtype.byteSize();
            plan.add(new Planned(name, t, dtype, shape, bytes));
        }
        return plan;
    }

    static List<Planned> dataOrder(List<Planned> plan) {
        List<Planned> order = new ArrayList<>(plan);
        order.sort(Comparator.comparingInt((Planned p) -> p.dtype().byteSize()).reversed()); // List.sort is stable
        return order;
    }

    /** The JSON header, space padded to a multiple of 8 bytes. */
    static byte[] header(List<Planned> plan, Map<String, String> metadata) {
        // Index-based (not indexOf): the same Tensor object may be stored under two names.
        List<Integer> order = new ArrayList<>();
        for (int i = 0; i < plan.size(); i++) {
            order.add(i);
        }
        order.sort(Comparator.comparingInt((Integer i) -> plan.get(i).dtype().byteSize()).reversed());
        long[][] offsets = new long[plan.size()][];
        long pos = 0;
        for (int i : order) {
            offsets[i] = new long[] {pos, pos + plan.get(i).byteSize()};
            pos += plan.get(i).byteSize();
        }
        ObjectNode root = JSON.createObjectNode();
        if (metadata != null && !metadata.isEmpty()) {
            ObjectNode m = root.putObject(SafetensorsFile.METADATA_KEY);
            metadata.forEach(m::put);
        }
        for (int i = 0; i < plan.size(); i++) {
            Planned p = plan.get(i);
            ObjectNode o = root.putObject(p.name());
            o.put("dtype", p.dtype().name());
            ArrayNode s = o.putArray("shape");
            for (long d : p.shape()) {
                s.add(d);
            }
            o.putArray("data_offsets").add(offsets[i][0]).add(offsets[i][1]);
        }
        byte[] json;
        try {
            json = JSON.writeValueAsString(root).getBytes(StandardCharsets.UTF_8);
        } catch (JsonProcessingException e) {
            throw new IllegalStateException(e);
        }
        int padded = (json.length + 7) / 8 * 8;
        byte[] out = new byte[padded];
        System.arraycopy(json, 0, out, 0, json.length);
        for (int i = json.length; i < padded; i++) {
            out[i] = ' ';
        }
        return out;
    }

    private static void writeTensor(Path file, WritableByteChannel ch, Planned p) throws IOException {
        if (p.byteSize() == 0) {
            return;
        }
        try (PointerScope scope = new PointerScope()) {
            // No-ops (same tensor) when it already is a contiguous CPU tensor; otherwise one temporary copy,
            // freed when the scope closes.
            Tensor c = p.tensor().cpu().contiguous();
            BytePointer data = new BytePointer(c.data_ptr());
            data.capacity(p.byteSize());
            for (long off = 0; off < p.byteSize(); off += CHUNK) {
                long n = Math.min(CHUNK, p.byteSize() - off);
                writeFully(ch, data.position(off).limit(off + n).asByteBuffer());
            }
        } catch (RuntimeException e) {
            if (e instanceof UserError) {
                throw e;
            }
            throw new UserError(file + ": tensor '" + p.name() + "': cannot copy to CPU for writing: " + e.getMessage(), e);
        }
    }

    private static void writeFully(WritableByteChannel ch, ByteBuffer b) throws IOException {
        AtomicFiles.writeFully(ch, b);
    }
}
