package dev.jtune.api;

/**
 * Loss and perplexity of a model on an experiment's held-out splits (the same split as training), as
 * {@code jtune eval} computes them: the mean negative log-likelihood over every target token.
 *
 * @param validationLoss   the validation split's loss, or null when the experiment has none
 * @param validationTokens target tokens of the validation split
 * @param testLoss         the test split's loss, or null when the experiment has none
 * @param testTokens       target tokens of the test split
 */
public record EvalResult(Double validationLoss, long validationTokens, Double testLoss, long testTokens) {
    /** exp(validation loss), or null. */
    public Double validationPerplexity() {
        return validationLoss == null ? null : Math.exp(validationLoss);
    }

    /** exp(test loss), or null. */
    public Double testPerplexity() {
        return testLoss == null ? null : Math.exp(testLoss);
    }
}
