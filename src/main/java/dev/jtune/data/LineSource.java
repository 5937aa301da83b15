package dev.jtune.data;

import dev.jtune.data.RowReader.Line;

import java.io.IOException;
import java.io.InputStream;
import java.io.UncheckedIOException;
import java.nio.ByteBuffer;
import java.nio.CharBuffer;
import java.nio.charset.CharacterCodingException;
import java.nio.charset.CharsetDecoder;
import java.nio.charset.CodingErrorAction;
import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.Arrays;

/**
 * The physical lines of a text file, read as they are needed rather than all at once, so a reader's memory is
 * its current record, not the file. Lines are addressed by their 0-based index; {@link #dropBefore} forgets
 * those a reader is done with (a CSV record spanning lines, or one whose quoting error makes reading resume on its
 * second line, needs a few lines of look-back). Each line is decoded strictly as UTF-8 ({@link Line#utf8Error()}
 * says where it is not). Lines end at \n (a \r before it is dropped); with {@code loneCrEndsLine} (CSV) a \r not
 * followed by \n ends one too, as in Python's csv module, pandas and Jackson's CsvParser.
 */
final class LineSource {
    private final InputStream in;
    private final boolean loneCrEndsLine;
    private final byte[] buf = new byte[1 << 16];
    private int pos, end;
    private boolean eof, started;
    private byte[] line = new byte[256];
    private int number = 1;
    private final CharsetDecoder strict = StandardCharsets.UTF_8.newDecoder()
            .onMalformedInput(CodingErrorAction.REPORT).onUnmappableCharacter(CodingErrorAction.REPORT);
    private final ArrayList<Line> window = new ArrayList<>();
    private int base;   // index of window.get(0)

    LineSource(InputStream in, boolean loneCrEndsLine) {
        this.in = in;
        this.loneCrEndsLine = loneCrEndsLine;
    }

    /** Whether line {@code i} exists (reads up to it). */
    boolean has(int i) {
        while (i - base >= window.size()) {
            Line l = readLine();
            if (l == null) return false;
            window.add(l);
        }
        return true;
    }

    Line get(int i) {
        if (i < base || !has(i)) throw new IndexOutOfBoundsException("line index " + i);
        return window.get(i - base);
    }

    /** Forgets the lines before index {@code i}. */
    void dropBefore(int i) {
        int k = Math.min(i - base, window.size());
        if (k <= 0) return;
        if (k == window.size()) window.clear();
        else window.subList(0, k).clear();
        base += k;
    }

    private int read() {
        if (pos == end) {
            if (eof) return -1;
            try {
                end = in.read(buf, 0, buf.length);
            } catch (IOException e) {
                throw new UncheckedIOException(e);
            }
            pos = 0;
            if (end <= 0) {
                end = 0;
                eof = true;
                return -1;
            }
        }
        return buf[pos++] & 0xff;
    }

    private int peek() {
        int b = read();
        if (b >= 0) pos--;
        return b;
    }

    private Line readLine() {
        if (!started) {
            started = true;
            // a UTF-8 byte order mark is not part of the first line
            if (peek() == 0xEF) {
                int n = 0;
                while (n < 3 && peek() == new int[] {0xEF, 0xBB, 0xBF}[n]) {
                    read();
                    n++;
                }
                if (n > 0 && n < 3) {   // not a whole mark: those bytes belong to the line
                    System.arraycopy(new byte[] {(byte) 0xEF, (byte) 0xBB}, 0, line, 0, n);
                    return finish(n, readRest(n));
                }
            }
        }
        if (peek() < 0) return null;
        return finish(0, readRest(0));
    }

    /** Reads bytes after the first {@code len} of {@link #line} up to the line end; returns the line's length. */
    private int readRest(int len) {
        while (true) {
            int b = read();
            if (b < 0 || b == '\n') break;
            if (b == '\r') {
                int next = peek();
                if (next == '\n') {
                    read();
                    break;
                }
                if (loneCrEndsLine) break;
            }
            if (len == line.length) line = Arrays.copyOf(line, len * 2);
            line[len++] = (byte) b;
        }
        return len;
    }

    private Line finish(int ignored, int len) {
        String text;
        String error = null;
        try {
            strict.reset();
            CharBuffer cb = strict.decode(ByteBuffer.wrap(line, 0, len));
            text = cb.toString();
        } catch (CharacterCodingException e) {
            text = new String(line, 0, len, StandardCharsets.UTF_8);   // replacement characters
            error = "invalid UTF-8 byte sequence at byte " + (firstInvalid(line, len) + 1) + " of the line";
        }
        if (line.length > 1 << 16 && len < 1 << 14) line = new byte[256];   // do not keep one huge line's buffer
        return new Line(number++, text, error);
    }

    private static int firstInvalid(byte[] b, int len) {
        CharsetDecoder d = StandardCharsets.UTF_8.newDecoder()
                .onMalformedInput(CodingErrorAction.REPORT).onUnmappableCharacter(CodingErrorAction.REPORT);
        ByteBuffer in = ByteBuffer.wrap(b, 0, len);
        CharBuffer out = CharBuffer.allocate(len + 1);
        d.decode(in, out, true);
        return in.position();
    }
}
