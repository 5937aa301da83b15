package dev.jtune.api;

import dev.jtune.util.UserError;

/**
 * How {@link Model#generate} continues a prompt: the options of {@code jtune generate}. Greedy decoding unless the
 * temperature is above 0; then nucleus sampling with {@code topP} from a seeded generator (the same seed, the same
 * text). Generation stops at an end-of-sequence token or after {@code maxNewTokens}. Immutable; the {@code with}
 * methods return a copy.
 *
 * @param maxNewTokens at most this many new tokens (at least 1)
 * @param temperature  0 for greedy decoding, else the sampling temperature
 * @param topP         the nucleus' probability mass, in (0, 1]
 * @param seed         the sampling seed
 * @param chat         whether the prompt is a user message, rendered with the model's chat template (the answer only
 *                     is returned), rather than text to continue
 * @param system       a system message before the prompt (chat only), or null
 */
public record Generation(int maxNewTokens, double temperature, double topP, long seed, boolean chat, String system) {
    /** Checks the options as {@code jtune generate} checks its flags. */
    public Generation {
        if (maxNewTokens < 1) throw new UserError("maxNewTokens: must be at least 1, got " + maxNewTokens);
        if (!(temperature >= 0)) throw new UserError("temperature: must be >= 0, got " + temperature);
        if (!(topP > 0 && topP <= 1)) throw new UserError("topP: must be in (0, 1], got " + topP);
        if (system != null && !chat) throw new UserError("system: only with chat");
    }

    /** Greedy decoding of at most {@code maxNewTokens} tokens, the prompt continued as text. */
    public static Generation greedy(int maxNewTokens) {
        return new Generation(maxNewTokens, 0, 1.0, 0, false, null);
    }

    /** Sampling at {@code temperature} from the nucleus of mass {@code topP}, seeded with {@code seed}. */
    public static Generation sampling(int maxNewTokens, double temperature, double topP, long seed) {
        return new Generation(maxNewTokens, temperature, topP, seed, false, null);
    }

    /** The same options with the prompt taken as a user message in the model's chat template. */
    public Generation asChat() {
        return new Generation(maxNewTokens, temperature, topP, seed, true, system);
    }

    /** The same options as a chat with {@code system} as the system message. */
    public Generation withSystem(String system) {
        return new Generation(maxNewTokens, temperature, topP, seed, true, system);
    }
}
