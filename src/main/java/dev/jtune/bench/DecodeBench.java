package dev.jtune.bench;

import dev.jtune.infer.BatchGenerator;
import dev.jtune.infer.TextGenerator;
import dev.jtune.kernels.Ops;
import dev.jtune.model.CausalLM;
import dev.jtune.model.ModelConfig;
import dev.jtune.model.ModelInit;
import dev.jtune.model.ModelLoader;
import dev.jtune.util.UserError;
import org.bytedeco.pytorch.Device;
import org.bytedeco.pytorch.global.torch;
import org.bytedeco.pytorch.global.torch.ScalarType;

import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Locale;
import java.util.Random;
import java.util.Set;

/**
 * Greedy decoding speed ({@code jtune bench --generate}): for each batch size B, B prompts of {@code promptTokens}
 * seeded random ids, {@code newTokens} new tokens each, fp32 (on the CPU unless a device is given), no EOS; on CUDA
 * with {@code JTUNE_CUDA_GRAPHS=1} batch 1 replays a captured decode step ({@link dev.jtune.infer.StaticDecodeStep}). Batch 1 runs {@link TextGenerator}
 * (what {@code jtune generate} runs), larger batches {@link BatchGenerator}.
 *
 * <p>Decode time excludes the prompt: each batch is timed generating {@code newTokens} and generating 1 (the prompt's
 * forward and the first token), and the difference is {@code newTokens - 1} decode steps. Tokens/s counts every
 * row's tokens; bytes/s is the weights read per step (every parameter once per step, whatever B) times steps/s,
 * the rate llama.cpp's speed is usually quoted against. The greedy ids of row 0 are reported so that a peer
 * decoding the same weights (bench/decode/, llama.cpp) can be checked to produce the same text.
 */
public final class DecodeBench {
    private DecodeBench() {}

    public record Options(Path model, String shape, List<Integer> batches, int promptTokens, int newTokens, int repeats,
                          long seed, String kernels, String device) {}

    public record Batch(int batch, double decodeSeconds, int steps, double tokensPerSecond, double weightGBPerSecond,
                        List<Double> runsTokensPerSecond, long[] row0) {}

    public record Result(String model, String device, boolean cudaGraphs, long parameters, long weightBytes, int threads,
                         String kernels, int promptTokens, int newTokens, List<Batch> batches, String load) {}

    public static Result run(Options o) {
        if (o.newTokens() < 2) throw new UserError("--new-tokens: at least 2 for a decode rate, got " + o.newTokens());
        if (o.promptTokens() < 1) throw new UserError("--prompt-tokens: at least 1, got " + o.promptTokens());
        if (o.batches().isEmpty() || o.batches().stream().anyMatch(b -> b < 1)) throw new UserError("--batch: positive sizes, got " + o.batches());
        Ops ops = o.kernels() == null || o.kernels().equals("auto") ? Ops.AUTO
                : o.kernels().equals("off") ? Ops.OFF : null;
        if (ops == null) throw new UserError("--kernels: expected auto or off, got '" + o.kernels() + "'");
        Device device = new Device(o.device() == null ? "cpu" : o.device());
        try (CausalLM model = load(o, ops, device);
             // one decoding session over every run: the weights are reordered for batched products once (on CPU fp32),
             // not once per BatchGenerator call (each opens its own, nested in this one)
             dev.jtune.kernels.CpuLinear.Session weights = dev.jtune.kernels.CpuLinear.reorderedWeights(model.parameters().values())) {
            ModelConfig c = model.config();
            if (o.promptTokens() + o.newTokens() > c.maxPositions()) {
                throw new UserError("--prompt-tokens + --new-tokens: " + (o.promptTokens() + o.newTokens()) + " exceed the model's " + c.maxPositions() + " positions");
            }
            long weightBytes = ModelLoader.bytesIn(model.parameterCount(), ScalarType.Float)
                    + (c.tied() ? (long) c.vocabSize() * c.hiddenSize() * 4 : 0);   // a tied head is read twice per step: embedding row + head
            List<Batch> out = new ArrayList<>();
            // warm-up: first-call costs, and the JIT: 32 steps so that the decode path is compiled before the first
            // timing (the JIT's compiler threads share the cores with the decode threads; with a 3-step warm-up the first
            // batch size timed was the one that varied most between runs)
            generate(model, prompts(1, Math.min(4, o.promptTokens()), c.vocabSize(), o.seed()), Math.max(1, Math.min(32, c.maxPositions() - 4)));
            for (int b : o.batches()) {
                List<long[]> ps = prompts(b, o.promptTokens(), c.vocabSize(), o.seed());
                List<Double> rates = new ArrayList<>();
                double best = Double.MAX_VALUE;
                long[] row0 = null;
                generate(model, ps, 2);   // warm-up at this batch size: first-call costs (e.g. reordering weights for several rows) stay out of the timing
                for (int r = 0; r < Math.max(1, o.repeats()); r++) {
                    long t0 = System.nanoTime();
                    generate(model, ps, 1);
                    long t1 = System.nanoTime();
                    List<long[]> g = generate(model, ps, o.newTokens());
                    long t2 = System.nanoTime();
                    double decode = Math.max(1e-9, ((t2 - t1) - (t1 - t0)) / 1e9);
                    rates.add((double) b * (o.newTokens() - 1) / decode);
                    best = Math.min(best, decode);
                    row0 = g.get(0);
                }
                int steps = o.newTokens() - 1;
                out.add(new Batch(b, best, steps, b * steps / best, weightBytes * (steps / best) / 1e9, rates, row0));
                System.err.printf(Locale.ROOT, "jtune batch %d: %.2f tokens/s (load %s)%n", b, b * steps / best, loadAverage());   // progress; partial results survive a killed run
            }
            String id = o.model() != null ? o.model().toString() : "shape " + o.shape();
            boolean graphs = device.is_cuda() && "1".equals(System.getenv("JTUNE_CUDA_GRAPHS"));
            return new Result(id, device.str().getString(), graphs, model.parameterCount(), weightBytes, torch.get_num_threads(), ops.mode().toString().toLowerCase(Locale.ROOT),
                    o.promptTokens(), o.newTokens(), out, loadAverage());
        }
    }

    private static CausalLM load(Options o, Ops ops, Device device) {
        if ((o.model() == null) == (o.shape() == null)) throw new UserError("bench --generate: give --model DIR or --shape NAME (one of them)");
        if (o.model() != null) {
            if (!Files.isDirectory(o.model())) throw new UserError("--model: no directory " + o.model());
            return ModelLoader.load(o.model(), ScalarType.Float, device, ops);
        }
        ModelConfig config = Shapes.config(o.shape(), null);
        return ModelLoader.create(config, ModelInit.randomParameters(config, o.seed(), ScalarType.Float, device), ScalarType.Float, device, null, ops);
    }

    /** Greedy ids of every prompt, no EOS; one prompt goes through TextGenerator, as jtune generate does. */
    static List<long[]> generate(CausalLM model, List<long[]> prompts, int newTokens) {
        if (prompts.size() == 1) {
            return List.of(new TextGenerator(model).generate(prompts.get(0), new TextGenerator.Settings(newTokens, 0, 1, 0), Set.of(), null));
        }
        return new BatchGenerator(model).greedy(prompts, newTokens, Set.of(), 0);
    }

    /** B prompts of n ids in [1, vocab), row i from seed + i (row 0 is the same whatever B). */
    public static List<long[]> prompts(int b, int n, int vocab, long seed) {
        List<long[]> out = new ArrayList<>();
        for (int i = 0; i < b; i++) {
            Random r = new Random(seed + i);
            long[] p = new long[n];
            for (int j = 0; j < n; j++) p[j] = 1 + r.nextInt(vocab - 1);
            out.add(p);
        }
        return out;
    }

    static String loadAverage() {
        try {
            return Files.readString(Path.of("/proc/loadavg")).trim();
        } catch (Exception e) {
            return "unknown";
        }
    }

    public static String table(Result r) {
        StringBuilder sb = new StringBuilder();
        sb.append(String.format(Locale.ROOT, "decode: %s on %s%s, %,d parameters (%.2f GB read per step), %d intra-op threads, kernels %s, prompt %d, new %d, load %s%n",
                r.model(), r.device(), r.cudaGraphs() ? " (CUDA graphs)" : "", r.parameters(), r.weightBytes() / 1e9, r.threads(), r.kernels(), r.promptTokens(), r.newTokens(), r.load()));
        for (Batch b : r.batches()) {
            sb.append(String.format(Locale.ROOT, "  batch %2d: %8.2f tokens/s  %6.1f GB/s weights  (%d steps in %.2f s; runs %s)%n",
                    b.batch(), b.tokensPerSecond(), b.weightGBPerSecond(), b.steps(), b.decodeSeconds(), format(b.runsTokensPerSecond())));
        }
        return sb.toString();
    }

    private static String format(List<Double> xs) {
        List<String> s = new ArrayList<>();
        for (double x : xs) s.add(String.format(Locale.ROOT, "%.2f", x));
        return String.join(", ", s);
    }
}
