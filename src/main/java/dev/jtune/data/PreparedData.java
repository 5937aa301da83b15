package dev.jtune.data;

import java.util.List;

/**
 * The examples of each split, what happened on the way, and the chat template used (null for TEXT); for instruction
 * and chat data also the validation and test examples as questions with reference answers (empty for TEXT), for
 * scoring generated answers.
 */
public record PreparedData(List<Example> train, List<Example> validation, List<Example> test, DataReport report,
                           ChatTemplate template, List<AnswerPrompt> validationPrompts, List<AnswerPrompt> testPrompts) {
    public PreparedData(List<Example> train, List<Example> validation, List<Example> test, DataReport report,
                        ChatTemplate template) {
        this(train, validation, test, report, template, List.of(), List.of());
    }
}
