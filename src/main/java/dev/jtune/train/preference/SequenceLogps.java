package dev.jtune.train.preference;

import dev.jtune.data.Batch;
import dev.jtune.model.CausalLM;
import dev.jtune.train.step.CausalLmLoss;
import dev.jtune.util.Labels;
import dev.jtune.util.Tensors;
import org.bytedeco.pytorch.Tensor;
import org.bytedeco.pytorch.TensorVector;
import org.bytedeco.pytorch.global.torch;

/**
 * The log-probability of each row's completion: the sum over its target tokens (labels not -100) of
 * log p(token | what precedes it), as TRL's {@code get_batch_logps} / {@code concatenated_forward} compute it.
 * Each row goes through the model's chunked cross-entropy op ({@link dev.jtune.kernels.Ops#crossEntropySum}: the
 * same kernel and memory bound as supervised fine-tuning), so no (N × V) logits are ever held at once.
 */
public final class SequenceLogps {
    /**
     * Where each row's completion is, read from the host batch (no device sync).
     *
     * @param length    tokens of the row without padding
     * @param count     target tokens (the completion's, EOS included)
     * @param positions per row, the positions t whose hidden state predicts a target (label at t + 1 not -100)
     * @param targets   per row, the target ids labels[t + 1]
     */
    public record Rows(int[] length, int[] count, long[][] positions, long[][] targets) {
        public int size() {
            return length.length;
        }
    }

    private SequenceLogps() {}

    public static Rows rows(Batch b) {
        int n = b.rows();
        int[] length = new int[n], count = new int[n];
        long[][] pos = new long[n][], tgt = new long[n][];
        for (int r = 0; r < n; r++) {
            long[] labels = b.labels()[r];
            int last = labels.length - 1;
            while (last >= 0 && labels[last] == Labels.IGNORE_INDEX) last--;
            length[r] = last + 1;
            int c = 0;
            for (int t = 1; t < labels.length; t++) if (labels[t] != Labels.IGNORE_INDEX) c++;
            count[r] = c;
            pos[r] = new long[c];
            tgt[r] = new long[c];
            int k = 0;
            for (int t = 1; t < labels.length; t++) {
                if (labels[t] == Labels.IGNORE_INDEX) continue;
                pos[r][k] = t - 1;
                tgt[r][k++] = labels[t];
            }
        }
        return new Rows(length, count, pos, tgt);
    }

    /**
     * @param hidden final (normed) hidden states (B, T, D) of {@code model}
     * @return (B,) float32: each row's summed completion log-probability, differentiable where hidden is
     */
    public static Tensor sums(CausalLM model, Tensor hidden, Rows rows) {
        Tensor w = model.outputWeight();                                              // (V, D)
        TensorVector out = new TensorVector();
        for (int r = 0; r < rows.size(); r++) {
            Tensor pos = Tensors.longs(rows.positions()[r]).to(hidden.device(), torch.ScalarType.Long);
            Tensor tgt = Tensors.longs(rows.targets()[r]).to(hidden.device(), torch.ScalarType.Long);
            Tensor h = hidden.select(0, r).index_select(0, pos);                      // (N_r, D)
            long chunk = CausalLmLoss.chunkRows(h.size(0), w.size(0), w.size(1), h.is_cuda());
            out.push_back(model.kernels().crossEntropySum(h, w, tgt, chunk).neg());   // 0-d: sum of log p
        }
        return torch.stack(out);                                                      // (B,)
    }
}
