package dev.jtune.data;

import java.time.LocalDate;
import java.util.ArrayList;
import java.util.Collections;
import java.util.LinkedHashSet;
import java.util.List;
import java.util.Map;
import java.util.Optional;
import java.util.Set;
import java.util.concurrent.ConcurrentHashMap;
import java.util.function.BiFunction;
import java.util.regex.Matcher;
import java.util.regex.Pattern;

/**
 * A fast path for {@link ChatTemplate#render}: for one role sequence (and add_generation_prompt), the template is
 * rendered once with sentinel strings as the contents and cut at them into literal pieces; a row is then rendered
 * by joining the pieces with its contents. Rendering with jinjava was most of data preparation's time.
 *
 * <p>Only used where it is proven to give jinjava's bytes: a skeleton is kept only when two renders with different
 * sentinels (one with whitespace and newlines at both ends, so {@code trim}/{@code strip}/{@code tojson} show), and a
 * third one 5,000 characters long (a branch on {@code content|length}, {@code truncate}), give the same pieces with
 * each sentinel verbatim, once, in order. Templates branch on content through string literals
 * ({@code '</think>' in content}, {@code startswith('<tool_response>')}): every string literal of the template is
 * tried inside each content (alone, at the start, at the end, in the middle; all of them together too) and the
 * literals that change the render are "unsafe": a row whose content holds one, or whose content is empty, is
 * rendered by jinjava. So is everything the skeleton cannot be proven for (raise_exception, unknown roles, ...).
 */
final class TemplateSkeletons {
    /** More distinct role sequences than this are rendered by jinjava (bounds memory on odd data). */
    private static final int MAX_SKELETONS = 256;
    /** Private-use characters: no template literal contains them. */
    private static final String SPACED = " \n\t\uE000%d\uE001 \n";
    private static final String PLAIN = "\uE002x%dy\uE003";
    /** A long content: shows templates that branch on or cut a content by its length. */
    private static final String LONG = "\uE004" + "long ".repeat(1000) + "%d\uE005";
    // runs of plain characters matched possessively, one loop turn per escape only: (?:[^']|\\.)* recursed once per
    // character in java.util.regex and overflowed the stack on a long literal
    private static final Pattern STRING_LITERAL =
            Pattern.compile("'([^'\\\\]*+(?:\\\\.[^'\\\\]*+)*+)'|\"([^\"\\\\]*+(?:\\\\.[^\"\\\\]*+)*+)\"");

    /**
     * A content holding Jinja syntax is always rendered by jinjava: ChatTemplate turns jinjava's nested
     * interpretation off (it rendered such a content again), and the fast path stays out of that question entirely.
     */
    private static final List<String> JINJA_SYNTAX = List.of("{{", "{%", "{#", "}}", "%}", "#}");

    /** The pieces between contents (contents.size() + 1 of them) and the literals a content must not hold. */
    private record Skeleton(String[] pieces, List<String> unsafe) {}

    private final BiFunction<List<ChatTemplate.Message>, Boolean, String> jinjava;
    private final List<String> literals;
    private final boolean datesMatter;
    private final Map<String, Optional<Skeleton>> cache = new ConcurrentHashMap<>();
    /** Renders per role sequence before its skeleton is built: a one-off render (serve, generate) stays cheap. */
    private final Map<String, Integer> seen = new ConcurrentHashMap<>();
    static final int BUILD_AFTER = 16;

    /** @param jinjava the reference render (messages, add_generation_prompt) */
    TemplateSkeletons(String source, BiFunction<List<ChatTemplate.Message>, Boolean, String> jinjava) {
        this.jinjava = jinjava;
        this.literals = literals(source);
        this.datesMatter = source.contains("strftime_now");
    }

    /** The render of {@code messages}, or null when this row must be rendered by jinjava. */
    String render(List<ChatTemplate.Message> messages, boolean addGenerationPrompt) {
        StringBuilder key = new StringBuilder(addGenerationPrompt ? "g" : "-");
        if (datesMatter) key.append(ChatTemplate.fixedStrftime).append(LocalDate.now());
        for (ChatTemplate.Message m : messages) key.append('\u0000').append(m.role());
        String k = key.toString();
        Optional<Skeleton> sk = cache.get(k);
        if (sk == null) {
            if (cache.size() >= MAX_SKELETONS || seen.size() > 4 * MAX_SKELETONS) return null;
            if (seen.merge(k, 1, Integer::sum) < BUILD_AFTER) return null;
            List<String> roles = messages.stream().map(ChatTemplate.Message::role).toList();
            sk = cache.computeIfAbsent(k, x -> Optional.ofNullable(build(roles, addGenerationPrompt)));
        }
        if (sk.isEmpty()) return null;
        Skeleton s = sk.get();
        int len = 0;
        for (ChatTemplate.Message m : messages) {
            String c = m.content();
            if (c.isEmpty()) return null;
            for (String lit : s.unsafe()) {
                if (c.contains(lit)) return null;
            }
            len += c.length();
        }
        for (String p : s.pieces()) len += p.length();
        StringBuilder out = new StringBuilder(len);
        for (int i = 0; i < messages.size(); i++) out.append(s.pieces()[i]).append(messages.get(i).content());
        return out.append(s.pieces()[messages.size()]).toString();
    }

    /** The skeleton for these roles, or null when it cannot be proven to reproduce jinjava. */
    private Skeleton build(List<String> roles, boolean agp) {
        int n = roles.size();
        List<String> spaced = sentinels(SPACED, n);
        List<String> plain = sentinels(PLAIN, n);
        String[] a = cutAt(renderOrNull(roles, spaced, agp), spaced);
        String[] b = cutAt(renderOrNull(roles, plain, agp), plain);
        List<String> longOnes = sentinels(LONG, n);
        String[] l = cutAt(renderOrNull(roles, longOnes, agp), longOnes);
        if (a == null || b == null || l == null || !java.util.Arrays.equals(a, b) || !java.util.Arrays.equals(a, l)) {
            return null;
        }
        // Which literals change the render when a content holds them (one message at a time, others plain).
        Set<String> unsafe = new LinkedHashSet<>(JINJA_SYNTAX);
        for (String lit : literals) {
            for (int i = 0; i < n && !unsafe.contains(lit); i++) {
                String x = plain.get(i);
                for (String c : List.of(lit, x + lit, lit + x, x + lit + x, lit + lit)) {
                    if (!reproduces(roles, plain, i, c, agp, a)) {
                        unsafe.add(lit);
                        break;
                    }
                }
            }
        }
        // Literals that matter only together (`'<think>' in c and '</think>' in c`): all the safe ones at once.
        List<String> safe = new ArrayList<>(literals);
        safe.removeAll(unsafe);
        safe.removeIf(lit -> JINJA_SYNTAX.stream().anyMatch(lit::contains));
        if (!safe.isEmpty()) {
            List<String> reversed = new ArrayList<>(safe);
            Collections.reverse(reversed);
            for (int i = 0; i < n; i++) {
                String x = plain.get(i);
                if (!reproduces(roles, plain, i, x + String.join(x, safe) + x, agp, a)
                        || !reproduces(roles, plain, i, String.join("", reversed), agp, a)) {
                    unsafe.addAll(safe);
                    break;
                }
            }
        }
        return new Skeleton(a, List.copyOf(unsafe));
    }

    /** Whether the render with content {@code c} in message {@code i} is the skeleton joined with the contents. */
    private boolean reproduces(List<String> roles, List<String> contents, int i, String c, boolean agp,
                               String[] pieces) {
        List<String> cs = new ArrayList<>(contents);
        cs.set(i, c);
        String got = renderOrNull(roles, cs, agp);
        if (got == null) return false;
        StringBuilder want = new StringBuilder();
        for (int j = 0; j < cs.size(); j++) want.append(pieces[j]).append(cs.get(j));
        return got.equals(want.append(pieces[cs.size()]).toString());
    }

    private String renderOrNull(List<String> roles, List<String> contents, boolean agp) {
        List<ChatTemplate.Message> msgs = new ArrayList<>(roles.size());
        for (int i = 0; i < roles.size(); i++) msgs.add(new ChatTemplate.Message(roles.get(i), contents.get(i)));
        try {
            return jinjava.apply(msgs, agp);
        } catch (RuntimeException e) {
            return null;   // the row's own render reports the error
        }
    }

    /** {@code text} cut at each sentinel, which must occur exactly once and in order (no piece holds one); else null. */
    static String[] cutAt(String text, List<String> sentinels) {
        if (text == null) return null;
        String[] pieces = new String[sentinels.size() + 1];
        int pos = 0;
        for (int i = 0; i < sentinels.size(); i++) {
            String s = sentinels.get(i);
            int at = text.indexOf(s, pos);
            if (at < 0) return null;
            pieces[i] = text.substring(pos, at);
            pos = at + s.length();
        }
        pieces[sentinels.size()] = text.substring(pos);
        for (String s : sentinels) {
            for (String p : pieces) {
                if (p.contains(s)) return null;
            }
        }
        return pieces;
    }

    private static List<String> sentinels(String format, int n) {
        List<String> out = new ArrayList<>(n);
        for (int i = 0; i < n; i++) out.add(String.format(format, i));
        return out;
    }

    /** The template's string literals, raw and with Python escapes resolved, without the empty one. */
    static List<String> literals(String source) {
        Set<String> out = new LinkedHashSet<>();
        Matcher m = STRING_LITERAL.matcher(source);
        while (m.find()) {
            String raw = m.group(1) != null ? m.group(1) : m.group(2);
            if (raw.isEmpty()) continue;
            out.add(raw);
            out.add(unescape(raw));
        }
        return List.copyOf(out);
    }

    private static String unescape(String s) {
        StringBuilder sb = new StringBuilder(s.length());
        for (int i = 0; i < s.length(); i++) {
            char c = s.charAt(i);
            if (c != '\\' || i + 1 == s.length()) {
                sb.append(c);
                continue;
            }
            char e = s.charAt(++i);
            sb.append(switch (e) {
                case 'n' -> '\n';
                case 't' -> '\t';
                case 'r' -> '\r';
                default -> e;
            });
        }
        return sb.toString();
    }
}
