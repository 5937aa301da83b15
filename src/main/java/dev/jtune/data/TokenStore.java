package dev.jtune.data;

import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.charset.StandardCharsets;
import java.nio.file.Path;
import java.util.AbstractList;
import java.util.List;
import java.util.RandomAccess;

/**
 * Prepared examples on disk, memory-mapped: what a training run, eval, lr-find and every sweep trial read
 * instead of Java arrays. Files of a directory written by {@link TokenStoreWriter} (all little-endian):
 * <ul>
 *   <li>{@code tokens.bin}: int per token, the token id with bit 31 set where it is trained on (its label is the
 *       id; elsewhere -100);</li>
 *   <li>{@code examples.bin}: long[count + 1], example i is tokens [offset[i], offset[i + 1]);</li>
 *   <li>{@code splits.bin}: magic, format, then for train, validation and test an int count and the examples'
 *       int indices (train is the mixture's draw, repeats included), then for the validation and test answer
 *       prompts an int count, padding to 8 bytes, and long offsets into {@code prompts.bin};</li>
 *   <li>{@code prompts.bin}: per held-out answer prompt, int example, int prompt tokens, int question bytes,
 *       int answer bytes, then the two UTF-8 texts.</li>
 * </ul>
 * Every file is mapped in segments ({@link MappedFile}), so caches past 2 GB read the same way.
 */
final class TokenStore {
    static final int TRAINED = 0x80000000;
    static final int MAGIC = 0x4a544443;   // "JTDC"

    private final MappedFile tokens, offsets, splits, prompts;
    private final long[] sectionAt = new long[5];   // byte offset of each section's first entry
    private final int[] sectionCount = new int[5];

    private TokenStore(Path dir, long segmentBytes, int format) throws IOException {
        tokens = new MappedFile(dir.resolve("tokens.bin"), segmentBytes);
        offsets = new MappedFile(dir.resolve("examples.bin"), segmentBytes);
        splits = new MappedFile(dir.resolve("splits.bin"), segmentBytes);
        prompts = new MappedFile(dir.resolve("prompts.bin"), segmentBytes);
        if (splits.size() < 8 || splits.getInt(0) != MAGIC || splits.getInt(4) != format) {
            throw new IOException(dir + ": not a tokenized-data store of format " + format);
        }
        long at = 8;
        for (int s = 0; s < 5; s++) {
            sectionCount[s] = splits.getInt(at);
            at += 4;
            if (s >= 3) at = (at + 7) & ~7L;
            sectionAt[s] = at;
            at += (long) sectionCount[s] * (s < 3 ? 4 : 8);
        }
        if (at != splits.size()) throw new IOException(dir + ": splits.bin has " + splits.size() + " bytes, expected " + at);
    }

    /** Maps the store in {@code dir}; an IOException when it is incomplete or of another format. */
    static TokenStore open(Path dir, int format) throws IOException {
        return open(dir, format, MappedFile.DEFAULT_SEGMENT_BYTES);
    }

    static TokenStore open(Path dir, int format, long segmentBytes) throws IOException {
        return new TokenStore(dir, segmentBytes, format);
    }

    int raw(long token) {
        return tokens.getInt(token * 4);
    }

    int count() {
        return (int) (offsets.size() / 8 - 1);
    }

    int tokenSegments() {
        return tokens.segments();
    }

    Example example(int i) {
        long from = offsets.getLong(8L * i);
        return new Example(this, from, (int) (offsets.getLong(8L * i + 8) - from));
    }

    int length(int i) {
        return (int) (offsets.getLong(8L * i + 8) - offsets.getLong(8L * i));
    }

    /** The train, validation or test examples ({@code split} 0, 1, 2), read on demand. */
    List<Example> split(int split) {
        return new Examples(split);
    }

    /** The validation or test answer prompts ({@code split} 1, 2). */
    List<AnswerPrompt> prompts(int split) {
        return new Prompts(split + 2);
    }

    /** The examples of one split: immutable, read from the mapping on demand. */
    final class Examples extends AbstractList<Example> implements RandomAccess {
        private final int section;

        Examples(int section) {
            this.section = section;
        }

        @Override
        public Example get(int i) {
            return example(splits.getInt(sectionAt[section] + 4L * checked(i, size())));
        }

        @Override
        public int size() {
            return sectionCount[section];
        }
    }

    private final class Prompts extends AbstractList<AnswerPrompt> implements RandomAccess {
        private final int section;

        Prompts(int section) {
            this.section = section;
        }

        @Override
        public AnswerPrompt get(int i) {
            long at = splits.getLong(sectionAt[section] + 8L * checked(i, size()));
            ByteBuffer h = ByteBuffer.wrap(prompts.bytes(at, 16)).order(ByteOrder.LITTLE_ENDIAN);
            int example = h.getInt(), promptLen = h.getInt(), q = h.getInt(), a = h.getInt();
            long[] ids = java.util.Arrays.copyOf(example(example).inputIds(), promptLen);
            return new AnswerPrompt(ids, new String(prompts.bytes(at + 16, q), StandardCharsets.UTF_8),
                    new String(prompts.bytes(at + 16 + q, a), StandardCharsets.UTF_8));
        }

        @Override
        public int size() {
            return sectionCount[section];
        }
    }

    private static int checked(int i, int size) {
        if (i < 0 || i >= size) throw new IndexOutOfBoundsException("index " + i + " of " + size);
        return i;
    }
}
