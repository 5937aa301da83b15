package dev.jtune.eval;

import dev.jtune.data.AnswerPrompt;
import dev.jtune.infer.BatchGenerator;
import dev.jtune.model.CausalLM;

import java.util.ArrayList;
import java.util.Arrays;
import java.util.Comparator;
import java.util.List;
import java.util.Map;
import java.util.Random;
import java.util.Set;
import java.util.function.Function;

/**
 * Has a model answer held-out prompts ({@link AnswerPrompt}) and scores the answers against the references: greedy,
 * batched ({@link BatchGenerator}; prompts sorted by length so that batches carry little padding), decoded without
 * special tokens and stripped.
 */
public final class AnswerEvaluator {
    /** One answered prompt. */
    public record Answer(String question, String reference, String answer) {}

    /**
     * @param answers   in the order of the prompts
     * @param scores    each chosen metric, 0..100
     * @param newTokens tokens generated (EOS not counted)
     * @param seconds   wall time of the generation (not the scoring)
     */
    public record Result(List<Answer> answers, Map<AnswerMetric, Double> scores, long newTokens, double seconds) {
        public double tokensPerSecond() {
            return seconds > 0 ? newTokens / seconds : 0;
        }
    }

    /**
     * @param maxNewTokens generation_max_length
     * @param batchSize    prompts per forward (per_device_eval_batch_size)
     * @param eosIds       where an answer ends
     * @param padId        the id in padding slots
     * @param decode       token ids to text (the tokenizer's decode, special tokens skipped)
     */
    public record Settings(int maxNewTokens, int batchSize, Set<Long> eosIds, long padId, List<AnswerMetric> metrics,
                           Function<long[], String> decode) {}

    private AnswerEvaluator() {}

    /** Answers every prompt and scores the answers. */
    public static Result run(CausalLM model, List<AnswerPrompt> prompts, Settings s) {
        long start = System.nanoTime();
        Integer[] order = new Integer[prompts.size()];
        for (int i = 0; i < order.length; i++) order[i] = i;
        Arrays.sort(order, Comparator.comparingInt(i -> -prompts.get(i).promptIds().length));   // longest first
        long[][] generated = new long[prompts.size()][];
        BatchGenerator gen = new BatchGenerator(model);
        for (int from = 0; from < order.length; from += s.batchSize()) {
            int to = Math.min(order.length, from + s.batchSize());
            List<long[]> batch = new ArrayList<>(to - from);
            for (int k = from; k < to; k++) batch.add(prompts.get(order[k]).promptIds());
            List<long[]> out = gen.greedy(batch, s.maxNewTokens(), s.eosIds(), s.padId());
            for (int k = from; k < to; k++) generated[order[k]] = out.get(k - from);
        }
        double seconds = (System.nanoTime() - start) / 1e9;
        List<Answer> answers = new ArrayList<>(prompts.size());
        long tokens = 0;
        for (int i = 0; i < prompts.size(); i++) {
            AnswerPrompt p = prompts.get(i);
            tokens += generated[i].length;
            answers.add(new Answer(p.question(), p.reference(), s.decode().apply(generated[i]).strip()));
        }
        Map<AnswerMetric, Double> scores = AnswerScores.score(answers.stream().map(Answer::answer).toList(),
                answers.stream().map(Answer::reference).toList(), s.metrics());
        return new Result(answers, scores, tokens, seconds);
    }

    /**
     * The validation prompts answered at each evaluation: {@code n} of them drawn without replacement by a shuffle
     * seeded with {@code seed}, kept in their split order; all of them when there are no more than {@code n}.
     */
    public static List<AnswerPrompt> subset(List<AnswerPrompt> prompts, int n, long seed) {
        if (prompts.size() <= n) return prompts;
        List<Integer> idx = new ArrayList<>();
        for (int i = 0; i < prompts.size(); i++) idx.add(i);
        java.util.Collections.shuffle(idx, new Random(seed));
        List<Integer> chosen = new ArrayList<>(idx.subList(0, n));
        chosen.sort(null);
        List<AnswerPrompt> out = new ArrayList<>(n);
        for (int i : chosen) out.add(prompts.get(i));
        return out;
    }

    /** The metrics named in generation_metrics (already validated). */
    public static List<AnswerMetric> metrics(List<String> names) {
        return names.stream().map(AnswerMetric::byKey).toList();
    }
}
