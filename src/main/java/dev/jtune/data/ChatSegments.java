package dev.jtune.data;

import dev.jtune.util.UserError;

import java.util.ArrayList;
import java.util.List;

/**
 * Cuts a conversation, rendered with the chat template, into prompt and response texts, so that the loss can be
 * put on the responses only: for each assistant turn, the render before it with {@code add_generation_prompt} is
 * the prompt, and what the render through it adds is the response (with the template's end-of-turn text).
 *
 * <p>This needs the template to be prefix-consistent (a later render extends an earlier one). Some are not
 * (Qwen3 drops earlier reasoning once later messages follow): then each turn is located in the render of the
 * whole conversation; only when that fails too is the last assistant turn alone trained on.
 */
final class ChatSegments {
    /** One piece of rendered text, in order; {@code response} pieces are trained on. */
    record Segment(String text, boolean response) {}

    /** The segments of a conversation, and whether only its last assistant turn is a response. */
    record Cut(List<Segment> segments, boolean lastTurnOnly) {}

    private final ChatTemplate template;

    ChatSegments(ChatTemplate template) {
        this.template = template;
    }

    /**
     * Segments {@code msgs} (which hold at least one assistant message) turn by turn, or by the last turn when
     * the template is not prefix-consistent.
     *
     * @throws UserError when the template fails to render, or its render with the generation prompt is not a
     *                   prefix of the render with the answer (then prompt and response cannot be told apart)
     */
    Cut cut(List<ChatTemplate.Message> msgs) {
        List<Segment> turns = everyTurn(msgs);
        if (turns == null) turns = locatedInFullRender(msgs);
        return turns != null ? new Cut(turns, false) : new Cut(lastTurn(msgs), true);
    }

    /**
     * For templates that render a turn differently once later messages follow (Qwen3 adds an empty think block
     * to the last assistant turn only; gpt-oss drops earlier channels): the whole conversation is rendered once,
     * and each assistant turn i is found in it: it starts where the render of messages[0, i) with the generation
     * prompt ends (which must be a prefix of the whole), and ends after its content plus the end-of-turn text,
     * which is learnt from what the template writes after the last turn's content. Returns null when a prompt is
     * not a prefix or a content cannot be found verbatim.
     */
    private List<Segment> locatedInFullRender(List<ChatTemplate.Message> msgs) {
        int last = lastAssistant(msgs);
        String full = template.render(msgs.subList(0, last + 1), false);
        String lastContent = msgs.get(last).content();
        int lastAt = full.lastIndexOf(lastContent);
        if (lastContent.isEmpty() || lastAt < 0) return null;
        String endOfTurn = full.substring(lastAt + lastContent.length());
        List<Segment> out = new ArrayList<>();
        int pos = 0;
        for (int i = 0; i <= last; i++) {
            if (!msgs.get(i).role().equals("assistant")) continue;
            String prompt = template.render(msgs.subList(0, i), true);
            if (!full.startsWith(prompt) || prompt.length() < pos) return null;
            int end = full.length();
            if (i < last) {
                String content = msgs.get(i).content();
                int at = full.indexOf(content, prompt.length());
                if (content.isEmpty() || at < 0) return null;
                end = at + content.length() + commonPrefix(full, at + content.length(), endOfTurn);
            }
            out.add(new Segment(full.substring(pos, prompt.length()), false));
            out.add(new Segment(full.substring(prompt.length(), end), true));
            pos = end;
        }
        return out;
    }

    /**
     * Length of the common prefix of {@code s} from {@code from} and {@code t}, cut back to the end of a line or of
     * a {@code <|tag|>} unless all of {@code t} matches: phi-3 ends a turn with {@code <|end|>\n} and the
     * conversation with {@code <|end|>\n</s>}, and the {@code <|} that the next {@code <|user|>} shares is not
     * part of the turn.
     */
    static int commonPrefix(String s, int from, String t) {
        int n = 0;
        while (n < t.length() && from + n < s.length() && s.charAt(from + n) == t.charAt(n)) n++;
        if (n == t.length()) return n;
        while (n > 0 && t.charAt(n - 1) != '\n' && t.charAt(n - 1) != '>') n--;
        return n;
    }

    /**
     * For each assistant turn i, the render of messages[0, i) with the generation prompt must extend the render
     * through turn i-1, and the render through turn i must extend it. Returns null when that fails.
     */
    private List<Segment> everyTurn(List<ChatTemplate.Message> msgs) {
        int last = lastAssistant(msgs);
        List<Segment> out = new ArrayList<>();
        String prev = "";
        for (int i = 0; i <= last; i++) {
            if (!msgs.get(i).role().equals("assistant")) continue;
            String prompt = template.render(msgs.subList(0, i), true);
            String full = template.render(msgs.subList(0, i + 1), false);
            if (!prompt.startsWith(prev) || !full.startsWith(prompt)) return null;
            out.add(new Segment(prompt.substring(prev.length()), false));
            out.add(new Segment(full.substring(prompt.length()), true));
            prev = full;
        }
        return out;
    }

    private List<Segment> lastTurn(List<ChatTemplate.Message> msgs) {
        int last = lastAssistant(msgs);
        String prompt = template.render(msgs.subList(0, last), true);
        String full = template.render(msgs.subList(0, last + 1), false);
        if (!full.startsWith(prompt)) throw new UserError(notAPrefix(template));
        return List.of(new Segment(prompt, false), new Segment(full.substring(prompt.length()), true));
    }

    /** The error when even the last turn cannot be cut; names the template (jtune's default, or where it came from). */
    static String notAPrefix(ChatTemplate template) {
        return (template.isDefault() ? "default chat template" : "chat template")
                + ": the render with add_generation_prompt is not a prefix of the render with the answer;"
                + " cannot tell prompt from response";
    }

    private static int lastAssistant(List<ChatTemplate.Message> msgs) {
        for (int i = msgs.size() - 1; i >= 0; i--) {
            if (msgs.get(i).role().equals("assistant")) return i;
        }
        throw new IllegalStateException("no assistant message"); // filtered out during cleaning
    }
}
