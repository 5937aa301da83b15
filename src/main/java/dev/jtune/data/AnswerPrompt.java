package dev.jtune.data;

/**
 * A held-out instruction or chat example as a question to answer: the prompt tokens the model generates from (the
 * conversation through the last user turn, rendered with the chat template and its generation prompt, tokenised as
 * for training) and the reference answer (the last assistant message).
 *
 * @param promptIds tokens before the last assistant turn
 * @param question  the last user message, for reports
 * @param reference the last assistant message's content
 */
public record AnswerPrompt(long[] promptIds, String question, String reference) {}
