package dev.jtune.data;

import java.io.IOException;
import java.nio.ByteOrder;
import java.nio.MappedByteBuffer;
import java.nio.channels.FileChannel;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;

/**
 * A read-only, little-endian file mapped into memory in segments of {@code segmentBytes} (a power of two, a
 * multiple of 8), so files past Java's 2 GB limit of one {@link MappedByteBuffer} are read the same way. Values
 * are read at aligned byte offsets (ints at multiples of 4, longs of 8), so none straddles two segments. The pages
 * belong to the OS's page cache: reading a value touches its page, nothing is copied into the Java heap.
 */
final class MappedFile {
    /** One segment per GiB: a file under 1 GiB is one mapping. */
    static final long DEFAULT_SEGMENT_BYTES = 1L << 30;

    private final MappedByteBuffer[] segments;
    private final int shift;
    private final long mask;
    private final long size;

    MappedFile(Path file, long segmentBytes) throws IOException {
        if (Long.bitCount(segmentBytes) != 1 || segmentBytes < 8 || segmentBytes > 1L << 30) {
            throw new IllegalArgumentException("segment size " + segmentBytes + " is not a power of two in 8..2^30");
        }
        this.shift = Long.numberOfTrailingZeros(segmentBytes);
        this.mask = segmentBytes - 1;
        try (FileChannel ch = FileChannel.open(file, StandardOpenOption.READ)) {
            size = ch.size();
            int n = (int) ((size + segmentBytes - 1) / segmentBytes);
            segments = new MappedByteBuffer[n];
            for (int i = 0; i < n; i++) {
                long from = i * segmentBytes;
                segments[i] = ch.map(FileChannel.MapMode.READ_ONLY, from, Math.min(segmentBytes, size - from));
                segments[i].order(ByteOrder.LITTLE_ENDIAN);
            }
        }
    }

    long size() {
        return size;
    }

    int segments() {
        return segments.length;
    }

    int getInt(long at) {
        return segments[(int) (at >>> shift)].getInt((int) (at & mask));
    }

    long getLong(long at) {
        return segments[(int) (at >>> shift)].getLong((int) (at & mask));
    }

    byte get(long at) {
        return segments[(int) (at >>> shift)].get((int) (at & mask));
    }

    /** {@code length} bytes from {@code at} (they may cross segments). */
    byte[] bytes(long at, int length) {
        byte[] out = new byte[length];
        int done = 0;
        while (done < length) {
            long p = at + done;
            MappedByteBuffer seg = segments[(int) (p >>> shift)];
            int off = (int) (p & mask);
            int n = Math.min(length - done, seg.limit() - off);
            seg.get(off, out, done, n);
            done += n;
        }
        return out;
    }
}
