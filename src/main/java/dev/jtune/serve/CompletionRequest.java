package dev.jtune.serve;

import com.fasterxml.jackson.databind.JsonNode;
import dev.jtune.data.ChatTemplate;

import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.ThreadLocalRandom;

/**
 * The parameters of {@code POST /v1/chat/completions} or {@code /v1/completions}, checked: every problem is a 400 that
 * names the parameter. Defaults are OpenAI's (temperature 1, top_p 1); {@code max_tokens} (or
 * {@code max_completion_tokens}) defaults to the server's limit and may not exceed it.
 */
record CompletionRequest(boolean chat, String model, List<ChatTemplate.Message> messages, String prompt, int maxTokens,
                         double temperature, double topP, long seed, List<String> stop, boolean stream, boolean includeUsage) {

    static CompletionRequest parse(JsonNode body, boolean chat, int maxTokensLimit) {
        if (body == null || !body.isObject()) throw ApiError.badRequest("The request body must be a JSON object");
        String model = text(body, "model", true);
        List<ChatTemplate.Message> messages = null;
        String prompt = null;
        if (chat) {
            JsonNode ms = body.get("messages");
            if (ms == null || !ms.isArray() || ms.isEmpty()) throw ApiError.badParam("messages", "expected a non-empty array of messages");
            messages = new ArrayList<>();
            for (int i = 0; i < ms.size(); i++) messages.add(message(ms.get(i), "messages[" + i + "]"));
        } else {
            JsonNode p = body.get("prompt");
            if (p != null && p.isArray() && p.size() == 1 && p.get(0).isTextual()) p = p.get(0);
            if (p == null || !p.isTextual()) throw ApiError.badParam("prompt", "expected a string (one prompt per request)");
            prompt = p.asText();
            if (prompt.isEmpty()) throw ApiError.badParam("prompt", "must not be empty");
        }
        String tokensKey = body.hasNonNull("max_completion_tokens") ? "max_completion_tokens" : "max_tokens";
        int maxTokens = maxTokensLimit;
        if (body.hasNonNull(tokensKey)) {
            JsonNode m = body.get(tokensKey);
            if (!m.canConvertToInt() || !m.isIntegralNumber()) throw ApiError.badParam(tokensKey, "expected an integer, got " + m);
            maxTokens = m.asInt();
            if (maxTokens < 1 || maxTokens > maxTokensLimit) {
                throw ApiError.badParam(tokensKey, "must be between 1 and " + maxTokensLimit + " (the server's limit), got " + maxTokens);
            }
        }
        double temperature = number(body, "temperature", 1.0);
        if (!(temperature >= 0 && temperature <= 2)) throw ApiError.badParam("temperature", "must be between 0 and 2, got " + temperature);
        double topP = number(body, "top_p", 1.0);
        if (!(topP > 0 && topP <= 1)) throw ApiError.badParam("top_p", "must be in (0, 1], got " + topP);
        long seed = ThreadLocalRandom.current().nextLong();
        if (body.hasNonNull("seed")) {
            if (!body.get("seed").isIntegralNumber() || !body.get("seed").canConvertToLong()) throw ApiError.badParam("seed", "expected an integer, got " + body.get("seed"));
            seed = body.get("seed").asLong();
        }
        if (body.hasNonNull("n") && !(body.get("n").isIntegralNumber() && body.get("n").asInt() == 1)) {
            throw ApiError.badParam("n", "only n = 1 is supported, got " + body.get("n"));
        }
        for (String unsupported : new String[] {"tools", "functions", "logit_bias"}) {
            if (body.hasNonNull(unsupported) && !(body.get(unsupported).isContainerNode() && body.get(unsupported).isEmpty())) {
                throw ApiError.badParam(unsupported, "is not supported by jtune serve");
            }
        }
        if (body.path("logprobs").asBoolean(false) || (body.hasNonNull("logprobs") && body.get("logprobs").isIntegralNumber() && body.get("logprobs").asInt() > 0)) {
            throw ApiError.badParam("logprobs", "is not supported by jtune serve");
        }
        List<String> stop = new ArrayList<>();
        JsonNode s = body.get("stop");
        if (s != null && !s.isNull()) {
            if (s.isTextual()) stop.add(s.asText());
            else if (s.isArray() && s.size() <= 4) s.forEach(x -> stop.add(x.isTextual() ? x.asText() : null));
            else throw ApiError.badParam("stop", "expected a string or an array of up to 4 strings");
            if (stop.contains(null) || stop.contains("")) throw ApiError.badParam("stop", "expected non-empty strings");
        }
        boolean stream = bool(body, "stream");
        boolean includeUsage = body.path("stream_options").path("include_usage").asBoolean(false);
        return new CompletionRequest(chat, model, messages, prompt, maxTokens, temperature, topP, seed, stop, stream, includeUsage);
    }

    private static ChatTemplate.Message message(JsonNode m, String where) {
        if (m == null || !m.isObject()) throw ApiError.badParam(where, "expected an object with role and content");
        JsonNode role = m.get("role");
        if (role == null || !role.isTextual() || !List.of("system", "developer", "user", "assistant").contains(role.asText())) {
            throw ApiError.badParam(where + ".role", "expected system, developer, user or assistant, got " + role);
        }
        JsonNode c = m.get("content");
        String content;
        if (c != null && c.isTextual()) {
            content = c.asText();
        } else if (c != null && c.isArray()) {   // content parts: text only
            StringBuilder sb = new StringBuilder();
            for (JsonNode part : c) {
                if (!part.path("type").asText().equals("text") || !part.path("text").isTextual()) {
                    throw ApiError.badParam(where + ".content", "only text content parts are supported");
                }
                sb.append(part.get("text").asText());
            }
            content = sb.toString();
        } else {
            throw ApiError.badParam(where + ".content", "expected a string or an array of text parts");
        }
        String r = role.asText().equals("developer") ? "system" : role.asText();
        try {
            return new ChatTemplate.Message(r, content);
        } catch (IllegalArgumentException e) {
            throw ApiError.badParam(where, e.getMessage());
        }
    }

    private static String text(JsonNode body, String key, boolean required) {
        JsonNode n = body.get(key);
        if (n == null || n.isNull()) {
            if (required) throw ApiError.badParam(key, "is required");
            return null;
        }
        if (!n.isTextual()) throw ApiError.badParam(key, "expected a string, got " + n);
        return n.asText();
    }

    private static double number(JsonNode body, String key, double dflt) {
        JsonNode n = body.get(key);
        if (n == null || n.isNull()) return dflt;
        if (!n.isNumber()) throw ApiError.badParam(key, "expected a number, got " + n);
        return n.asDouble();
    }

    private static boolean bool(JsonNode body, String key) {
        JsonNode n = body.get(key);
        if (n == null || n.isNull()) return false;
        if (!n.isBoolean()) throw ApiError.badParam(key, "expected true or false, got " + n);
        return n.asBoolean();
    }
}
