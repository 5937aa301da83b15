package dev.jtune.data;

import dev.jtune.util.Labels;
import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNotEquals;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.jtune.util.Tensors;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.Random;
import java.util.concurrent.atomic.AtomicInteger;
import org.bytedeco.javacpp.PointerScope;
import org.bytedeco.pytorch.Device;
import org.junit.jupiter.api.Test;

class BatcherTest {
    static final long PAD = 0;

    /** Example i has length 3 + (i * 7) % 11, ids 1000*i + t, and the loss on its second half. */
    static List<Example> examples(int n) {
        List<Example> out = new ArrayList<>();
        for (int i = 0; i < n; i++) {
            int len = 3 + (i * 7) % 11;
            long[] ids = new long[len];
            long[] labels = new long[len];
            for (int t = 0; t < len; t++) {
                ids[t] = 1000L * (i + 1) + t;
                labels[t] = t >= len / 2 ? ids[t] : Labels.IGNORE_INDEX;
            }
            out.add(new Example(ids, labels));
        }
        return out;
    }

    static List<Batch> all(java.util.Iterator<Batch> it) {
        List<Batch> out = new ArrayList<>();
        it.forEachRemaining(out::add);
        return out;
    }

    @Test
    void orderIsASeededPermutationPerEpoch() {
        Batcher a = new Batcher(examples(50), 4, true, 11, false, 32, PAD);
        Batcher b = new Batcher(examples(50), 4, true, 11, false, 32, PAD);
        assertEquals(a.order(0), b.order(0));
        assertNotEquals(a.order(0), a.order(1));
        assertNotEquals(a.order(0), new Batcher(examples(50), 4, true, 12, false, 32, PAD).order(0));
        List<Integer> sorted = new ArrayList<>(a.order(3));
        sorted.sort(null);
        assertEquals(java.util.stream.IntStream.range(0, 50).boxed().toList(), sorted);
        assertEquals(java.util.stream.IntStream.range(0, 50).boxed().toList(),
                new Batcher(examples(50), 4, false, 11, false, 32, PAD).order(5));
    }

    @Test
    void batchesFollowTheOrderAndPadRight() {
        List<Example> ex = examples(10);
        Batcher b = new Batcher(ex, 4, true, 3, false, 32, PAD);
        assertEquals(3, b.batchesPerEpoch());
        List<Batch> batches = all(b.epoch(2, 0));
        assertEquals(3, batches.size());
        List<Integer> order = b.order(2);
        int k = 0;
        for (Batch batch : batches) {
            assertNull(batch.positionIds());
            assertNull(batch.segmentIds());
            int tokens = 0, targets = 0;
            for (int r = 0; r < batch.rows(); r++) {
                Example e = ex.get(order.get(k++));
                long[] row = batch.inputIds()[r];
                assertArrayEquals(e.inputIds(), Arrays.copyOf(row, e.length()));
                for (int t = e.length(); t < row.length; t++) {
                    assertEquals(PAD, row[t]);
                    assertEquals(Labels.IGNORE_INDEX, batch.labels()[r][t]);
                }
                tokens += e.length();
                targets += e.targetTokens();
            }
            assertEquals(tokens, batch.tokens());
            assertEquals(targets, batch.targetTokens());
        }
        assertEquals(10, k);
    }

    @Test
    void startBatchSkipsExactly() {
        Batcher b = new Batcher(examples(37), 3, true, 5, true, 24, PAD);
        List<Batch> full = all(b.epoch(1, 0));
        assertEquals(b.batchesInEpoch(1), full.size());
        for (int start : new int[] {1, 4, full.size() - 1, full.size()}) {
            List<Batch> tail = all(b.epoch(1, start));
            assertEquals(full.size() - start, tail.size());
            for (int i = 0; i < tail.size(); i++) {
                assertTrue(Arrays.deepEquals(full.get(start + i).inputIds(), tail.get(i).inputIds()));
                assertTrue(Arrays.deepEquals(full.get(start + i).labels(), tail.get(i).labels()));
            }
        }
        assertThrows(IllegalArgumentException.class, () -> b.epoch(1, full.size() + 1));
    }

    @Test
    void packingKeepsExamplesApart() {
        List<Example> ex = examples(40);
        int max = 24;
        Batcher b = new Batcher(ex, 2, true, 9, true, max, PAD);
        List<Integer> order = b.order(0);
        int k = 0;
        int rowsSeen = 0;
        for (Batch batch : all(b.epoch(0, 0))) {
            int targets = 0;
            for (int r = 0; r < batch.rows(); r++) {
                rowsSeen++;
                int[] seg = batch.segmentIds()[r];
                long[] pos = batch.positionIds()[r];
                int p = 0;
                int s = 0;
                while (p < seg.length && seg[p] != 0) {
                    Example e = ex.get(order.get(k++)); // consecutive examples of the epoch's order
                    s++;
                    for (int t = 0; t < e.length(); t++) {
                        assertEquals(s, seg[p + t]);
                        assertEquals(t, pos[p + t]);
                        assertEquals(e.inputIds()[t], batch.inputIds()[r][p + t]);
                        long want = t == 0 ? Labels.IGNORE_INDEX : e.labels()[t];
                        assertEquals(want, batch.labels()[r][p + t]);
                        if (t > 0 && want != Labels.IGNORE_INDEX) targets++;
                    }
                    p += e.length();
                }
                assertTrue(p <= max);
                for (int t = p; t < seg.length; t++) {
                    assertEquals(0, seg[t]);
                    assertEquals(PAD, batch.inputIds()[r][t]);
                    assertEquals(Labels.IGNORE_INDEX, batch.labels()[r][t]);
                }
                // greedy: the next example would not have fitted
                if (k < ex.size() && r + 1 < batch.rows()) {
                    assertTrue(p + ex.get(order.get(k)).length() > max);
                }
            }
            assertEquals(targets, batch.targetTokens());
        }
        assertEquals(ex.size(), k);
        assertTrue(rowsSeen < ex.size());
    }

    /** The mask is block-diagonal and causal, so no query ever sees another example: logits cannot depend on it. */
    @Test
    void packedMaskIsBlockDiagonalAndCausal() {
        Batcher b = new Batcher(examples(12), 3, true, 1, true, 30, PAD);
        Batch batch = b.epoch(0, 0).next();
        try (PointerScope scope = new PointerScope()) {
            TensorBatch tb = batch.toTensors(new Device("cpu"));
            int B = batch.rows(), T = batch.length();
            assertArrayEquals(new long[] {B, 1, T, T}, Tensors.shape(tb.attentionMask()));
            assertArrayEquals(new long[] {B, T}, Tensors.shape(tb.positionIds()));
            long[] mask = Tensors.toLongs(tb.attentionMask());
            for (int r = 0; r < B; r++) {
                int[] seg = batch.segmentIds()[r];
                for (int q = 0; q < T; q++) {
                    boolean any = false;
                    for (int k = 0; k < T; k++) {
                        boolean allowed = mask[(r * T + q) * T + k] != 0;
                        assertEquals(k <= q && seg[k] == seg[q], allowed, "row " + r + " q " + q + " k " + k);
                        any |= allowed;
                    }
                    assertTrue(any); // no fully masked row (softmax would give NaN)
                }
            }
            assertArrayEquals(Arrays.stream(batch.inputIds()).flatMapToLong(Arrays::stream).toArray(),
                    Tensors.toLongs(tb.inputIds()));
            assertArrayEquals(Arrays.stream(batch.labels()).flatMapToLong(Arrays::stream).toArray(),
                    Tensors.toLongs(tb.labels()));
        }
        Batch plain = new Batcher(examples(4), 4, false, 1, false, 30, PAD).epoch(0, 0).next();
        try (PointerScope scope = new PointerScope()) {
            TensorBatch tb = plain.toTensors(new Device("cpu"));
            assertNull(tb.attentionMask());
            assertNull(tb.positionIds());
        }
    }

    @Test
    void producerExceptionReachesTheConsumerAndTheThreadEnds() throws Exception {
        Batcher b = new Batcher(examples(20), 2, true, 1, false, 32, PAD);
        AtomicInteger built = new AtomicInteger();
        Batcher.BatchIterator it = b.epoch(0, 0, batch -> {
            if (built.incrementAndGet() == 3) throw new IllegalStateException("boom at batch 3");
            return batch;
        });
        it.next();
        it.next();
        IllegalStateException e = assertThrows(IllegalStateException.class, it::next);
        assertEquals("boom at batch 3", e.getMessage());
        assertFalse(it.hasNext());
        assertTrue(it.awaitStopped(5000));
        assertEquals(3, built.get());
    }

    @Test
    void closingAnAbandonedIteratorStopsTheThread() throws Exception {
        Batcher b = new Batcher(examples(200), 1, true, 1, false, 32, PAD);
        AtomicInteger built = new AtomicInteger();
        Batcher.BatchIterator it = b.epoch(0, 0, batch -> {
            built.incrementAndGet();
            return batch;
        });
        it.next();
        Thread.sleep(200);
        assertTrue(built.get() <= 2 + Batcher.PREFETCH, "prefetch is bounded, built " + built.get());
        it.close();
        assertTrue(it.awaitStopped(5000));
        assertFalse(it.hasNext());
        assertTrue(built.get() < 200);
    }

    @Test
    void rejectsExamplesLongerThanTheRow() {
        assertThrows(IllegalArgumentException.class, () -> new Batcher(examples(20), 2, true, 1, true, 8, PAD));
    }

    @Test
    void randomisedPackingNeverLosesOrDuplicatesTokens() {
        Random rnd = new Random(4);
        for (int trial = 0; trial < 20; trial++) {
            List<Example> ex = examples(1 + rnd.nextInt(60));
            Batcher b = new Batcher(ex, 1 + rnd.nextInt(5), true, trial, true, 13 + rnd.nextInt(30), PAD);
            long total = ex.stream().mapToLong(Example::length).sum();
            for (int epoch = 0; epoch < 2; epoch++) {
                long seen = all(b.epoch(epoch, 0)).stream().mapToLong(Batch::tokens).sum();
                assertEquals(total, seen);
            }
        }
    }
}
