package dev.jtune.metrics;

import dev.jtune.io.WriteError;
import java.io.BufferedOutputStream;
import java.io.ByteArrayOutputStream;
import java.io.IOException;
import java.io.OutputStream;
import java.net.InetAddress;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;
import java.util.zip.CRC32C;

/**
 * Writes TensorBoard event files ({@code logging_dir/events.out.tfevents.<unix seconds>.<hostname>}) the
 * way TensorFlow does, with no TensorFlow or protobuf library: a TFRecord file of serialized
 * {@code tensorflow.Event} messages, the first one carrying {@code file_version: "brain.Event:2"}.
 *
 * <p>Each record is: length (uint64, little endian), masked CRC32C of those 8 bytes, the data, masked
 * CRC32C of the data. Scalars are {@code Summary.Value.simple_value}; text is a scalar {@code DT_STRING}
 * tensor tagged for the text plugin. Each record is handed to the operating system as soon as it is
 * written, so a TensorBoard watching the directory sees a run's progress as it happens.
 *
 * <p>A directory or file that cannot be written (a full disk, a missing permission) is a
 * {@link dev.jtune.util.UserError} naming it and the operating system's reason.
 *
 * <p>Thread-safe.
 */
public final class TensorBoardWriter implements AutoCloseable {
    static final String FILE_VERSION = "brain.Event:2";

    private final Path file;
    private final OutputStream out;
    private boolean closed;

    /** Creates {@code logDir} if needed and starts a new event file in it. */
    public TensorBoardWriter(Path logDir) {
        this(openNewEventFile(logDir));
    }

    /** Writes to {@code file}, already opened as {@code os} (tests hand in a stream that fails). */
    TensorBoardWriter(Path file, OutputStream os) {
        this.file = file;
        this.out = new BufferedOutputStream(os, 1 << 16);
        Proto event = new Proto();
        event.fixed64(1, Double.doubleToRawLongBits(now()));
        event.string(3, FILE_VERSION);
        try {
            write(event.toByteArray());
        } catch (RuntimeException e) {
            closed = true;
            try {
                os.close();
            } catch (IOException again) {
                e.addSuppressed(again);
            }
            throw e;
        }
    }

    private TensorBoardWriter(Opened o) {
        this(o.file(), o.out());
    }

    private record Opened(Path file, OutputStream out) {}

    private static Opened openNewEventFile(Path logDir) {
        try {
            Files.createDirectories(logDir);
        } catch (IOException e) {
            throw WriteError.creating(logDir, "the TensorBoard log directory (training.logging_dir)", e);
        }
        long seconds = System.currentTimeMillis() / 1000;
        String base = "events.out.tfevents." + seconds + "." + hostname();
        Path f = logDir.resolve(base);
        for (int i = 1; ; i++) {
            try {
                return new Opened(f, Files.newOutputStream(f, StandardOpenOption.CREATE_NEW, StandardOpenOption.WRITE));
            } catch (java.nio.file.FileAlreadyExistsException e) {
                // two writers in the same second (a quick resume): TensorBoard reads every *tfevents* file
                f = logDir.resolve(base + "." + i);
            } catch (IOException e) {
                throw WriteError.writing(f, "a TensorBoard event file", e);
            }
        }
    }

    /** The event file this writer appends to. */
    public Path file() {
        return file;
    }

    /** One scalar point, for example {@code scalar("train/loss", 100, 2.31)}. Stored as float32, as TensorBoard does. */
    public void scalar(String tag, long step, double value) {
        Proto v = new Proto();
        v.string(1, checkTag(tag));
        v.fixed32(2, Float.floatToRawIntBits((float) value));
        write(event(step, v));
    }

    /**
     * A text entry for TensorBoard's text dashboard, which renders it as Markdown (for example the
     * resolved configuration in a fenced code block).
     */
    public void text(String tag, long step, String markdown) {
        Proto pluginData = new Proto();
        pluginData.string(1, "text"); // plugin_name; content: an empty TextPluginData (version 0)
        Proto metadata = new Proto();
        metadata.message(1, pluginData);
        metadata.varint(4, 2); // data_class: DATA_CLASS_TENSOR
        Proto tensor = new Proto();
        tensor.varint(1, 7); // dtype: DT_STRING
        tensor.message(2, new Proto()); // tensor_shape: rank 0
        tensor.bytes(8, markdown.getBytes(StandardCharsets.UTF_8)); // string_val
        Proto v = new Proto();
        v.string(1, checkTag(tag));
        v.message(8, tensor);
        v.message(9, metadata);
        write(event(step, v));
    }

    /** Pushes buffered records to the operating system (each record is already pushed when written). */
    public synchronized void flush() {
        if (closed) {
            return;
        }
        try {
            out.flush();
        } catch (IOException e) {
            throw WriteError.writing(file, "the TensorBoard event file", e);
        }
    }

    @Override
    public synchronized void close() {
        if (closed) {
            return;
        }
        closed = true;
        try {
            out.close();
        } catch (IOException e) {
            throw WriteError.writing(file, "the TensorBoard event file", e);
        }
    }

    private static String checkTag(String tag) {
        if (tag == null || tag.isEmpty()) {
            throw new IllegalArgumentException("TensorBoard tag must not be empty");
        }
        return tag;
    }

    /** Event { wall_time = 1; step = 2; summary = 5 { value = 1 } }. */
    private static byte[] event(long step, Proto value) {
        Proto summary = new Proto();
        summary.message(1, value);
        Proto event = new Proto();
        event.fixed64(1, Double.doubleToRawLongBits(now()));
        if (step != 0) {
            event.varint(2, step);
        }
        event.message(5, summary);
        return event.toByteArray();
    }

    private static double now() {
        return System.currentTimeMillis() / 1000.0;
    }

    private synchronized void write(byte[] data) {
        if (closed) {
            throw new IllegalStateException("TensorBoard writer for " + file + " is closed");
        }
        byte[] header = new byte[8];
        long n = data.length;
        for (int i = 0; i < 8; i++) {
            header[i] = (byte) (n >>> (8 * i));
        }
        try {
            out.write(header);
            writeIntLE(out, maskedCrc32c(header, 0, 8));
            out.write(data);
            writeIntLE(out, maskedCrc32c(data, 0, data.length));
            out.flush();
        } catch (IOException e) {
            throw WriteError.writing(file, "the TensorBoard event file", e);
        }
    }

    private static void writeIntLE(OutputStream out, int v) throws IOException {
        out.write(v);
        out.write(v >>> 8);
        out.write(v >>> 16);
        out.write(v >>> 24);
    }

    /** CRC32C as TFRecord stores it: rotated right by 15 bits plus a constant. */
    static int maskedCrc32c(byte[] b, int off, int len) {
        CRC32C crc = new CRC32C();
        crc.update(b, off, len);
        int c = (int) crc.getValue();
        return ((c >>> 15) | (c << 17)) + 0xa282ead8;
    }

    private static String hostname() {
        String h = System.getenv("HOSTNAME");
        if (h == null || h.isBlank()) {
            try {
                h = Files.readString(Path.of("/etc/hostname")).trim();
            } catch (IOException | RuntimeException e) {
                h = null;
            }
        }
        if (h == null || h.isBlank()) {
            try {
                h = InetAddress.getLocalHost().getHostName();
            } catch (IOException e) {
                h = "localhost";
            }
        }
        String clean = h.trim().replaceAll("[^A-Za-z0-9._-]", "_");
        return clean.isEmpty() ? "localhost" : clean;
    }

    /** Just enough of the protobuf wire format for the messages above. */
    static final class Proto {
        private final ByteArrayOutputStream buf = new ByteArrayOutputStream();

        void varint(int field, long value) {
            key(field, 0);
            rawVarint(value);
        }

        void fixed64(int field, long bits) {
            key(field, 1);
            for (int i = 0; i < 8; i++) {
                buf.write((int) (bits >>> (8 * i)));
            }
        }

        void fixed32(int field, int bits) {
            key(field, 5);
            for (int i = 0; i < 4; i++) {
                buf.write(bits >>> (8 * i));
            }
        }

        void bytes(int field, byte[] b) {
            key(field, 2);
            rawVarint(b.length);
            buf.write(b, 0, b.length);
        }

        void string(int field, String s) {
            bytes(field, s.getBytes(StandardCharsets.UTF_8));
        }

        void message(int field, Proto m) {
            bytes(field, m.toByteArray());
        }

        byte[] toByteArray() {
            return buf.toByteArray();
        }

        private void key(int field, int wireType) {
            rawVarint(((long) field << 3) | wireType);
        }

        private void rawVarint(long v) {
            while ((v & ~0x7FL) != 0) {
                buf.write((int) ((v & 0x7F) | 0x80));
                v >>>= 7;
            }
            buf.write((int) v);
        }
    }
}
