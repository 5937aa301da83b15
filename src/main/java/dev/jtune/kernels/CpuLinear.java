package dev.jtune.kernels;

import dev.jtune.util.Tensors;
import org.bytedeco.pytorch.GradMode;
import org.bytedeco.pytorch.MemoryFormatOptional;
import org.bytedeco.pytorch.Tensor;
import org.bytedeco.pytorch.global.torch;
import org.bytedeco.pytorch.global.torch.ScalarType;

/**
 * {@code x · Wᵀ + b} in fp32 on the CPU without autograd (decoding, evaluation), split by output features across
 * {@link SplitWorkers}: jtune's CPU kernels for up to 8 rows (one decoded token, or one of each of 8 sequences),
 * oneDNN or sgemm for more (a prompt).
 *
 * <p>Why (bench/RESULTS.md, "decode"): decoding is bound by reading the weights, and LibTorch reads them badly for
 * a few rows: {@code torch.linear} of one row goes to OpenBLAS's sgemm, which packs the whole weight before
 * multiplying; {@code torch.mv} (sgemv) streams it once but at ~0.75 of one core's read rate; several rows through
 * sgemm pack the weight again on every call. jtune's kernels (kernels/cpu/matvec.cpp, linear_rows.cpp, through
 * {@link CpuKernelNative}) read each weight row once for all rows at the core's read rate, called by address, so a
 * task makes no tensor views. OpenBLAS's own thread pool busy-waits and fights LibTorch's for the cores (jtune keeps
 * it at one thread, {@link dev.jtune.util.NativeRuntime}), so the split across cores is done here: the weight rows
 * are cut into chunks that the threads of {@link SplitWorkers} claim one by one, each writing its own slice of the
 * output, so the weights are read once per step, by all cores at once, and a thread that loses its core on a shared
 * box delays only its current chunk. More than 8 rows (a prompt) take sgemm on the same chunks. Without the kernel
 * library (a build without a C++ compiler, or {@code JTUNE_CPU_KERNELS=0}) one row takes sgemv on the same chunks, and
 * several rows take oneDNN on weights reordered once inside a decoding session ({@link #reorderedWeights},
 * {@link PackedWeights}), sgemm outside one.
 *
 * <p>The result equals {@code torch.linear} up to float rounding (the sums run in another order); the decode tests
 * compare it with the full forward.
 */
public final class CpuLinear {
    /** Below this many weight elements a split costs more in hand-offs than it saves. */
    static final long MIN_SPLIT_ELEMENTS = 1L << 16;
    /** Row blocks start at multiples of this (cache lines of the output, aligned weight rows). */
    private static final long ALIGN = 16;
    /**
     * Tasks per thread in one pass: a thread that loses its core leaves work for the others, but every task is a
     * native call (a few microseconds; at 4 per thread the one-row step cost ~10% more CPU time at load 15-20).
     */
    static final int TASKS_PER_THREAD = 2;
    /** Fewest weight bytes a task reads: below this the per-task dispatch (a few microseconds) is not worth it. */
    static final long MIN_CHUNK_BYTES = 256 * 1024;

    private CpuLinear() {}

    /**
     * True when {@link #apply} takes this product: fp32 CPU tensors, no gradient recorded, a 2-d weight, and no CPU
     * autocast (under autocast torch.linear runs in the autocast dtype; computing it in float32 here would change the
     * numbers, e.g. make activation checkpointing's no-grad pass differ from the plain step).
     */
    public static boolean applies(Tensor x, Tensor w) {
        return !GradMode.is_enabled()
                && !org.bytedeco.pytorch.global.torch.is_autocast_enabled(org.bytedeco.pytorch.global.torch.DeviceType.CPU)
                && w.dim() == 2 && x.dim() >= 1
                && x.is_cpu() && w.is_cpu()
                && x.scalar_type().intern() == ScalarType.Float && w.scalar_type().intern() == ScalarType.Float;
    }

    /** x (..., d), w (n, d) any strides, bias (n) or null: (..., n). Callers check {@link #applies} first. */
    public static Tensor apply(Tensor x, Tensor w, Tensor bias) {
        return applyAll(x, new Tensor[] {w}, new Tensor[] {bias})[0];
    }

    /**
     * Several products of the same input in one parallel pass: x (..., d) times each w[j] (n_j, d), plus bias[j]
     * (n_j) where not null, gives out[j] (..., n_j). One pass instead of one per weight: the threads are handed work
     * once, and a small weight (a 128-row k or v projection) no longer pays a hand-off of its own. q/k/v and gate/up
     * go through here in decoding. Up to 8 rows: jtune's kernels on row chunks of the weights. More: oneDNN on the
     * chunks reordered once ({@link PackedWeights}), or sgemm where that is off.
     */
    public static Tensor[] applyAll(Tensor x, Tensor[] w, Tensor[] bias) {
        long d = x.size(-1);
        long rows = d == 0 ? 0 : x.numel() / d;
        Tensor x2 = x.reshape(rows, d);                                           // (R, d)
        Tensor[] out = new Tensor[w.length];
        SplitWorkers pool = SplitWorkers.shared();
        // up to 8 rows (one token, or one of each of 8 sequences): jtune's kernels; more (a prompt): oneDNN or sgemm
        boolean kernel = rows >= 1 && rows <= CpuKernelNative.LINEAR_ROWS_MAX && CpuKernelLibrary.available() && rowMajor(w, bias);
        Tensor[][] packed = !kernel && rows > 1 && PackedWeights.available() && allRegistered(w) ? new Tensor[w.length][] : null;
        long[] chunk = new long[w.length];
        int tasks = 0;
        for (int j = 0; j < w.length; j++) {
            if (w[j].size(1) != d) throw new IllegalArgumentException("linear: x (..., " + d + ") against weight " + w[j].size(0) + "x" + w[j].size(1));
            out[j] = torch.empty(new long[] {rows, w[j].size(0)}, Tensors.options(ScalarType.Float), new MemoryFormatOptional());   // (R, n_j)
            chunk[j] = chunkRows(w[j].size(0), d, pool.parts());
            if (packed != null) chunk[j] = (chunk[j] + PackedWeights.ROWS - 1) / PackedWeights.ROWS * PackedWeights.ROWS;
            tasks += (int) ((w[j].size(0) + chunk[j] - 1) / chunk[j]);
        }
        if (packed != null) {
            for (int j = 0; j < w.length && packed != null; j++) {
                packed[j] = PackedWeights.chunks(w[j], chunk[j], rows);
                if (packed[j] == null) packed = null;                             // the reorder failed its check: sgemm
            }
        }
        // the tasks: chunk c of weight j, none spanning two weights
        int[] taskWeight = new int[tasks], taskChunk = new int[tasks];
        for (int j = 0, t = 0; j < w.length; j++) {
            for (int c = 0; c * chunk[j] < w[j].size(0); c++, t++) {
                taskWeight[t] = j;
                taskChunk[t] = c;
            }
        }
        if (kernel) {
            // kernels/cpu/{matvec,linear_rows}.cpp on raw addresses: no tensor views per task, the bias added in them
            Tensor xc = x2.contiguous();                                          // (R, d)
            long xa = xc.data_ptr().address();
            long[] wa = new long[w.length], ldw = new long[w.length], oa = new long[w.length], ba = new long[w.length], n = new long[w.length];
            for (int j = 0; j < w.length; j++) {
                wa[j] = w[j].data_ptr().address();
                ldw[j] = w[j].stride(0);
                oa[j] = out[j].data_ptr().address();
                ba[j] = bias[j] == null ? 0 : bias[j].data_ptr().address();
                n[j] = w[j].size(0);
            }
            pool.run(tasks, t -> {
                int j = taskWeight[t];
                long start = taskChunk[t] * chunk[j], len = Math.min(chunk[j], n[j] - start);
                long wj = wa[j] + 4 * start * ldw[j], bj = ba[j] == 0 ? 0 : ba[j] + 4 * start, oj = oa[j] + 4 * start;
                int st = rows == 1 ? CpuKernelNative.matvec(CpuKernelNative.ISA_BEST, wj, ldw[j], xa, bj, oj, len, d)
                        : CpuKernelNative.linearRows(CpuKernelNative.ISA_BEST, wj, ldw[j], xa, d, rows, bj, oj, n[j], len, d);
                if (st != CpuKernelNative.OK) throw new IllegalStateException("CPU linear kernel failed with status " + st);
            });
        } else if (rows == 1) {
            Tensor xv = x2.view(d);                                               // (d,)
            pool.run(tasks, t -> {
                int j = taskWeight[t];
                long start = taskChunk[t] * chunk[j], len = Math.min(chunk[j], w[j].size(0) - start);
                torch.mv_out(out[j].view(out[j].size(1)).narrow(0, start, len), w[j].narrow(0, start, len), xv);
            });
        } else if (packed != null) {
            Tensor[][] p = packed;
            Tensor xm = x2.contiguous().to_mkldnn();                              // (R, d), read by every task
            pool.run(tasks, t -> {
                int j = taskWeight[t], c = taskChunk[t];
                long start = c * chunk[j], len = Math.min(chunk[j], w[j].size(0) - start);
                long aligned = p[j][c] == null ? 0 : p[j][c].size(0);             // rows reordered; a last chunk's tail is not
                if (aligned > 0) out[j].narrow(1, start, aligned).copy_(torch.mkldnn_linear(xm, p[j][c]).to_dense());   // (R, aligned)
                if (aligned < len) torch.mm_out(out[j].narrow(1, start + aligned, len - aligned), x2, w[j].narrow(0, start + aligned, len - aligned).t());
            });
        } else if (rows > 1) {
            pool.run(tasks, t -> {
                int j = taskWeight[t];
                long start = taskChunk[t] * chunk[j], len = Math.min(chunk[j], w[j].size(0) - start);
                torch.mm_out(out[j].narrow(1, start, len), x2, w[j].narrow(0, start, len).t());   // (R, len): a column block, row stride n_j
            });
        }
        for (int j = 0; j < w.length; j++) {
            if (bias[j] != null && !kernel) out[j].add_(bias[j]);
            long[] outShape = x.sizes().vec().get();
            outShape[outShape.length - 1] = w[j].size(0);
            out[j] = out[j].view(outShape);
        }
        return out;
    }

    /** Weights with unit column stride (any row stride) and contiguous biases: what the CPU kernel reads by address. */
    private static boolean rowMajor(Tensor[] w, Tensor[] bias) {
        for (int j = 0; j < w.length; j++) {
            if (w[j].stride(1) != 1 || w[j].stride(0) < w[j].size(1)) return false;
            if (bias[j] != null && (bias[j].dim() != 1 || bias[j].size(0) != w[j].size(0) || !bias[j].is_contiguous() || bias[j].scalar_type().intern() != ScalarType.Float)) return false;
        }
        return true;
    }

    private static boolean allRegistered(Tensor[] w) {
        for (Tensor wj : w) if (!PackedWeights.registered(wj)) return false;
        return true;
    }

    /** A decoding session on a model's weights ({@link #reorderedWeights}); closing it frees the copies it allowed. */
    public interface Session extends AutoCloseable {
        @Override
        void close();
    }

    /**
     * Lets {@link #applyAll} reorder these weights once for products of several rows (oneDNN, {@link PackedWeights})
     * until the session closes: around one batched generation, whose steps reuse the copies. The caller keeps the
     * weights alive and unchanged while it is open. Where jtune's CPU kernels run, the session does nothing: the decode
     * steps (up to 8 rows) take the kernels on the weights as they are, and reordering every weight (seconds for the
     * 448M model, +1 copy of the weights) would only serve the prompt, which sgemm takes well enough (a JFR profile of
     * `jtune bench --generate --batch 1` spent two thirds of the main thread's samples in the reorder).
     */
    public static Session reorderedWeights(Iterable<Tensor> weights) {
        if (CpuKernelLibrary.available()) return () -> {};
        PackedWeights.open(weights);
        return () -> PackedWeights.close(weights);
    }

    /** Frees what {@link #applyAll} keeps for these weights (reordered copies): their model is closing. */
    public static void forget(Iterable<Tensor> weights) {
        PackedWeights.forget(weights);
    }

    /**
     * Rows of weight per task for a weight of {@code total} output features over d inputs: about
     * {@link #TASKS_PER_THREAD} tasks per thread, so a thread that loses its core leaves little for the others, but
     * each task reads at least {@link #MIN_CHUNK_BYTES} of weights (a task costs a few microseconds of dispatch); a
     * multiple of {@link #ALIGN}; the whole weight (one task, no hand-off) below {@link #MIN_SPLIT_ELEMENTS}.
     */
    static long chunkRows(long total, long d, int threads) {
        if (total * d < MIN_SPLIT_ELEMENTS || threads <= 1) return Math.max(1, total);
        long byCount = (total + (long) threads * TASKS_PER_THREAD - 1) / ((long) threads * TASKS_PER_THREAD);
        long bySize = MIN_CHUNK_BYTES / (4 * Math.max(1, d));
        long c = Math.max(byCount, bySize);
        return Math.max(ALIGN, (c + ALIGN - 1) / ALIGN * ALIGN);
    }

}
