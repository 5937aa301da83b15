package dev.jtune.cli;

import dev.jtune.infer.Perplexity;
import dev.jtune.model.CausalLM;
import dev.jtune.tokenizer.HfTokenizer;
import dev.jtune.util.UserError;
import picocli.CommandLine.Command;
import picocli.CommandLine.Mixin;
import picocli.CommandLine.Option;

import java.io.IOException;
import java.nio.charset.CharacterCodingException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.NoSuchFileException;
import java.nio.file.Path;
import java.util.LinkedHashMap;
import java.util.Locale;
import java.util.Map;

@Command(name = "perplexity", mixinStandardHelpOptions = true,
        description = "Mean negative log-likelihood of each token of a text given the tokens before it.")
final class PerplexityCommand implements Runnable {
    @Mixin
    ModelOptions model;

    @Option(names = "--text-file", required = true, paramLabel = "FILE", description = "UTF-8 text to score.")
    Path textFile;

    @Option(names = "--window", description = "Tokens per forward pass (default: the model's context, at most 2048).")
    Integer window;

    @Option(names = "--stride", description = "Tokens a window advances by (default: half the window).")
    Integer stride;

    @Option(names = "--json", description = "Print {\"tokens\": N, \"mean_nll\": x, \"perplexity\": y}.")
    boolean json;

    @Override
    public void run() {
        model.validate();
        String text = readText(textFile);
        try (HfTokenizer tok = HfTokenizer.load(model.tokenizerDir()); CausalLM m = model.load()) {
            tok.requireFitsModel(m.config().vocabSize(), m.config().where());
            long[] ids = tok.encode(text, true).ids();
            int w = window != null ? window : Math.min(m.config().maxPositions(), 2048);
            if (w < 2 || w > m.config().maxPositions()) {
                throw new UserError("--window: " + w + " must be between 2 and the model's context (" + m.config().maxPositions() + ")");
            }
            int s = stride != null ? stride : Math.max(1, w / 2);
            if (s < 1 || s > w) throw new UserError("--stride: " + s + " must be between 1 and the window (" + w + ")");
            boolean showProgress = ids.length > w && !json;
            Perplexity.Result r = Perplexity.of(m, ids, w, s, end -> {
                if (showProgress) System.err.printf(Locale.ROOT, "\rscored %d / %d tokens", end, ids.length);
            });
            if (showProgress) System.err.println();
            if (json) {
                Map<String, Object> out = new LinkedHashMap<>();
                out.put("tokens", r.tokens());
                out.put("mean_nll", r.meanNll());
                out.put("perplexity", r.perplexity());
                JsonOut.print(out);
            } else {
                System.out.printf(Locale.ROOT, "tokens      %d (%d scored)%nmean NLL    %.6f nats%nperplexity  %.4f%n",
                        r.tokens(), r.scored(), r.meanNll(), r.perplexity());
            }
        }
    }

    static String readText(Path file) {
        try {
            byte[] bytes = Files.readAllBytes(file);
            return StandardCharsets.UTF_8.newDecoder().decode(java.nio.ByteBuffer.wrap(bytes)).toString();
        } catch (NoSuchFileException e) {
            throw new UserError(file + ": no such file");
        } catch (CharacterCodingException e) {
            throw new UserError(file + ": not valid UTF-8 text");
        } catch (IOException e) {
            throw new UserError(file + ": cannot read: " + e.getMessage());
        }
    }
}
