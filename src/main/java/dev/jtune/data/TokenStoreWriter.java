package dev.jtune.data;

import java.io.BufferedInputStream;
import java.io.BufferedOutputStream;
import java.io.Closeable;
import java.io.DataInputStream;
import java.io.EOFException;
import java.io.IOException;
import java.io.InputStream;
import java.io.OutputStream;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Arrays;

/**
 * Writes a {@link TokenStore} as examples are prepared, appending each one's tokens to the files as it comes, so
 * preparation holds no example after writing it. What stays in memory is per example a length and a count of
 * trained tokens (8 bytes) for the summary; answer prompts go to a side file and {@link #finish} keeps those of
 * the held-out examples.
 */
final class TokenStoreWriter implements Closeable {
    private final Path dir;
    private final OutputStream tokens, offsets, promptsAll;
    private final ByteBuffer buf = ByteBuffer.allocate(1 << 16).order(ByteOrder.LITTLE_ENDIAN);
    private long tokenCount;
    private int count;
    private int[] lengths = new int[1024], targets = new int[1024];

    TokenStoreWriter(Path dir) throws IOException {
        this.dir = dir;
        Files.createDirectories(dir);
        tokens = new BufferedOutputStream(Files.newOutputStream(dir.resolve("tokens.bin")), 1 << 20);
        offsets = new BufferedOutputStream(Files.newOutputStream(dir.resolve("examples.bin")), 1 << 16);
        promptsAll = new BufferedOutputStream(Files.newOutputStream(dir.resolve("prompts.all")), 1 << 16);
        writeLong(offsets, 0);
    }

    /** Appends an example; returns its index. */
    int add(Example e) throws IOException {
        int len = e.length();
        int trained = 0;
        for (int t = 0; t < len; t++) {
            int raw = e.stored(t);
            if (t > 0 && (raw & TokenStore.TRAINED) != 0) trained++;
            if (buf.remaining() < 4) flush(tokens);
            buf.putInt(raw);
        }
        flush(tokens);
        tokenCount += len;
        writeLong(offsets, tokenCount);
        if (count == lengths.length) {
            lengths = Arrays.copyOf(lengths, count * 2);
            targets = Arrays.copyOf(targets, count * 2);
        }
        lengths[count] = len;
        targets[count] = trained;
        return count++;
    }

    int examples() {
        return count;
    }

    long tokens() {
        return tokenCount;
    }

    int length(int example) {
        return lengths[example];
    }

    /** Positions t >= 1 trained on (see {@link Example#targetTokens()}). */
    int targets(int example) {
        return targets[example];
    }

    /** Keeps the answer prompt of {@code example} (one of its first tokens) until {@link #finish} picks the held-out ones. */
    void addPrompt(int example, AnswerPrompt a) throws IOException {
        byte[] q = a.question().getBytes(StandardCharsets.UTF_8), r = a.reference().getBytes(StandardCharsets.UTF_8);
        buf.putInt(example).putInt(a.promptIds().length).putInt(q.length).putInt(r.length);
        flush(promptsAll);
        promptsAll.write(q);
        promptsAll.write(r);
    }

    private void flush(OutputStream out) throws IOException {
        out.write(buf.array(), 0, buf.position());
        buf.clear();
    }

    private void writeLong(OutputStream out, long v) throws IOException {
        buf.putLong(v);
        flush(out);
    }

    /**
     * Writes the splits (example indices; train is the mixture's draw) and the validation and test answer prompts
     * (those of the examples in {@code validation} and {@code test}, in their order, which is the examples' order),
     * and closes the files.
     */
    void finish(int[] train, int[] validation, int[] test) throws IOException {
        close();
        byte[] heldOut = new byte[count];   // 1 validation, 2 test
        for (int i : validation) heldOut[i] = 1;
        for (int i : test) heldOut[i] = 2;
        long[][] promptAt = {new long[16], new long[16]};
        int[] promptCount = new int[2];
        Path all = dir.resolve("prompts.all");
        try (InputStream in = new BufferedInputStream(Files.newInputStream(all), 1 << 16);
             DataInputStream data = new DataInputStream(in);
             OutputStream kept = new BufferedOutputStream(Files.newOutputStream(dir.resolve("prompts.bin")), 1 << 16)) {
            byte[] header = new byte[16];
            long written = 0;
            while (true) {
                try {
                    data.readFully(header);
                } catch (EOFException end) {
                    break;
                }
                ByteBuffer h = ByteBuffer.wrap(header).order(ByteOrder.LITTLE_ENDIAN);
                int example = h.getInt(0);
                int textBytes = h.getInt(8) + h.getInt(12);
                int part = heldOut[example] - 1;
                if (part < 0) {
                    data.skipNBytes(textBytes);
                    continue;
                }
                if (promptCount[part] == promptAt[part].length) promptAt[part] = Arrays.copyOf(promptAt[part], promptCount[part] * 2);
                promptAt[part][promptCount[part]++] = written;
                kept.write(header);
                kept.write(data.readNBytes(textBytes));
                written += 16 + textBytes;
            }
        }
        Files.delete(all);
        try (OutputStream out = new BufferedOutputStream(Files.newOutputStream(dir.resolve("splits.bin")), 1 << 16)) {
            buf.putInt(TokenStore.MAGIC).putInt(DataCache.FORMAT);
            long at = 8;
            for (int[] split : new int[][] {train, validation, test}) {
                buf.putInt(split.length);
                flush(out);
                for (int i : split) {
                    if (buf.remaining() < 4) flush(out);
                    buf.putInt(i);
                }
                flush(out);
                at += 4 + 4L * split.length;
            }
            for (int p = 0; p < 2; p++) {
                buf.putInt(promptCount[p]);
                at += 4;
                while (at % 8 != 0) {
                    buf.put((byte) 0);
                    at++;
                }
                flush(out);
                for (int k = 0; k < promptCount[p]; k++) {
                    if (buf.remaining() < 8) flush(out);
                    buf.putLong(promptAt[p][k]);
                }
                flush(out);
                at += 8L * promptCount[p];
            }
        }
    }

    @Override
    public void close() throws IOException {
        try (tokens; offsets; promptsAll) {
            // closes all three, the first failure thrown
        }
    }
}
