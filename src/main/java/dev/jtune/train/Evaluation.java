package dev.jtune.train;

import dev.jtune.config.Precision;
import dev.jtune.data.Example;
import dev.jtune.model.CausalLM;

import dev.jtune.distributed.DistGroup;

import java.util.ArrayList;
import java.util.List;

/**
 * How a run evaluates a split ("validation" during and after training, "test" at the end): {@link Evaluator} on the
 * trained model with the run's eval batch size, sequence length, padding and precision. An interface so that tests can
 * wrap it (through the package-private Trainer constructor), e.g. to fail with a real out-of-memory error.
 */
interface Evaluation {
    Evaluator.Result run(List<Example> examples, String split);

    static Evaluation of(CausalLM model, int batchSize, int maxSeqLength, long padId, Precision precision) {
        return (examples, split) -> Evaluator.evaluate(model, examples, batchSize, maxSeqLength, padId, precision);
    }

    /**
     * Sharded over the ranks of {@code group}: rank r evaluates examples r, r+W, … (no padding, so no example counts
     * twice), and the NLL sums and target counts are all-reduced before dividing: every rank gets the loss one process
     * would compute over the whole split (up to the order of the float sums), so early stopping decides the same on all.
     */
    static Evaluation of(CausalLM model, int batchSize, int maxSeqLength, long padId, Precision precision, DistGroup group) {
        if (!group.active()) return of(model, batchSize, maxSeqLength, padId, precision);
        return (examples, split) -> {
            List<Example> mine = new ArrayList<>();
            for (int i = group.rank(); i < examples.size(); i += group.worldSize()) mine.add(examples.get(i));
            double[] st = group.allReduceSum(Evaluator.sumAndTokens(model, mine, batchSize, maxSeqLength, padId, precision),
                    "all-reduce of the " + split + " loss");
            return new Evaluator.Result(st[1] == 0 ? Double.NaN : st[0] / st[1], (long) st[1]);
        };
    }
}
