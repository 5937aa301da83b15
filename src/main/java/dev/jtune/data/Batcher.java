package dev.jtune.data;

import dev.jtune.util.Labels;

import java.lang.ref.Cleaner;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.Iterator;
import java.util.List;
import java.util.Map;
import java.util.NoSuchElementException;
import java.util.Random;
import java.util.concurrent.ArrayBlockingQueue;
import java.util.concurrent.BlockingQueue;
import java.util.concurrent.ConcurrentHashMap;
import java.util.function.UnaryOperator;

/**
 * Batches of one epoch in a deterministic order, built on a background thread.
 *
 * <p>Order: a permutation of the examples seeded by (seed, epoch), or file order without shuffling. Without packing
 * each row is one example, right-padded with {@code padId} (labels -100) to the longest row of its batch. With
 * packing, consecutive examples of that order are packed greedily into rows of at most {@code maxSeqLength} tokens;
 * position ids restart at 0 for each example, the segment ids give the block-diagonal causal mask, and the first
 * label of each example is -100 so that no example is trained to predict the next one's first token.
 *
 * <p>With packing the number of rows depends on the order, so {@link #batchesInEpoch(int)} may differ slightly
 * between epochs; {@link #batchesPerEpoch()} is epoch 0's count.
 *
 * <p>{@link #epoch} returns a {@link BatchIterator}: a daemon thread keeps up to {@value #PREFETCH} batches ready;
 * {@link BatchIterator#close()} (or the iterator becoming unreachable) stops it; an exception on that thread is
 * rethrown by the consumer's next {@code hasNext()/next()}.
 */
public final class Batcher {
    static final int PREFETCH = 3;
    private static final Cleaner CLEANER = Cleaner.create();

    private final List<Example> examples;
    private final int batchSize;
    private final boolean shuffle;
    private final long seed;
    private final boolean packing;
    private final int maxSeqLength;
    private final long padId;
    private final Map<Integer, Rows> rowsCache = new ConcurrentHashMap<>();
    private final int rank;
    private final int worldSize;
    private final int itemSize;

    public Batcher(List<Example> examples, int batchSize, boolean shuffle, long seed, boolean packing,
                   int maxSeqLength, long padId) {
        this(examples, batchSize, shuffle, seed, packing, maxSeqLength, padId, 0, 1);
    }

    /**
     * The batches of rank {@code rank} of {@code worldSize} in a data-parallel run, sharded as PyTorch's
     * DistributedSampler (drop_last=False) shards: every rank builds the same seeded order (and the same packed rows),
     * pads it by repeating its first rows until the count divides by the world size (as DistributedSampler, and
     * accelerate's even_batches, do), and takes every {@code worldSize}-th row from {@code rank} on. Then step k of every
     * rank together covers rows [k·G, (k+1)·G) of the order, G the global batch: the batches of one process with the
     * same global batch. Every rank gets the same number of batches, so no rank waits for a collective the others skip.
     */
    public Batcher(List<Example> examples, int batchSize, boolean shuffle, long seed, boolean packing,
                   int maxSeqLength, long padId, int rank, int worldSize) {
        this(examples, 1, batchSize, shuffle, seed, packing, maxSeqLength, padId, rank, worldSize);
    }

    /**
     * Batches of items of {@code itemSize} consecutive examples that stay together (preference pairs: chosen then
     * rejected): the order, the shards and {@code batchSize} count items, and a batch of n items has n·itemSize rows,
     * the items' first examples first, then their second ones ((B, T) rows [chosen_0..chosen_n-1, rejected_0..rejected_n-1],
     * TRL's concatenated layout). No packing.
     */
    public Batcher(List<Example> examples, int itemSize, int batchSize, boolean shuffle, long seed, boolean packing,
                   int maxSeqLength, long padId, int rank, int worldSize) {
        if (itemSize < 1 || examples.size() % itemSize != 0 || (itemSize > 1 && packing)) {
            throw new IllegalArgumentException(examples.size() + " examples in items of " + itemSize + (packing ? " with packing" : ""));
        }
        this.itemSize = itemSize;
        if (worldSize < 1 || rank < 0 || rank >= worldSize) {
            throw new IllegalArgumentException("rank " + rank + " of world size " + worldSize);
        }
        this.rank = rank;
        this.worldSize = worldSize;
        if (batchSize < 1) throw new IllegalArgumentException("batchSize must be at least 1, got " + batchSize);
        for (int i = 0; i < examples.size(); i++) {
            int len = examples.get(i).length();
            if (len == 0 || len > maxSeqLength) {
                throw new IllegalArgumentException("example " + i + " has " + len + " tokens; expected 1.." + maxSeqLength);
            }
        }
        // prepared examples are an immutable view of the mapped tokenized data: copying them would read them all
        this.examples = examples instanceof TokenStore.Examples ? examples : List.copyOf(examples);
        this.batchSize = batchSize;
        this.shuffle = shuffle;
        this.seed = seed;
        this.packing = packing;
        this.maxSeqLength = maxSeqLength;
        this.padId = padId;
    }

    /** Batches in epoch 0 (with packing, other epochs may have a few more or fewer; see {@link #batchesInEpoch}). */
    public int batchesPerEpoch() {
        return batchesInEpoch(0);
    }

    public int batchesInEpoch(int epoch) {
        int rows = rows(epoch).size();
        return (rows + batchSize - 1) / batchSize;
    }

    /** The example order of that epoch (of items, when they hold several examples). */
    public List<Integer> order(int epoch) {
        int[] order = orderOf(epoch);
        return new java.util.AbstractList<>() {
            @Override
            public Integer get(int i) {
                return order[i];
            }

            @Override
            public int size() {
                return order.length;
            }
        };
    }

    /** The order as primitive ints: a million examples cost 4 MB, not a million boxed Integers. */
    private int[] orderOf(int epoch) {
        int n = examples.size() / itemSize;
        int[] order = new int[n];
        for (int i = 0; i < n; i++) order[i] = i;
        if (shuffle) {   // Collections.shuffle's swaps with the same Random: the same order as before
            Random rnd = new Random(mix(seed, epoch));
            for (int i = n; i > 1; i--) {
                int j = rnd.nextInt(i), t = order[i - 1];
                order[i - 1] = order[j];
                order[j] = t;
            }
        }
        return order;
    }

    private static long mix(long seed, int epoch) {
        long z = seed + 0x9E3779B97F4A7C15L * (epoch + 1L);
        z = (z ^ (z >>> 30)) * 0xBF58476D1CE4E5B9L;
        z = (z ^ (z >>> 27)) * 0x94D049BB133111EBL;
        return z ^ (z >>> 31);
    }

    /**
     * The rows of one epoch as primitive arrays: row r holds the examples {@code items[from(r) .. to(r))};
     * without packing ({@code starts} null) each row is one example.
     */
    record Rows(int[] items, int[] starts) {
        int size() {
            return starts == null ? items.length : starts.length - 1;
        }

        int from(int r) {
            return starts == null ? r : starts[r];
        }

        int to(int r) {
            return starts == null ? r + 1 : starts[r + 1];
        }

        /** Row r's example indices. */
        int[] row(int r) {
            return java.util.Arrays.copyOfRange(items, from(r), to(r));
        }
    }

    /** The example indices of each row of that epoch (one per row without packing); this rank's rows when sharded. */
    Rows rows(int epoch) {
        return rowsCache.computeIfAbsent(epoch, e -> {
            int[] order = orderOf(e);
            if (!packing) return shard(new Rows(order, null));
            int[] starts = new int[order.length + 1];
            int rows = 0;
            int fill = 0;
            for (int k = 0; k < order.length; k++) {
                int len = examples.get(order[k]).length();
                if (fill + len > maxSeqLength && fill > 0) {
                    starts[++rows] = k;
                    fill = 0;
                }
                fill += len;
            }
            if (order.length > 0) starts[++rows] = order.length;
            return shard(new Rows(order, java.util.Arrays.copyOf(starts, rows + 1)));
        });
    }

    /** This rank's rows of the epoch's rows (all of them in a single process); see the sharding constructor. */
    private Rows shard(Rows rows) {
        if (worldSize == 1) return rows;
        int n = rows.size();
        int total = (n + worldSize - 1) / worldSize * worldSize;
        int mine = total / worldSize;
        int[] starts = new int[mine + 1];
        int items = 0;
        for (int k = 0, i = rank; i < total; i += worldSize, k++) {   // the tail wraps to the start
            items += rows.to(i % n) - rows.from(i % n);
            starts[k + 1] = items;
        }
        int[] out = new int[items];
        int p = 0;
        for (int i = rank; i < total; i += worldSize) {
            for (int j = rows.from(i % n); j < rows.to(i % n); j++) out[p++] = rows.items()[j];
        }
        return new Rows(out, starts);
    }

    /** Builds batch {@code index} of {@code epoch}. */
    Batch batch(int epoch, int index) {
        Rows epochRows = rows(epoch);
        int from = index * batchSize;
        int to = Math.min(epochRows.size(), from + batchSize);
        if (from < 0 || from >= epochRows.size()) {
            throw new IndexOutOfBoundsException("batch " + index + " of epoch " + epoch + " (it has "
                    + batchesInEpoch(epoch) + ")");
        }
        // this batch's rows as lists of example indices
        List<int[]> rows = new ArrayList<>((to - from) * itemSize);
        if (itemSize > 1) {   // the items' k-th examples, k = 0..itemSize-1: rows of examples from here on
            for (int k = 0; k < itemSize; k++) {
                for (int r = from; r < to; r++) rows.add(new int[] {epochRows.items()[epochRows.from(r)] * itemSize + k});
            }
        } else {
            for (int r = from; r < to; r++) rows.add(epochRows.row(r));
        }
        from = 0;
        to = rows.size();
        int n = to - from;
        int T = 0;
        for (int r = from; r < to; r++) {
            int fill = 0;
            for (int i : rows.get(r)) fill += examples.get(i).length();
            T = Math.max(T, fill);
        }
        long[][] ids = new long[n][T];
        long[][] labels = new long[n][T];
        long[][] pos = packing ? new long[n][T] : null;
        int[][] seg = packing ? new int[n][T] : null;
        int targets = 0;
        int tokens = 0;
        for (int r = 0; r < n; r++) {
            Arrays.fill(ids[r], padId);
            Arrays.fill(labels[r], Labels.IGNORE_INDEX);
            int p = 0;
            int s = 0;
            for (int i : rows.get(from + r)) {
                Example e = examples.get(i);
                int len = e.length();
                System.arraycopy(e.inputIds(), 0, ids[r], p, len);
                System.arraycopy(e.labels(), 0, labels[r], p, len);
                if (packing) {
                    labels[r][p] = Labels.IGNORE_INDEX; // never predict this example from the previous one
                    s++;
                    for (int t = 0; t < len; t++) {
                        pos[r][p + t] = t;
                        seg[r][p + t] = s;
                    }
                }
                p += len;
            }
            tokens += p;
            for (int t = 1; t < T; t++) {
                if (labels[r][t] != Labels.IGNORE_INDEX) targets++;
            }
        }
        return new Batch(ids, labels, pos, seg, targets, tokens);
    }

    /** Batches {@code startBatch..} of {@code epoch}, prefetched on a daemon thread. */
    public BatchIterator epoch(int epoch, int startBatch) {
        return epoch(epoch, startBatch, UnaryOperator.identity());
    }

    /** As {@link #epoch(int, int)}, with {@code hook} applied to each batch on the producer thread (tests). */
    BatchIterator epoch(int epoch, int startBatch, UnaryOperator<Batch> hook) {
        int count = batchesInEpoch(epoch);
        if (startBatch < 0 || startBatch > count) {
            throw new IllegalArgumentException("startBatch " + startBatch + " outside 0.." + count + " for epoch " + epoch);
        }
        return new BatchIterator(this, epoch, startBatch, count, hook);
    }

    /** Iterator over prefetched batches; close it when abandoning an epoch early. */
    public static final class BatchIterator implements Iterator<Batch>, AutoCloseable {
        private static final Object END = new Object();

        private record Failure(Throwable error) {}

        private final BlockingQueue<Object> queue = new ArrayBlockingQueue<>(PREFETCH);
        private final Thread producer;
        private final Cleaner.Cleanable cleanable;
        private Object next;
        private boolean done;

        private BatchIterator(Batcher b, int epoch, int start, int count, UnaryOperator<Batch> hook) {
            BlockingQueue<Object> q = queue;
            producer = new Thread(() -> {
                try {
                    for (int i = start; i < count; i++) {
                        if (Thread.currentThread().isInterrupted()) return;
                        q.put(hook.apply(b.batch(epoch, i)));
                    }
                    q.put(END);
                } catch (InterruptedException e) {
                    // closed by the consumer
                } catch (Throwable t) {
                    try {
                        q.put(new Failure(t));
                    } catch (InterruptedException ignored) {
                        // closed meanwhile
                    }
                }
            }, "jtune-batches-epoch-" + epoch);
            producer.setDaemon(true);
            producer.start();
            Thread t = producer;
            cleanable = CLEANER.register(this, t::interrupt);
        }

        @Override
        public boolean hasNext() {
            if (done) return false;
            if (next == null) {
                try {
                    next = queue.take();
                } catch (InterruptedException e) {
                    Thread.currentThread().interrupt();
                    close();
                    throw new IllegalStateException("interrupted while waiting for the next batch", e);
                }
            }
            if (next == END) {
                done = true;
                return false;
            }
            if (next instanceof Failure f) {
                done = true;
                close();
                Throwable t = f.error();
                if (t instanceof RuntimeException re) throw re;
                if (t instanceof Error err) throw err;
                throw new IllegalStateException("building a batch failed: " + t, t);
            }
            return true;
        }

        @Override
        public Batch next() {
            if (!hasNext()) throw new NoSuchElementException();
            Batch b = (Batch) next;
            next = null;
            return b;
        }

        /** Joins the producer for at most {@code millis} (tests). */
        boolean awaitStopped(long millis) throws InterruptedException {
            producer.join(millis);
            return !producer.isAlive();
        }

        @Override
        public void close() {
            done = true;
            cleanable.clean(); // interrupts the producer
        }
    }
}
