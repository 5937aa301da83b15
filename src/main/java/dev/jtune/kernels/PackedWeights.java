package dev.jtune.kernels;

import dev.jtune.util.AtenOps;
import org.bytedeco.pytorch.IValue;
import org.bytedeco.pytorch.IValueVector;
import org.bytedeco.pytorch.OperatorHandle;
import org.bytedeco.pytorch.Tensor;
import org.bytedeco.pytorch.global.torch;

import java.util.HashMap;
import java.util.Map;

/**
 * fp32 weights reordered once into oneDNN's blocked layout, chunk by chunk of rows, for {@link CpuLinear}'s products
 * of several rows (batched decoding, prompts) on the CPU.
 *
 * <p>Why (bench/RESULTS.md, issue 31, 2026-12-05 18:30): a (8, 896) × (896, 4864) product through {@code torch.mm}
 * goes to OpenBLAS's sgemm, which packs the 17 MB weight on every call (read, write, read again); it cost 3.2× a
 * one-row matrix-vector product of the same weight (thread CPU time, one thread), so batch 8 could give at most ~2.5×
 * the tokens/s of batch 1. oneDNN's inner product on a weight reordered once ({@code mkldnn::_reorder_linear_weight},
 * what PyTorch's inductor uses on the CPU) reads it once per call: the same product cost 1.0-1.1× the one-row one, and
 * a 16-row prompt 2.6× less than sgemm. The result is fp32 (oneDNN's fp32 kernels), equal to sgemm's to float
 * rounding.
 *
 * <p>The cost is memory: a reordered copy of every weight used with several rows, kept until the model closes
 * ({@link #forget}): +1.8 GB for the 448M model in fp32. {@code JTUNE_PACKED_WEIGHTS=0} turns it off (sgemm as
 * before). Only weights inside an open decoding session are reordered ({@link #open}, by {@code BatchGenerator}
 * around one batched generation; anything else takes sgemm): the copies are freed when the last session on them
 * closes, so a weight changed between generations (training, then answers scored, then training) is never served
 * from a stale copy, and the address a copy is keyed by cannot be reused by another tensor while a session holds the
 * weight. (Measured: keeping copies for a model's lifetime, checked by the tensors' version counter, served stale
 * weights to the trainer's evaluation: its in-place updates do not all move the counter.) Within a session a copy is
 * still remade if the version counter moves.
 */
final class PackedWeights {
    /**
     * Rows per reordered block: a multiple of 64. oneDNN's fp32 inner product in this LibTorch (2.10, the build's
     * oneDNN) gives wrong sums for some output widths that are not (measured: 48, 112, 176, 688, 1003 and 6288 rows
     * wrong, 16, 32, 64, 96, 128, 192, 320, 608, 640 and 6336 right), so only multiples of 64 are reordered, every block
     * is checked against sgemm once when it is made, and a last chunk's remaining rows go through sgemm.
     */
    static final long ROWS = 64;
    /**
     * The input rows oneDNN picks the blocked layout for. Fixed: a layout picked for a 128-row prompt made the 8-row
     * decode steps after it 3x slower than sgemm (measured, load 12-15); one picked for 8 rows served 1, 16 and 64
     * rows well (2.2-2.6x faster than sgemm for 16 and 64).
     */
    static final long ROWS_HINT = 8;
    private static final boolean ENABLED = !"0".equals(System.getenv("JTUNE_PACKED_WEIGHTS"));
    private static final Map<Key, Entry> CACHE = new HashMap<>();
    private static final Map<Long, Integer> SESSIONS = new HashMap<>();   // data address of a weight -> open sessions on it
    private static volatile Boolean available;

    private record Key(long address, long n, long d, long stride0, long stride1, long chunkRows) {}

    private record Entry(long version, Tensor[] chunks) {}

    private PackedWeights() {}

    /** True when the reordered path can run: enabled and the LibTorch build has oneDNN's linear ops. */
    static boolean available() {
        Boolean a = available;
        if (a == null) {
            boolean ok = false;
            if (ENABLED && torch.hasMKLDNN()) {
                try {
                    reorderOp();
                    ok = true;
                } catch (RuntimeException e) {   // a LibTorch without the mkldnn:: ops: sgemm
                }
            }
            available = a = ok;
        }
        return a;
    }

    private static OperatorHandle reorderOp() {
        return AtenOps.op("mkldnn::_reorder_linear_weight", "");
    }

    /** Opens a session on these weights (a model's parameters, alive while it is open): they may be reordered. */
    static synchronized void open(Iterable<Tensor> weights) {
        if (!ENABLED) return;
        for (long a : addresses(weights)) SESSIONS.merge(a, 1, Integer::sum);
    }

    /** Closes a session opened with the same weights; copies no session holds any more are freed. */
    static synchronized void close(Iterable<Tensor> weights) {
        if (!ENABLED) return;
        java.util.Set<Long> freed = new java.util.HashSet<>();
        for (long a : addresses(weights)) {
            Integer n = SESSIONS.get(a);
            if (n == null) continue;
            if (n <= 1) {
                SESSIONS.remove(a);
                freed.add(a);
            } else {
                SESSIONS.put(a, n - 1);
            }
        }
        drop(freed);
    }

    /** True when w is inside an open session: {@link #chunks} may reorder it. */
    static synchronized boolean registered(Tensor w) {
        return !SESSIONS.isEmpty() && SESSIONS.containsKey(w.data_ptr().address());
    }

    private static java.util.Set<Long> addresses(Iterable<Tensor> weights) {
        java.util.Set<Long> out = new java.util.HashSet<>();
        for (Tensor w : weights) if (w.is_cpu() && w.dim() == 2 && w.has_storage()) out.add(w.data_ptr().address());
        return out;
    }

    /**
     * Weight w (n, d), {@link #registered}, in chunks of {@code chunkRows} rows (a multiple of {@link #ROWS}), each
     * reordered for products with about {@code rows} input rows; the last chunk holds only its whole multiples of
     * {@link #ROWS} (null when it has none). Made on first use, remade when w was written since. Null when a block
     * fails its check against sgemm: the reordered path is then off for the process.
     */
    static synchronized Tensor[] chunks(Tensor w, long chunkRows, long rows) {
        Key key = new Key(w.data_ptr().address(), w.size(0), w.size(1), w.stride(0), w.stride(1), chunkRows);
        long version = w._version();
        Entry e = CACHE.get(key);
        if (e != null && e.version() == version) return e.chunks();
        if (e != null) release(e);
        long n = w.size(0);
        Tensor[] chunks = new Tensor[(int) ((n + chunkRows - 1) / chunkRows)];
        for (int c = 0; c < chunks.length; c++) {
            long start = c * chunkRows, len = Math.min(chunkRows, n - start) / ROWS * ROWS;
            if (len == 0) continue;
            // a fresh copy, not a view: the reorder reads a view's storage from its start, ignoring the offset (measured:
            // every chunk after the first came out as the first)
            Tensor rowsCopy = torch.empty(new long[] {len, w.size(1)}, dev.jtune.util.Tensors.options(torch.ScalarType.Float), new org.bytedeco.pytorch.MemoryFormatOptional())
                    .copy_(w.narrow(0, start, len));                             // (len, d)
            IValueVector stack = new IValueVector(new IValue(rowsCopy), new IValue(ROWS_HINT));
            reorderOp().callBoxed(stack);                                        // (len, d) in oneDNN's blocked layout
            chunks[c] = new Tensor(stack.get(0).toTensor());                     // a copy: toTensor() is a reference into the stack
            chunks[c].retainReference();
            if (!agreesWithSgemm(chunks[c], rowsCopy)) {
                for (Tensor t : chunks) if (t != null) t.releaseReference();
                available = false;
                System.err.println("jtune: oneDNN's reordered fp32 linear disagrees with sgemm on a " + len + " x " + w.size(1)
                        + " block; batched CPU products use sgemm from now on");
                return null;
            }
        }
        CACHE.put(key, new Entry(version, chunks));
        return chunks;
    }

    /** One product of a few random rows through the reordered block and through sgemm: equal to fp32 rounding. */
    private static boolean agreesWithSgemm(Tensor packedBlock, Tensor block) {
        Tensor x = torch.randn(3, block.size(1));                                  // (3, d)
        Tensor got = torch.mkldnn_linear(x.to_mkldnn(), packedBlock).to_dense();   // (3, len)
        Tensor want = torch.mm(x, block.t());
        double scale = Math.sqrt(block.size(1)) * Math.max(1e-30, block.abs().max().item_double());   // |sum| bound for unit-variance x
        return got.sub(want).abs().max().item_double() <= 1e-5 * scale;
    }

    /** Frees the reordered copies of these weights and ends every session on them (their model is closing). */
    static synchronized void forget(Iterable<Tensor> weights) {
        if (SESSIONS.isEmpty()) return;
        java.util.Set<Long> gone = addresses(weights);
        SESSIONS.keySet().removeAll(gone);
        drop(gone);
    }

    private static void drop(java.util.Set<Long> addresses) {
        if (addresses.isEmpty()) return;
        CACHE.entrySet().removeIf(e -> {
            if (!addresses.contains(e.getKey().address())) return false;
            release(e.getValue());
            return true;
        });
    }

    private static void release(Entry e) {
        for (Tensor t : e.chunks()) if (t != null) t.releaseReference();
    }
}
