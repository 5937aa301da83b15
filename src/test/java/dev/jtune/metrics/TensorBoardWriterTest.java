package dev.jtune.metrics;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNotEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assumptions.assumeTrue;

import java.io.IOException;
import java.io.OutputStream;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.stream.Stream;
import java.util.zip.CRC32C;
import com.google.protobuf.Message;
import dev.jtune.util.UserError;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.tensorflow.framework.DataClass;
import org.tensorflow.framework.DataType;
import org.tensorflow.framework.Summary;
import org.tensorflow.framework.TensorProto;
import org.tensorflow.util.Event;

/**
 * Reads the event files back with code that shares nothing with the writer: the TFRecord framing is checked
 * with the JDK's CRC32C and the masking rule written here from the TFRecord format, and each record is
 * decoded by protobuf-java classes that protoc generates at build time from TensorBoard's own event.proto,
 * summary.proto and tensor.proto (src/test/proto).
 */
public class TensorBoardWriterTest {
    @TempDir
    Path dir;

    // ---- independent decoder -------------------------------------------------------------------

    /** Bitwise CRC32C (Castagnoli, reflected polynomial 0x82F63B78), checked against the known vector below. */
    static int crc32c(byte[] b, int off, int len) {
        int crc = 0xFFFFFFFF;
        for (int i = off; i < off + len; i++) {
            crc ^= b[i] & 0xFF;
            for (int k = 0; k < 8; k++) {
                crc = (crc & 1) != 0 ? (crc >>> 1) ^ 0x82F63B78 : crc >>> 1;
            }
        }
        return ~crc;
    }

    /** The JDK's CRC32C of {@code b[off, off+len)}. */
    static int jdkCrc32c(byte[] b, int off, int len) {
        CRC32C c = new CRC32C();
        c.update(b, off, len);
        return (int) c.getValue();
    }

    /** TFRecord's mask: rotate right by 15 bits, add 0xa282ead8. */
    static int mask(int crc) {
        return Integer.rotateRight(crc, 15) + 0xa282ead8;
    }

    static long le(byte[] b, int off, int n) {
        long v = 0;
        for (int i = n - 1; i >= 0; i--) {
            v = (v << 8) | (b[off + i] & 0xFF);
        }
        return v;
    }

    /** Splits a TFRecord file into its records, checking both masked CRCs of each. */
    static List<byte[]> records(byte[] file) {
        List<byte[]> out = new ArrayList<>();
        int pos = 0;
        while (pos < file.length) {
            if (file.length - pos < 12) {
                throw new IllegalStateException("truncated header at " + pos);
            }
            long len = le(file, pos, 8);
            int lenCrc = (int) le(file, pos + 8, 4);
            if (lenCrc != mask(jdkCrc32c(file, pos, 8))) {
                throw new IllegalStateException("length CRC mismatch at " + pos);
            }
            int start = pos + 12;
            if (len < 0 || start + len + 4 > file.length) {
                throw new IllegalStateException("truncated record at " + pos);
            }
            int dataCrc = (int) le(file, start + (int) len, 4);
            if (dataCrc != mask(jdkCrc32c(file, start, (int) len))) {
                throw new IllegalStateException("data CRC mismatch at " + pos);
            }
            out.add(Arrays.copyOfRange(file, start, start + (int) len));
            pos = start + (int) len + 4;
        }
        return out;
    }

    public record Decoded(double wallTime, long step, String fileVersion, String tag, Float simpleValue, String pluginName, Long dtype,
            String text) {}

    /** Fails when a message holds a field its .proto does not declare (a wrong number or wire type). */
    static void noUnknownFields(Message m, String what) {
        assertTrue(m.getUnknownFields().asMap().isEmpty(), what + " has fields event.proto does not declare: " + m.getUnknownFields());
    }

    public static List<Decoded> decode(Path file) throws IOException {
        List<Decoded> out = new ArrayList<>();
        for (byte[] rec : records(Files.readAllBytes(file))) {
            Event ev = Event.parseFrom(rec);
            noUnknownFields(ev, "Event");   // also: wall_time is a double (another wire type would be an unknown field)
            // the writer's bytes are protobuf's canonical encoding of what they hold
            assertArrayEquals(ev.toByteArray(), rec, "protobuf-java re-encodes the record to the same bytes");
            double wall = ev.getWallTime();
            long step = ev.getStep();
            if (ev.getWhatCase() == Event.WhatCase.FILE_VERSION) {
                out.add(new Decoded(wall, step, ev.getFileVersion(), null, null, null, null, null));
                continue;
            }
            assertEquals(Event.WhatCase.SUMMARY, ev.getWhatCase());
            noUnknownFields(ev.getSummary(), "Summary");
            for (Summary.Value v : ev.getSummary().getValueList()) {
                noUnknownFields(v, "Summary.Value");
                String tag = v.getTag();
                Float simple = v.getValueCase() == Summary.Value.ValueCase.SIMPLE_VALUE ? v.getSimpleValue() : null;
                String plugin = null;
                Long dtype = null;
                String text = null;
                if (v.hasMetadata()) {
                    plugin = v.getMetadata().getPluginData().getPluginName();
                }
                if (v.getValueCase() == Summary.Value.ValueCase.TENSOR) {
                    TensorProto tensor = v.getTensor();
                    noUnknownFields(tensor, "TensorProto");
                    dtype = (long) tensor.getDtypeValue();
                    assertTrue(tensor.hasTensorShape() && tensor.getTensorShape().getDimCount() == 0, "rank-0 shape");
                    assertEquals(1, tensor.getStringValCount(), "one string_val");
                    text = tensor.getStringVal(0).toStringUtf8();
                }
                out.add(new Decoded(wall, step, null, tag, simple, plugin, dtype, text));
            }
        }
        return out;
    }

    public static Path onlyEventFile(Path dir) throws IOException {
        try (Stream<Path> s = Files.list(dir)) {
            List<Path> files = s.toList();
            assertEquals(1, files.size(), files.toString());
            return files.get(0);
        }
    }

    // ---- tests ---------------------------------------------------------------------------------

    @Test
    void crc32cKnownVector() {
        byte[] b = "123456789".getBytes(StandardCharsets.US_ASCII);
        assertEquals(0xE3069283, crc32c(b, 0, b.length));
        java.util.zip.CRC32C jdk = new java.util.zip.CRC32C();
        jdk.update(b);
        assertEquals(0xE3069283L, jdk.getValue());
        assertEquals(mask(0xE3069283), TensorBoardWriter.maskedCrc32c(b, 0, b.length));
    }

    @Test
    void scalarsReadBackWithTagStepAndValue() throws IOException {
        double before = System.currentTimeMillis() / 1000.0 - 1;
        Path logDir = dir.resolve("logs/run1");
        List<Object[]> written = new ArrayList<>();
        try (TensorBoardWriter w = new TensorBoardWriter(logDir)) {
            for (long step = 0; step <= 300; step += 10) {
                double loss = 3.0 * Math.exp(-step / 100.0) + 0.1;
                w.scalar("train/loss", step, loss);
                w.scalar("train/learning_rate", step, 2e-5 * step / 300.0);
                written.add(new Object[] {"train/loss", step, loss});
                written.add(new Object[] {"train/learning_rate", step, 2e-5 * step / 300.0});
                if (step % 100 == 0) {
                    w.scalar("eval/loss", step, loss + 0.2);
                    written.add(new Object[] {"eval/loss", step, loss + 0.2});
                }
            }
            w.scalar("train/loss", 1L << 40, -1.5); // large step: multi-byte varint
            written.add(new Object[] {"train/loss", 1L << 40, -1.5});
        }
        double after = System.currentTimeMillis() / 1000.0 + 1;

        Path file = onlyEventFile(logDir);
        String name = file.getFileName().toString();
        assertTrue(name.matches("events\\.out\\.tfevents\\.\\d{10}\\.[A-Za-z0-9._-]+"), name);

        List<Decoded> events = decode(file);
        assertEquals("brain.Event:2", events.get(0).fileVersion());
        List<Decoded> scalars = events.subList(1, events.size());
        assertEquals(written.size(), scalars.size());
        for (int i = 0; i < written.size(); i++) {
            Decoded d = scalars.get(i);
            assertEquals(written.get(i)[0], d.tag());
            assertEquals((long) written.get(i)[1], d.step());
            assertEquals((float) (double) written.get(i)[2], d.simpleValue());
            assertTrue(d.wallTime() >= before && d.wallTime() <= after, "wall_time in seconds: " + d.wallTime());
        }
    }

    @Test
    void visibleBeforeClose() throws IOException {
        TensorBoardWriter w = new TensorBoardWriter(dir);
        try {
            w.scalar("train/loss", 5, 1.25);
            List<Decoded> ev = decode(w.file());
            assertEquals(2, ev.size(), "each record reaches the file as it is written");
            assertEquals(1.25f, ev.get(1).simpleValue());
        } finally {
            w.close();
        }
        w.close(); // idempotent
        assertThrows(IllegalStateException.class, () -> w.scalar("train/loss", 6, 1.0));
    }

    @Test
    void textForTheTextPlugin() throws IOException {
        String md = "```yaml\nmodel: runs/tiny-llama\nlearning_rate: 2.0e-5  # ünïcödé\n```";
        try (TensorBoardWriter w = new TensorBoardWriter(dir)) {
            w.text("config", 0, md);
        }
        List<Decoded> ev = decode(onlyEventFile(dir));
        assertEquals(2, ev.size());
        Decoded t = ev.get(1);
        assertEquals("config", t.tag());
        assertEquals("text", t.pluginName());
        assertEquals(7L, t.dtype(), "DT_STRING");
        assertEquals(DataType.DT_STRING_VALUE, t.dtype().intValue(), "DT_STRING as types.proto numbers it");
        assertEquals(md, t.text());
        assertEquals(0, t.step());
        // what TensorBoard's text plugin reads: data_class tensor, plugin "text" (read with the generated classes)
        Summary.Value v = Event.parseFrom(records(Files.readAllBytes(onlyEventFile(dir))).get(1)).getSummary().getValue(0);
        assertEquals(DataClass.DATA_CLASS_TENSOR, v.getMetadata().getDataClass());
        assertEquals(DataType.DT_STRING, v.getTensor().getDtype());
    }

    @Test
    void corruptedByteIsDetected() throws IOException {
        try (TensorBoardWriter w = new TensorBoardWriter(dir)) {
            w.scalar("train/loss", 1, 2.0);
            w.scalar("train/loss", 2, 1.5);
        }
        byte[] good = Files.readAllBytes(onlyEventFile(dir));
        assertEquals(3, records(good).size());
        int firstLen = (int) le(good, 0, 8);
        int secondStart = 12 + firstLen + 4;
        int[] positions = {3, 10, 12 + firstLen / 2, 12 + firstLen + 1, secondStart + 14, good.length - 1};
        for (int p : positions) {
            byte[] bad = good.clone();
            bad[p] ^= 0x10;
            assertThrows(IllegalStateException.class, () -> records(bad), "flipped byte at " + p);
        }
    }

    @Test
    void twoWritersInOneSecondGetTwoFiles() throws IOException {
        try (TensorBoardWriter a = new TensorBoardWriter(dir); TensorBoardWriter b = new TensorBoardWriter(dir)) {
            assertNotEquals(a.file(), b.file());
            a.scalar("x", 1, 1);
            b.scalar("x", 1, 2);
            assertTrue(a.file().getFileName().toString().contains("tfevents"));
            assertTrue(b.file().getFileName().toString().contains("tfevents"));
        }
    }

    /** Linux's /dev/full fails every write with ENOSPC, as a full disk does: a user error naming the file. */
    @Test
    void aFullDiskIsAUserErrorNamingTheFile() throws IOException {
        Path full = Path.of("/dev/full");
        assumeTrue(Files.isWritable(full), "needs Linux's /dev/full");
        Path file = dir.resolve("events.out.tfevents.0.test");
        OutputStream os = Files.newOutputStream(full);
        UserError e = assertThrows(UserError.class, () -> new TensorBoardWriter(file, os));
        assertEquals(file + ": cannot write the TensorBoard event file: No space left on device", e.getMessage());
    }

    /** training.logging_dir where no directory can be made (under a regular file; tests may run as root). */
    @Test
    void anUnusableLogDirIsAUserErrorNamingIt() throws IOException {
        Path aFile = Files.writeString(dir.resolve("a-file"), "x");
        Path logDir = aFile.resolve("logs");
        UserError e = assertThrows(UserError.class, () -> new TensorBoardWriter(logDir));
        assertTrue(e.getMessage().startsWith(logDir + ": cannot create the TensorBoard log directory (training.logging_dir): "),
                e.getMessage());
    }

    @Test
    void protoEncodingMatchesHandComputedBytes() {
        // Summary.Value { tag: "a", simple_value: 1.0f } = 0a 01 61 15 00 00 80 3f
        TensorBoardWriter.Proto v = new TensorBoardWriter.Proto();
        v.string(1, "a");
        v.fixed32(2, Float.floatToRawIntBits(1.0f));
        assertArrayEquals(new byte[] {0x0a, 0x01, 0x61, 0x15, 0x00, 0x00, (byte) 0x80, 0x3f}, v.toByteArray());
        // step 300 = 0x10 0xac 0x02; step -1 = ten bytes
        TensorBoardWriter.Proto s = new TensorBoardWriter.Proto();
        s.varint(2, 300);
        assertArrayEquals(new byte[] {0x10, (byte) 0xac, 0x02}, s.toByteArray());
        TensorBoardWriter.Proto neg = new TensorBoardWriter.Proto();
        neg.varint(2, -1);
        assertEquals(11, neg.toByteArray().length);
    }
}
