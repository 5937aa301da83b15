package dev.jtune.data;

/**
 * The distinct rows of a file by their 128-bit hashes, each numbered in order of first appearance: how
 * duplicates are found and identical rows kept in one split without holding a copy of any row. An open-addressing
 * table of primitive arrays, about 40 bytes per distinct row (5M rows: 200 MB), never boxed.
 */
final class RowHashes {
    private long[] hi = new long[1 << 10], lo = new long[1 << 10];
    private int[] id = new int[1 << 10];   // number + 1; 0 = empty slot
    private int size;

    /** The number of {@code (hi, lo)}, or -1 when it has not been seen. */
    int find(long hi, long lo) {
        int mask = id.length - 1;
        for (int s = slot(hi, lo, mask); ; s = (s + 1) & mask) {
            if (id[s] == 0) return -1;
            if (this.hi[s] == hi && this.lo[s] == lo) return id[s] - 1;
        }
    }

    /** Adds an unseen hash; returns its number (the count of distinct hashes before it). */
    int add(long hi, long lo) {
        if ((size + 1) * 10L > id.length * 7L) grow();
        int mask = id.length - 1;
        int s = slot(hi, lo, mask);
        while (id[s] != 0) s = (s + 1) & mask;
        this.hi[s] = hi;
        this.lo[s] = lo;
        id[s] = ++size;
        return size - 1;
    }

    int size() {
        return size;
    }

    private static int slot(long hi, long lo, int mask) {
        long h = hi ^ (lo * 0x9E3779B97F4A7C15L);
        return (int) (h ^ (h >>> 32)) & mask;
    }

    private void grow() {
        long[] oh = hi, ol = lo;
        int[] oi = id;
        int cap = oi.length * 2;
        hi = new long[cap];
        lo = new long[cap];
        id = new int[cap];
        int mask = cap - 1;
        for (int k = 0; k < oi.length; k++) {
            if (oi[k] == 0) continue;
            int s = slot(oh[k], ol[k], mask);
            while (id[s] != 0) s = (s + 1) & mask;
            hi[s] = oh[k];
            lo[s] = ol[k];
            id[s] = oi[k];
        }
    }
}
