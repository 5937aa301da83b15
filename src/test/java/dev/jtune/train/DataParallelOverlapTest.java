package dev.jtune.train;

import dev.jtune.model.ModelConfig;
import dev.jtune.model.ModelInit;
import dev.jtune.model.ModelWriter;
import dev.jtune.tokenizer.HfTokenizer;
import org.bytedeco.pytorch.global.torch.ScalarType;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.concurrent.TimeUnit;
import java.util.regex.Matcher;
import java.util.regex.Pattern;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * The gradient all-reduce overlapped with the backward, with REAL processes (Gloo over 127.0.0.1, as DataParallelTest):
 * a 4-block Llama, full fine-tuning, 2 ranks, accumulation 2, with and without activation checkpointing. Each rank
 * reports (JTUNE_DDP_TRACE=1) how many gradient buckets started before the backward of the step's last micro-batch
 * returned: all but the embedding's, at every step (the code before this change started none). The losses, evaluation
 * losses and final weights still equal one process's with the same global batch, and rank 1's weights equal rank 0's.
 */
class DataParallelOverlapTest {
    private static final Pattern TRACE = Pattern.compile("ddp trace: rank (\\d+) gradient sync (\\d+): (\\d+) of (\\d+) gradient buckets started during the backward");

    @TempDir
    static Path tmp;
    static Path model, csv;

    @BeforeAll
    static void setUp() throws IOException {
        model = tmp.resolve("base");
        try (HfTokenizer tok = HfTokenizer.load(TrainerTest.TOKENIZER)) {
            var json = ModelInit.presetConfig("llama", "tiny", tok.vocabSize(), null, null);
            json.put("num_hidden_layers", 4);   // several blocks: several buckets to start one after the other
            ModelConfig c = ModelConfig.parse(json, model.resolve("config.json"));
            ModelWriter.save(model, c, ModelInit.randomParameters(c, 5, ScalarType.Float), ScalarType.Float, TrainerTest.TOKENIZER, null);
        }
        StringBuilder sb = new StringBuilder("question,answer\n");
        for (int i = 0; i < 60; i++) sb.append("what is item ").append(i).append("?,item ").append(i).append(" is a number.\n");
        csv = Files.writeString(tmp.resolve("qa.csv"), sb.toString());
    }

    /** 3 steps of packed rows of 48 tokens, accumulation 2, an evaluation at step 2 and at the end. */
    static Path experiment(String name, int batch, boolean checkpointing) throws IOException {
        Path yaml = tmp.resolve(name + ".yaml");
        Files.writeString(yaml, String.join("\n", "model:", "  path: " + model, "data:", "  train_file: " + csv,
                "  format: instruction", "  prompt_column: question", "  response_column: answer", "  validation_split: 0.2",
                "  max_seq_length: 48", "  packing: true", "training:", "  output_dir: " + tmp.resolve(name), "  max_steps: 3",
                "  per_device_train_batch_size: " + batch, "  gradient_accumulation_steps: 2", "  per_device_eval_batch_size: 2",
                "  learning_rate: 3.0e-3", "  warmup_steps: 1", "  logging_steps: 1", "  eval_steps: 2", "  save_steps: 100",
                "  device: cpu", "  precision: fp32", "  seed: 11", "  ddp_timeout: 60",
                "  gradient_checkpointing: " + checkpointing,
                // the checkpointed runs with small buckets (training.ddp_bucket_cap_mb 0.25: about one block each)
                checkpointing ? "  ddp_bucket_cap_mb: 0.25" : "") + "\n");
        return yaml;
    }

    /** `jtune train` as rank {@code rank} of {@code world} (world 0: a plain process), with {@code env} added. */
    static Process rank(Path yaml, int rank, int world, int port, Map<String, String> env) throws IOException {
        List<String> cmd = List.of(Path.of(System.getProperty("java.home"), "bin", "java").toString(), "-cp",
                System.getProperty("java.class.path"), "dev.jtune.cli.Main", "train", yaml.toString());
        ProcessBuilder pb = new ProcessBuilder(cmd).redirectErrorStream(true).redirectOutput(log(yaml, rank).toFile());
        Map<String, String> e = pb.environment();
        e.put("JTUNE_NUM_THREADS", "1");
        for (String k : List.of("RANK", "LOCAL_RANK", "WORLD_SIZE", "LOCAL_WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT",
                "SLURM_PROCID", "SLURM_NTASKS", "TORCHELASTIC_USE_AGENT_STORE", "TORCHELASTIC_RESTART_COUNT",
                "JTUNE_DDP_TRACE", "JTUNE_DDP_BUCKET_CAP_MB")) {
            e.remove(k);
        }
        if (world > 0) {
            e.putAll(Map.of("RANK", "" + rank, "LOCAL_RANK", "" + rank, "WORLD_SIZE", "" + world, "LOCAL_WORLD_SIZE", "" + world,
                    "MASTER_ADDR", "127.0.0.1", "MASTER_PORT", "" + port));
        }
        e.putAll(env);
        return pb.start();
    }

    static Path log(Path yaml, int rank) {
        return yaml.resolveSibling(yaml.getFileName().toString().replace(".yaml", "") + ".rank" + rank + ".log");
    }

    static void await(Process p, Path yaml, int rank) throws Exception {
        assertTrue(p.waitFor(400, TimeUnit.SECONDS), yaml + ": rank " + rank + " did not finish");
        assertEquals(0, p.exitValue(), "rank " + rank + ":\n" + Files.readString(log(yaml, rank)));
    }

    @Test
    void bucketsStartDuringTheBackwardAndTheRanksStillTrainAsOneProcess() throws Exception {
        Path one = experiment("one", 4, false);
        Path ckpt = experiment("ckpt", 2, true), plain = experiment("plain", 2, false);
        // the checkpointed run with small buckets (its experiment's ddp_bucket_cap_mb), the other with the default sizes
        Map<String, String> small = Map.of("JTUNE_DDP_TRACE", "1");
        Map<String, String> defaults = Map.of("JTUNE_DDP_TRACE", "1");
        int portA = DataParallelTest.freePort(), portB = DataParallelTest.freePort();
        List<Process> ps = List.of(rank(one, 0, 0, 0, Map.of()), rank(ckpt, 0, 2, portA, small), rank(ckpt, 1, 2, portA, small),
                rank(plain, 0, 2, portB, defaults), rank(plain, 1, 2, portB, defaults));
        await(ps.get(0), one, 0);
        for (int r = 0; r < 2; r++) {
            await(ps.get(1 + r), ckpt, r);
            await(ps.get(3 + r), plain, r);
        }

        for (Path run : List.of(ckpt, plain)) {
            String name = run.getFileName().toString().replace(".yaml", "");
            for (int r = 0; r < 2; r++) {
                String log = Files.readString(log(run, r));
                Matcher m = TRACE.matcher(log);
                int syncs = 0;
                while (m.find()) {
                    syncs++;
                    int early = Integer.parseInt(m.group(3)), buckets = Integer.parseInt(m.group(4));
                    // every bucket but the embedding's (complete only when the backward returns) starts during it
                    assertTrue(buckets >= 2 && early == buckets - 1, name + " rank " + r + ": " + m.group());
                    // 0.25 MiB buckets split the blocks (the default 25 MiB makes 2 buckets of this model)
                    if (run == ckpt) assertTrue(buckets > 2, name + " rank " + r + ": ddp_bucket_cap_mb 0.25 not applied: " + m.group());
                }
                assertEquals(3, syncs, name + " rank " + r + ": one gradient sync per step:\n" + log);
                if (r == 0) System.out.println(name + ": " + log.lines().filter(l -> l.startsWith("ddp trace")).findFirst().orElseThrow());
                else assertTrue(log.contains("rank 1: trained weights identical to rank 0's"), log);
            }
            Path want = tmp.resolve("one"), got = tmp.resolve(name);
            double loss = DataParallelTest.compare(DataParallelTest.metric(want, "loss"), DataParallelTest.metric(got, "loss"), name + " train loss");
            double eval = DataParallelTest.compare(DataParallelTest.metric(want, "eval_loss"), DataParallelTest.metric(got, "eval_loss"), name + " eval loss");
            assertEquals(3, DataParallelTest.metric(got, "loss").size());
            Map<String, float[]> w = DataParallelTest.weights(want.resolve("final").resolve("model.safetensors"));
            Map<String, float[]> g = DataParallelTest.weights(got.resolve("final").resolve("model.safetensors"));
            assertEquals(w.keySet(), g.keySet());
            double worst = 0;
            for (String k : w.keySet()) {
                float[] a = w.get(k), b = g.get(k);
                for (int i = 0; i < a.length; i++) {
                    double d = Math.abs(b[i] - a[i]);
                    assertTrue(d <= DataParallelTest.ATOL + DataParallelTest.RTOL * Math.abs(a[i]), name + " " + k + "[" + i + "]: " + b[i] + " vs " + a[i]);
                    worst = Math.max(worst, d);
                }
            }
            System.out.printf(Locale.ROOT, "2 ranks (%s) vs one process: max |Δ| train loss %.3g, eval loss %.3g, final weights %.3g%n",
                    name, loss, eval, worst);
        }
    }
}
