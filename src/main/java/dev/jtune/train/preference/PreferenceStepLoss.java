package dev.jtune.train.preference;

import dev.jtune.config.Precision;
import dev.jtune.data.Batch;
import dev.jtune.data.Batcher;
import dev.jtune.data.Example;
import dev.jtune.data.SequenceKey;
import dev.jtune.data.TensorBatch;
import dev.jtune.model.CausalLM;
import dev.jtune.train.step.StepLoss;
import org.bytedeco.javacpp.PointerScope;
import org.bytedeco.pytorch.NoGradGuard;
import org.bytedeco.pytorch.Tensor;

import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.function.UnaryOperator;

/**
 * The training step's loss for a preference method ({@link StepLoss}): per micro-batch of n items (2n rows), the
 * policy's completion log-probabilities from the step's own forward, the reference's ({@link ReferenceLogps}), and
 * {@link PreferenceLoss}; its units are the items, so the step's loss is the mean over the pairs (KTO: examples) of the
 * whole batch, and the step's metrics are their means ({@link #stepMetrics}).
 */
public final class PreferenceStepLoss implements StepLoss, AutoCloseable {
    private final PreferenceLoss loss;
    private final ReferenceLogps reference;
    private final Map<SequenceKey, Boolean> desirable;
    private final StepMetrics metrics = new StepMetrics();
    /** Data parallel: sums over the ranks during training (KTO's KL); the identity in one process. */
    private UnaryOperator<double[]> overRanks = UnaryOperator.identity();

    /**
     * @param reference the reference's log-probabilities (closed with this)
     * @param desirable KTO: each completion's label by its tokens; empty for pairs
     */
    public PreferenceStepLoss(PreferenceLoss loss, ReferenceLogps reference, Map<SequenceKey, Boolean> desirable) {
        this.loss = loss;
        this.reference = reference;
        this.desirable = desirable;
    }

    public PreferenceLoss loss() {
        return loss;
    }

    public ReferenceLogps reference() {
        return reference;
    }

    @Override
    public long units(Batch b) {
        return b.rows() / 2;
    }

    @Override
    public Tensor sum(CausalLM model, Tensor hidden, Batch b, TensorBatch tb) {
        return sum(model, hidden, b, tb, metrics, overRanks);
    }

    @Override
    public void joinRanks(UnaryOperator<double[]> sum) {
        overRanks = sum;
    }

    private Tensor sum(CausalLM model, Tensor hidden, Batch b, TensorBatch tb, StepMetrics into, UnaryOperator<double[]> overRanks) {
        SequenceLogps.Rows rows = SequenceLogps.rows(b);
        Tensor policy = SequenceLogps.sums(model, hidden, rows);                                  // (2n,)
        Tensor ref = loss.needsReference() ? reference.of(b, tb, rows) : null;                  // (2n,) or null
        return loss.sum(policy, ref, rows, labels(b, rows), into, overRanks);
    }

    private boolean[] labels(Batch b, SequenceLogps.Rows rows) {
        if (loss.method() != dev.jtune.config.TrainingSection.Method.KTO) return null;
        int n = rows.size() / 2;
        boolean[] out = new boolean[n];
        for (int i = 0; i < n; i++) {
            Boolean d = desirable.get(new SequenceKey(b.inputIds()[i], rows.length()[i]));
            if (d == null) throw new IllegalStateException("no KTO label for row " + i);
            out[i] = d;
        }
        return out;
    }

    @Override
    public void startStep() {
        metrics.reset();
    }

    @Override
    public void sumMetricsOverRanks(java.util.function.UnaryOperator<double[]> sum) {
        metrics.sumOverRanks(sum);
    }

    @Override
    public Map<String, Double> stepMetrics() {
        return metrics.means();
    }

    /**
     * The loss and metrics over held-out items (no gradients, evaluation mode), as TRL's evaluation loop computes
     * {@code eval_loss} and {@code eval_rewards/...}: the loss is the mean over the items.
     */
    public Evaluated evaluate(CausalLM model, List<Example> examples, int batchSize, int maxSeqLength, long padId, Precision precision) {
        StepMetrics m = new StepMetrics();
        if (examples.isEmpty()) return new Evaluated(Double.NaN, 0, Map.of());
        Batcher batcher = new Batcher(examples, 2, batchSize, false, 0, false, maxSeqLength, padId, 0, 1);
        double sum = 0;
        long items = 0;
        boolean training = model.training();
        model.setTraining(false);
        try (NoGradGuard ng = new NoGradGuard(); Batcher.BatchIterator it = batcher.epoch(0, 0)) {
            while (it.hasNext()) {
                Batch b = it.next();
                try (PointerScope scope = new PointerScope(); dev.jtune.train.step.Autocast ac = dev.jtune.train.step.Autocast.enter(precision, model.device())) {
                    TensorBatch tb = b.toTensors(model.device());
                    Tensor hidden = model.hidden(tb.inputIds(), tb.positionIds(), tb.attentionMask(), null);
                    sum += sum(model, hidden, b, tb, m, UnaryOperator.identity()).item_double();   // every rank evaluates all
                }
                items += b.rows() / 2;
            }
        } finally {
            model.setTraining(training);
        }
        return new Evaluated(sum / items, items, m.means());
    }

    /** An evaluation: mean loss over the items, their number, the metrics' means. */
    public record Evaluated(double loss, long items, Map<String, Double> metrics) {}

    /**
     * precompute_ref_log_probs: the reference's log-probability of every sequence of {@code splits}, computed once
     * (no gradients), split {@code s} in batches of {@code batchSizes[s]} items (TRL's default precompute_ref_batch_size:
     * the train split's per_device_train_batch_size, the others' per_device_eval_batch_size); then {@code source} is
     * closed (a frozen copy is freed before training).
     */
    public static ReferenceLogps precompute(ReferenceLogps source, CausalLM model, List<List<Example>> splits, int[] batchSizes,
                                            int maxSeqLength, long padId, Precision precision) {
        Map<SequenceKey, Double> values = new HashMap<>();
        try (source; NoGradGuard ng = new NoGradGuard()) {
            for (int s = 0; s < splits.size(); s++) {
                List<Example> examples = splits.get(s);
                if (examples.isEmpty()) continue;
                Batcher batcher = new Batcher(examples, 2, batchSizes[s], false, 0, false, maxSeqLength, padId, 0, 1);
                try (Batcher.BatchIterator it = batcher.epoch(0, 0)) {
                    while (it.hasNext()) {
                        Batch b = it.next();
                        try (PointerScope scope = new PointerScope(); dev.jtune.train.step.Autocast ac = dev.jtune.train.step.Autocast.enter(precision, model.device())) {
                            SequenceLogps.Rows rows = SequenceLogps.rows(b);
                            double[] v = PreferenceLoss.doubles(source.of(b, b.toTensors(model.device()), rows));
                            for (int r = 0; r < v.length; r++) values.put(new SequenceKey(b.inputIds()[r], rows.length()[r]), v[r]);
                        }
                    }
                }
            }
        }
        return ReferenceLogps.precomputed(values);
    }

    @Override
    public void close() {
        reference.close();
    }
}
