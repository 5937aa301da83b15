package dev.jtune.cli;

import dev.jtune.data.ChatTemplate;
import dev.jtune.infer.TextGenerator;
import dev.jtune.model.CausalLM;
import dev.jtune.tokenizer.HfTokenizer;
import dev.jtune.tokenizer.StreamingDecoder;
import dev.jtune.util.UserError;
import picocli.CommandLine.Command;
import picocli.CommandLine.Mixin;
import picocli.CommandLine.Option;

import java.util.ArrayList;
import java.util.List;
import java.util.Locale;

@Command(name = "generate", mixinStandardHelpOptions = true,
        description = "Continue a prompt, streaming tokens as they come; greedy unless --temperature > 0. Stops at EOS.")
final class GenerateCommand implements Runnable {
    @Mixin
    ModelOptions model;

    @Option(names = "--prompt", required = true, description = "Text to continue.")
    String prompt;

    @Option(names = "--max-new-tokens", defaultValue = "64", description = "Default: ${DEFAULT-VALUE}.")
    int maxNewTokens;

    @Option(names = "--temperature", defaultValue = "0", description = "0 for greedy decoding. Default: ${DEFAULT-VALUE}.")
    double temperature;

    @Option(names = "--top-p", defaultValue = "1.0", description = "Nucleus sampling mass, in (0, 1]. Default: ${DEFAULT-VALUE}.")
    double topP;

    @Option(names = "--seed", defaultValue = "0", description = "Sampling seed. Default: ${DEFAULT-VALUE}.")
    long seed;

    @Option(names = "--chat", description = "Treat --prompt as a user message: render it with the model's chat template "
            + "(tokenizer_config.json, or jtune's default that fine-tuning wrote there) and print only the answer.")
    boolean chat;

    @Option(names = "--system", description = "A system message before the prompt (with --chat).")
    String system;

    @Override
    public void run() {
        model.validate();
        if (maxNewTokens < 1) throw new UserError("--max-new-tokens: must be at least 1, got " + maxNewTokens);
        if (temperature < 0) throw new UserError("--temperature: must be >= 0, got " + temperature);
        if (!(topP > 0 && topP <= 1)) throw new UserError("--top-p: must be in (0, 1], got " + topP);
        try (HfTokenizer tok = HfTokenizer.load(model.tokenizerDir()); CausalLM m = model.load()) {
            tok.requireFitsModel(m.config().vocabSize(), m.config().where());
            if (system != null && !chat) throw new UserError("--system: only with --chat");
            long[] ids;
            if (chat) {
                List<ChatTemplate.Message> messages = new ArrayList<>();
                if (system != null) messages.add(new ChatTemplate.Message("system", system));
                messages.add(new ChatTemplate.Message("user", prompt));
                // chat templates write BOS themselves, so no special tokens are added (as apply_chat_template does)
                ids = tok.encode(ChatTemplate.forTokenizer(tok).render(messages, true), false).ids();
            } else {
                ids = tok.encode(prompt, true).ids();
            }
            if (ids.length >= m.config().maxPositions()) {
                throw new UserError("--prompt: " + ids.length + " tokens leave no room in the model's context of " + m.config().maxPositions());
            }
            StreamingDecoder decoder = tok.streamingDecoder(ids, true);   // the prompt is context: keeps the first token's leading space
            if (!chat) {
                System.out.print(prompt);
                System.out.flush();
            }
            long start = System.nanoTime();
            long[] out = new TextGenerator(m).generate(ids, new TextGenerator.Settings(maxNewTokens, temperature, topP, seed),
                    tok.eosTokenIds(), id -> {
                        System.out.print(decoder.push(id));
                        System.out.flush();
                    });
            double secs = (System.nanoTime() - start) / 1e9;
            System.out.println(decoder.flush());
            System.err.printf(Locale.ROOT, "[%d tokens in %.2f s, %.1f tokens/s]%n", out.length, secs, out.length / Math.max(secs, 1e-9));
        }
    }
}
