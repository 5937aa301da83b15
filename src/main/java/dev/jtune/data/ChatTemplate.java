package dev.jtune.data;

import com.hubspot.jinjava.Jinjava;
import com.hubspot.jinjava.JinjavaConfig;
import com.hubspot.jinjava.LegacyOverrides;
import com.hubspot.jinjava.interpret.Context;
import com.hubspot.jinjava.interpret.InterpretException;
import com.hubspot.jinjava.interpret.InvalidArgumentException;
import com.hubspot.jinjava.interpret.InvalidInputException;
import com.hubspot.jinjava.interpret.JinjavaInterpreter;
import com.hubspot.jinjava.interpret.TemplateSyntaxException;
import com.hubspot.jinjava.interpret.RenderResult;
import com.hubspot.jinjava.interpret.TemplateError;
import com.hubspot.jinjava.lib.fn.ELFunctionDefinition;
import com.hubspot.jinjava.lib.tag.Tag;
import com.hubspot.jinjava.tree.Node;
import com.hubspot.jinjava.tree.TagNode;
import dev.jtune.tokenizer.HfTokenizer;
import dev.jtune.util.UserError;
import java.time.LocalDate;
import java.time.format.DateTimeFormatter;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.Objects;

/**
 * A Hugging Face chat template (Jinja) rendered with jinjava, configured like transformers' apply_chat_template:
 * trim_blocks, lstrip_blocks, {@code raise_exception(msg)}, {@code strftime_now(fmt)}, a no-op
 * {@code {% generation %}} block, and {@code bos_token} / {@code eos_token} from the tokenizer.
 *
 * <p>Thread-safe: {@link #render} may be called from several threads.
 */
public final class ChatTemplate {
    /**
     * jtune's own template for tokenizers without one: system messages first, then
     * {@code ### Question:\n...\n\n### Answer:\n...<eos>} per turn. The generation prompt is {@code ### Answer:\n}.
     */
    public static final String DEFAULT_TEMPLATE = """
            {%- if bos_token is defined and bos_token %}{{ bos_token }}{% endif %}
            {%- for message in messages %}
            {%- if message['role'] == 'system' %}
            {{- message['content'] + '\\n\\n' }}
            {%- elif message['role'] == 'user' %}
            {%- if loop.index0 > 0 and messages[loop.index0 - 1]['role'] == 'assistant' %}{{ '\\n\\n' }}{% endif %}
            {{- '### Question:\\n' + message['content'] + '\\n\\n' }}
            {%- elif message['role'] == 'assistant' %}
            {{- '### Answer:\\n' + message['content'] + eos_token }}
            {%- else %}
            {{- raise_exception('Unknown role: ' + message['role'] + ' (expected system, user or assistant)') }}
            {%- endif %}
            {%- endfor %}
            {%- if add_generation_prompt %}{{ '### Answer:\\n' }}{% endif %}""";

    public record Message(String role, String content) {
        public Message {
            Objects.requireNonNull(role, "role");
            Objects.requireNonNull(content, "content");
        }
    }

    private static final Jinjava JINJAVA = newJinjava();

    private final String source;
    private final String translated;
    private final String name;
    private final String bosToken;
    private final String eosToken;
    /** The fast path of {@link #render(List, boolean)}; jinjava stays the reference and renders what it refuses. */
    private final TemplateSkeletons skeletons;

    private ChatTemplate(String source, String name, String bosToken, String eosToken) {
        this.source = source;
        this.translated = PyCompat.translate(source);
        this.name = name;
        this.bosToken = bosToken;
        this.eosToken = eosToken;
        this.skeletons = new TemplateSkeletons(source, this::renderWithJinjava);
    }

    /** The tokenizer's chat_template, or {@link #DEFAULT_TEMPLATE} when it has none. */
    public static ChatTemplate forTokenizer(HfTokenizer tok) {
        String bos = tok.bosTokenId().isPresent() ? tok.idToToken(tok.bosTokenId().getAsLong()).orElse("") : "";
        String eos = tok.eosTokenIds().isEmpty() ? ""
                : tok.idToToken(tok.eosTokenIds().iterator().next()).orElse("");
        if (tok.chatTemplate().isPresent()) {
            return new ChatTemplate(tok.chatTemplate().get(), "chat template of " + tok.tokenizerFile().getParent(),
                    bos, eos);
        }
        return new ChatTemplate(DEFAULT_TEMPLATE, "jtune's default chat template", bos, eos);
    }

    /** A template given as text; {@code name} says where it came from (used in error messages). */
    public static ChatTemplate of(String source, String name, String bosToken, String eosToken) {
        return new ChatTemplate(Objects.requireNonNull(source), name, bosToken == null ? "" : bosToken,
                eosToken == null ? "" : eosToken);
    }

    /** The Jinja text. */
    public String source() {
        return source;
    }

    public boolean isDefault() {
        return source.equals(DEFAULT_TEMPLATE);
    }

    public String bosToken() {
        return bosToken;
    }

    public String eosToken() {
        return eosToken;
    }

    /** Renders the messages; with {@code addGenerationPrompt} the text ends where the assistant's answer begins. */
    public String render(List<Message> messages, boolean addGenerationPrompt) {
        String fast = skeletons.render(messages, addGenerationPrompt);
        return fast != null ? fast : renderWithJinjava(messages, addGenerationPrompt);
    }

    /** {@link #render(List, boolean)} always through jinjava (the reference the fast path is checked against). */
    String renderWithJinjava(List<Message> messages, boolean addGenerationPrompt) {
        return render(messages, addGenerationPrompt, Map.of());
    }

    /** As {@link #render(List, boolean)} with extra variables (e.g. {@code enable_thinking}). */
    public String render(List<Message> messages, boolean addGenerationPrompt, Map<String, ?> extra) {
        List<Map<String, Object>> msgs = new ArrayList<>(messages.size());
        for (Message m : messages) {
            Map<String, Object> map = new LinkedHashMap<>();
            map.put("role", m.role());
            map.put("content", m.content());
            msgs.add(map);
        }
        Map<String, Object> ctx = new HashMap<>(extra);
        ctx.put("messages", msgs);
        ctx.put("add_generation_prompt", addGenerationPrompt);
        ctx.put("bos_token", bosToken);
        ctx.put("eos_token", eosToken);
        RenderResult result;
        try {
            result = renderForResult(ctx);
        } catch (RuntimeException e) {
            throw new UserError(name + ": cannot render: " + e.getMessage(), e);
        }
        for (TemplateError err : result.getErrors()) {
            if (err.getSeverity() == TemplateError.ErrorType.FATAL) {
                throw new UserError(name + ": " + describe(err));
            }
        }
        return result.getOutput();
    }

    /** Each thread's copy of jinjava's global context (functions, filters, tags), made once instead of per render. */
    private static final ThreadLocal<Context> GLOBALS = ThreadLocal.withInitial(JINJAVA::getGlobalContextCopy);
    /** Each thread's parse of this template (parsed once per thread, not per render). */
    private final ThreadLocal<Node> parsed = new ThreadLocal<>();

    /**
     * What {@link Jinjava#renderForResult(String, Map)} does, the same errors for the same exceptions, without its
     * two costs per call that made rendering most of data preparation's time: a fresh copy of the global context
     * (registering every filter and function again) and parsing the template again.
     */
    private RenderResult renderForResult(Map<String, Object> bindings) {
        JinjavaConfig config = JINJAVA.getGlobalConfig();
        JinjavaInterpreter interpreter = new JinjavaInterpreter(JINJAVA,
                new Context(GLOBALS.get(), bindings, config.getDisabled()), config);
        JinjavaInterpreter.pushCurrent(interpreter);
        try {
            Node root = parsed.get();
            if (root == null) {
                root = interpreter.parse(translated);
                if (!interpreter.getErrors().isEmpty()) {
                    return new RenderResult(interpreter.render(root, true), interpreter.getContext(), interpreter.getErrorsCopy());
                }
                parsed.set(root);
            }
            return new RenderResult(interpreter.render(root, true), interpreter.getContext(), interpreter.getErrorsCopy());
        } catch (InterpretException e) {
            TemplateError err = e instanceof TemplateSyntaxException t ? TemplateError.fromException(t) : TemplateError.fromSyntaxError(e);
            return new RenderResult(err, interpreter.getContext(), interpreter.getErrorsCopy());
        } catch (InvalidArgumentException e) {
            return new RenderResult(TemplateError.fromInvalidArgumentException(e), interpreter.getContext(), interpreter.getErrorsCopy());
        } catch (InvalidInputException e) {
            return new RenderResult(TemplateError.fromInvalidInputException(e), interpreter.getContext(), interpreter.getErrorsCopy());
        } catch (Exception e) {
            return new RenderResult(TemplateError.fromException(e), interpreter.getContext(), interpreter.getErrorsCopy());
        } finally {
            JinjavaInterpreter.popCurrent();
        }
    }

    private static String describe(TemplateError err) {
        Throwable cause = err.getException();
        while (cause != null) {
            if (cause instanceof TemplateException te) {
                return "raise_exception: " + te.getMessage();
            }
            cause = cause.getCause();
        }
        String msg = err.getMessage();
        if (msg != null && msg.contains(TemplateException.PREFIX)) {
            msg = "raise_exception: " + msg.substring(msg.indexOf(TemplateException.PREFIX) + TemplateException.PREFIX.length());
        }
        return msg + (err.getLineno() > 0 ? " (template line " + err.getLineno() + ")" : "");
    }

    private static Jinjava newJinjava() {
        JinjavaConfig config = JinjavaConfig.newBuilder()
                .withTrimBlocks(true)
                .withLstripBlocks(true)
                .withNestedInterpretationEnabled(false)   // a content is data: jinja2 never renders an expression's output again
                .withLegacyOverrides(LegacyOverrides.newBuilder()
                        .withUseTrimmingForNotesAndExpressions(true)
                        .withUseNaturalOperatorPrecedence(true)
                        .build())
                .withElResolver(PyCompat.resolver())
                .build();
        Jinjava j = new Jinjava(config);
        j.registerFunction(new ELFunctionDefinition("", "raise_exception", ChatTemplate.class, "raiseException",
                Object.class));
        j.registerFunction(new ELFunctionDefinition("", "strftime_now", ChatTemplate.class, "strftimeNow",
                String.class));
        j.registerTag(new GenerationTag());
        return j;
    }

    /** Tests fix what strftime_now returns (as the reference renders did); null = format today's date. */
    static volatile String fixedStrftime;

    /** Thrown by {@code raise_exception(msg)} inside a template. */
    static final class TemplateException extends RuntimeException {
        static final String PREFIX = "chat template raised: ";

        TemplateException(String message) {
            super(message);
        }
    }

    public static Object raiseException(Object message) {
        throw new TemplateException(String.valueOf(message));
    }

    /** Python's strftime for today's date (the directives chat templates use). */
    public static String strftimeNow(String format) {
        if (fixedStrftime != null) {
            return fixedStrftime;
        }
        LocalDate d = LocalDate.now();
        StringBuilder sb = new StringBuilder();
        for (int i = 0; i < format.length(); i++) {
            char c = format.charAt(i);
            if (c != '%' || i + 1 == format.length()) {
                sb.append(c);
                continue;
            }
            char f = format.charAt(++i);
            String p = switch (f) {
                case 'd' -> "dd";
                case 'm' -> "MM";
                case 'Y' -> "yyyy";
                case 'y' -> "yy";
                case 'b' -> "MMM";
                case 'B' -> "MMMM";
                case 'a' -> "EEE";
                case 'A' -> "EEEE";
                case 'j' -> "DDD";
                default -> null;
            };
            if (p != null) {
                sb.append(d.format(DateTimeFormatter.ofPattern(p, Locale.ENGLISH)));
            } else if (f == '%') {
                sb.append('%');
            } else if (f == 'H' || f == 'M' || f == 'S') {
                sb.append("00");
            } else {
                sb.append('%').append(f);
            }
        }
        return sb.toString();
    }

    /** transformers' {@code {% generation %}...{% endgeneration %}}: renders its body unchanged. */
    static final class GenerationTag implements Tag {
        @Override
        public String getName() {
            return "generation";
        }

        @Override
        public String getEndTagName() {
            return "endgeneration";
        }

        @Override
        public String interpret(TagNode tagNode, JinjavaInterpreter interpreter) {
            StringBuilder sb = new StringBuilder();
            for (Node child : tagNode.getChildren()) {
                sb.append(child.render(interpreter).getValue());
            }
            return sb.toString();
        }
    }
}
