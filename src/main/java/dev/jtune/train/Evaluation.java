package dev.jtune.train;

import dev.jtune.config.Precision;
import dev.jtune.data.Example;
import dev.jtune.model.CausalLM;

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
}
