package dev.jtune.data;

import java.util.List;

/**
 * A cleaned row, before tokenisation: either {@code text} (format text) or {@code messages} (instruction and chat
 * rows, system prompt included).
 *
 * @param line the row's line in its file, for messages
 * @param key  what makes two rows duplicates of each other (and puts them in the same split)
 */
record Candidate(int line, String text, List<ChatTemplate.Message> messages, String key) {}
