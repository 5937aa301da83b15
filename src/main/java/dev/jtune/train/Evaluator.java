package dev.jtune.train;

import dev.jtune.train.step.Autocast;
import dev.jtune.train.step.CausalLmLoss;
import dev.jtune.config.Precision;
import dev.jtune.data.Batch;
import dev.jtune.data.Batcher;
import dev.jtune.data.Example;
import dev.jtune.data.TensorBatch;
import dev.jtune.model.CausalLM;
import org.bytedeco.javacpp.PointerScope;
import org.bytedeco.pytorch.NoGradGuard;

import java.util.Iterator;
import java.util.List;

/** Loss and perplexity of a model over held-out examples: mean NLL over all target tokens. */
public final class Evaluator {
    private Evaluator() {}

    public record Result(double loss, long tokens) {
        public double perplexity() {
            return Math.exp(loss);
        }
    }

    public static Result evaluate(CausalLM model, List<Example> examples, int batchSize, int maxSeqLength, long padId,
                                  Precision precision) {
        double[] st = sumAndTokens(model, examples, batchSize, maxSeqLength, padId, precision);
        return new Result(st[1] == 0 ? Double.NaN : st[0] / st[1], (long) st[1]);
    }

    /** {summed NLL over the target tokens, target tokens}: what ranks add up before dividing. */
    static double[] sumAndTokens(CausalLM model, List<Example> examples, int batchSize, int maxSeqLength, long padId,
                                 Precision precision) {
        if (examples.isEmpty()) return new double[] {0, 0};
        Batcher batcher = new Batcher(examples, batchSize, false, 0, false, maxSeqLength, padId);
        double sum = 0;
        long tokens = 0;
        try (NoGradGuard ng = new NoGradGuard()) {
            Iterator<Batch> it = batcher.epoch(0, 0);
            while (it.hasNext()) {
                Batch b = it.next();
                try (PointerScope scope = new PointerScope(); Autocast ac = Autocast.enter(precision, model.device())) {
                    TensorBatch t = b.toTensors(model.device());
                    sum += CausalLmLoss.sumAtTargets(model, model.hidden(t.inputIds(), t.positionIds(), t.attentionMask(), null),
                            t.labels()).item_double();   // host sync per batch
                }
                tokens += b.targetTokens();
            }
        }
        return new double[] {sum, tokens};
    }
}
