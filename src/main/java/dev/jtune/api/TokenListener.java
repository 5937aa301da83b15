package dev.jtune.api;

/**
 * Receives generated text as it is produced ({@link Model#generate(String, Generation, TokenListener)}): one call per
 * new token, with the text that token completes. Pieces may be empty while a multi-byte character is incomplete; their
 * concatenation is the returned text.
 */
@FunctionalInterface
public interface TokenListener {
    /**
     * @param text the newly decoded text (possibly empty)
     */
    void onText(String text);
}
