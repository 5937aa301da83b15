package dev.jtune.cli;

import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ObjectNode;
import dev.jtune.model.ModelConfig;
import dev.jtune.model.ModelInit;
import dev.jtune.model.ModelWriter;
import dev.jtune.tokenizer.HfTokenizer;
import dev.jtune.util.Tensors;
import org.bytedeco.javacpp.PointerScope;
import org.bytedeco.pytorch.Tensor;
import org.bytedeco.pytorch.global.torch.ScalarType;
import picocli.CommandLine.Command;
import picocli.CommandLine.Option;

import java.nio.file.Path;
import java.util.Locale;
import java.util.Map;

@Command(name = "init-model", mixinStandardHelpOptions = true,
        description = "Write a randomly initialised model as a Hugging Face directory (config.json, safetensors, tokenizer files).")
final class InitModelCommand implements Runnable {
    @Option(names = "--arch", description = "One of: llama, mistral, qwen2, qwen3, gpt2 (required unless --shape).")
    String arch;

    @Option(names = "--preset", defaultValue = "tiny", description = "Size: tiny (2 layers, hidden 64) or small (4 layers, hidden 256). Default: ${DEFAULT-VALUE}.")
    String preset;

    @Option(names = "--shape", paramLabel = "NAME", description = "Instead of --arch/--preset: the real config of a benchmark shape "
            + "(as jtune bench's: gpt2-124m, qwen2.5-0.5b, llama3.2-1b, llama3-8b), with random weights; its vocab_size is kept even when "
            + "the tokenizer has fewer ids (for size and speed measurements).")
    String shape;

    @Option(names = "--tokenizer", required = true, paramLabel = "DIR", description = "Directory with tokenizer.json; its files are copied and its highest id + 1 sizes the embedding.")
    Path tokenizer;

    @Option(names = "--out", required = true, paramLabel = "DIR", description = "Output directory.")
    Path out;

    @Option(names = "--seed", defaultValue = "0", description = "Random seed. Default: ${DEFAULT-VALUE}.")
    long seed;

    @Option(names = "--dtype", defaultValue = "float32", description = "Stored dtype: float32, bfloat16 or float16. Default: ${DEFAULT-VALUE}.")
    String dtype;

    @Override
    public void run() {
        ScalarType st = Tensors.parseDtype(dtype, "--dtype");
        try (HfTokenizer tok = HfTokenizer.load(tokenizer); PointerScope scope = new PointerScope()) {
            Long bos = tok.bosTokenId().isPresent() ? tok.bosTokenId().getAsLong() : null;
            Long eos = tok.eosTokenIds().isEmpty() ? null : tok.eosTokenIds().iterator().next();
            if (shape == null && arch == null) throw new dev.jtune.util.UserError("init-model: give --arch (with --preset) or --shape");
            ObjectNode raw = shape != null ? dev.jtune.bench.Shapes.raw(shape) : ModelInit.presetConfig(arch, preset, Math.toIntExact(tok.idUpperBound()), bos, eos);
            ModelConfig config = ModelConfig.parse(raw, out.resolve("config.json"));
            Map<String, Tensor> params = ModelInit.randomParameters(config, seed, st);
            ObjectNode gen = new ObjectMapper().createObjectNode();
            if (bos != null) gen.put("bos_token_id", bos);
            if (eos != null) gen.put("eos_token_id", eos);
            ModelWriter.save(out, config, params, st, tokenizer, gen);
            long n = 0;
            for (Tensor t : params.values()) n += t.numel();
            System.out.printf(Locale.ROOT, "wrote %s: %s %s, %,d parameters, %s, vocab %d%n",
                    out, config.modelType(), shape != null ? shape : preset, n, Tensors.hfName(st), config.vocabSize());
        }
    }
}
