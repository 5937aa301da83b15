package dev.jtune.data;

import dev.jtune.config.DataSection;
import dev.jtune.data.DataReport.Reason;
import dev.jtune.tokenizer.HfTokenizer;
import dev.jtune.util.UserError;

import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.Set;

/**
 * Tokenises one {@link Candidate} into an {@link Example}: input ids and labels, with the loss mask, EOS and the
 * {@code max_seq_length} policy. Thread-safe: {@link DatasetPreparer} encodes rows on several threads.
 *
 * <p>Loss masks: {@code text} rows train on every token. {@code instruction} and {@code chat} rows are cut into
 * prompt and response texts by {@link ChatSegments}; prompt tokens get label {@link dev.jtune.util.Labels#IGNORE_INDEX} unless
 * {@code train_on_inputs}. Segments are tokenised separately without special tokens (templates write BOS
 * themselves, as HF's apply_chat_template assumes). An EOS id is appended when the last response contains none of
 * the tokenizer's EOS ids (for ChatML templates whose end-of-turn token is the EOS, nothing is added).
 *
 * <p>Over-long examples: cut to {@code max_seq_length} ({@code on_long_row: truncate}) or dropped ({@code drop});
 * an example whose prompt alone fills {@code max_seq_length} is always dropped (nothing would be trained on).
 */
final class ExampleEncoder {
    /**
     * The outcome for one candidate: an example, or the reason it was dropped, or the chat template's error.
     *
     * @param truncated    the example was cut to max_seq_length
     * @param lastTurnOnly only the last assistant turn is trained on (see {@link ChatSegments})
     * @param answer       the example as a question to answer (instruction and chat rows whose last prompt fits); or null
     */
    record Encoded(Example example, Reason dropped, boolean truncated, boolean lastTurnOnly, String templateError,
                   AnswerPrompt answer) {
        Encoded(Example example, Reason dropped, boolean truncated, boolean lastTurnOnly, String templateError) {
            this(example, dropped, truncated, lastTurnOnly, templateError, null);
        }

        static Encoded dropped(Reason r) {
            return new Encoded(null, r, false, false, null);
        }

        Encoded withAnswer(AnswerPrompt a) {
            return new Encoded(example, dropped, truncated, lastTurnOnly, templateError, a);
        }
    }

    private final HfTokenizer tok;
    private final ChatSegments segments;   // null for format text
    private final int maxSeqLength;
    private final boolean truncate;
    private final boolean trainOnInputs;
    private final Set<Long> eosIds;
    private final long eos;

    /** @param template the chat template; null for format text */
    ExampleEncoder(DataSection d, HfTokenizer tok, ChatTemplate template) {
        this.tok = tok;
        this.segments = template == null ? null : new ChatSegments(template);
        this.maxSeqLength = d.maxSeqLength();
        this.truncate = d.onLongRow() == DataSection.OnLongRow.TRUNCATE;
        this.trainOnInputs = d.trainOnInputs();
        this.eosIds = tok.eosTokenIds();
        this.eos = eosIds.isEmpty() ? -1 : eosIds.iterator().next();
    }

    Encoded encode(Candidate c) {
        return c.text() != null ? encodeText(c.text()) : encodeConversation(c.messages());
    }

    /** A document: every token is a target; EOS appended unless already last. */
    private Encoded encodeText(String text) {
        long[] ids = tok.encode(text, true).ids();
        if (eos >= 0 && (ids.length == 0 || ids[ids.length - 1] != eos)) {
            ids = Arrays.copyOf(ids, ids.length + 1);
            ids[ids.length - 1] = eos;
        }
        return fit(ids, ids.clone(), 0, false);
    }

    private Encoded encodeConversation(List<ChatTemplate.Message> messages) {
        ChatSegments.Cut cut;
        try {
            cut = segments.cut(messages);
        } catch (UserError e) {
            return new Encoded(null, null, false, false, e.getMessage());
        }
        List<long[]> idParts = new ArrayList<>();
        List<Boolean> trained = new ArrayList<>();
        int total = 0;
        int promptLen = -1;   // tokens before the first response
        int lastPromptLen = -1;   // tokens before the last response: what generation answers from
        long[] lastResponse = null;
        for (ChatSegments.Segment s : cut.segments()) {
            if (s.text().isEmpty()) continue;
            long[] ids = tok.encode(s.text(), false).ids();
            if (s.response()) {
                if (promptLen < 0) promptLen = total;
                lastPromptLen = total;
                lastResponse = ids;
            }
            idParts.add(ids);
            trained.add(s.response() || trainOnInputs);
            total += ids.length;
        }
        boolean needEos = eos >= 0 && (lastResponse == null
                || Arrays.stream(lastResponse).noneMatch(eosIds::contains));
        long[] ids = new long[total + (needEos ? 1 : 0)];
        long[] labels = new long[ids.length];
        int p = 0;
        for (int i = 0; i < idParts.size(); i++) {
            long[] part = idParts.get(i);
            System.arraycopy(part, 0, ids, p, part.length);
            if (trained.get(i)) {
                System.arraycopy(part, 0, labels, p, part.length);
            } else {
                Arrays.fill(labels, p, p + part.length, dev.jtune.util.Labels.IGNORE_INDEX);
            }
            p += part.length;
        }
        if (needEos) {
            ids[p] = eos;
            labels[p] = eos;
        }
        Encoded e = fit(ids, labels, Math.max(0, promptLen), cut.lastTurnOnly());
        if (e.example() == null || lastPromptLen <= 0 || lastPromptLen >= maxSeqLength) return e;
        int answer = messages.size() - 1;   // the last assistant message (trailing messages after it are not trained on)
        while (!messages.get(answer).role().equals("assistant")) answer--;
        String question = "";
        for (int i = answer - 1; i >= 0 && question.isEmpty(); i--) {
            if (messages.get(i).role().equals("user")) question = messages.get(i).content();
        }
        return e.withAnswer(new AnswerPrompt(Arrays.copyOf(ids, lastPromptLen), question, messages.get(answer).content()));
    }

    /** Applies max_seq_length: keep, truncate, or drop (too long, or the prompt alone is too long). */
    private Encoded fit(long[] ids, long[] labels, int promptLen, boolean lastTurnOnly) {
        if (ids.length <= maxSeqLength) {
            return new Encoded(new Example(ids, labels), null, false, lastTurnOnly, null);
        }
        if (promptLen >= maxSeqLength) return Encoded.dropped(Reason.PROMPT_TOO_LONG);
        if (!truncate) return Encoded.dropped(Reason.TOO_LONG);
        return new Encoded(new Example(Arrays.copyOf(ids, maxSeqLength), Arrays.copyOf(labels, maxSeqLength)),
                null, true, lastTurnOnly, null);
    }
}
