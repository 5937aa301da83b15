package dev.jtune.train;

import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Locale;
import java.util.concurrent.TimeUnit;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * DPO data parallel with REAL processes (DataParallelTest's child JVMs: torchrun's variables, Gloo over the loopback):
 * 2 ranks of one pair per micro-batch with accumulation 2 train as one process with 2 pairs per micro-batch, the same
 * global batch: the same losses, reward metrics (summed over the ranks before they are logged, as TRL gathers them)
 * and evaluation, up to the order of float sums. The frozen reference copy lives on every rank.
 */
class PreferenceDataParallelTest {
    @TempDir
    Path tmp;

    private Path experiment(String name, int batch, Path csv, Path model) throws Exception {
        return Files.writeString(tmp.resolve(name + ".yaml"), String.join("\n", List.of("model:", "  path: " + model, "data:",
                "  train_file: " + csv, "  format: preference", "  validation_split: 0.25", "  max_seq_length: 40", "training:",
                "  output_dir: " + tmp.resolve(name), "  method: dpo", "  max_steps: 3", "  per_device_train_batch_size: " + batch,
                "  gradient_accumulation_steps: 2", "  per_device_eval_batch_size: 4", "  learning_rate: 5.0e-3",
                "  lr_scheduler_type: constant", "  logging_steps: 1", "  eval_steps: 3", "  save_steps: 3", "  device: cpu",
                "  precision: fp32", "  seed: 5", "  ddp_timeout: 60")) + "\n");
    }

    @Test
    void twoRanksTrainAsOneProcessWithTheSameGlobalBatch() throws Exception {
        Path model = tmp.resolve("base");
        TrainerTest.writeTinyLlama(model);
        StringBuilder sb = new StringBuilder("prompt,chosen,rejected\n");
        for (int i = 0; i < 20; i++) sb.append("what is ").append(i).append(" plus one?,it is ").append(i + 1).append(".,no idea ").append(i).append('\n');
        Path csv = Files.writeString(tmp.resolve("pairs.csv"), sb.toString());

        Path oneLog = tmp.resolve("one.log");
        Process one = DataParallelTest.rank(experiment("one", 2, csv, model), 0, 0, 0, oneLog);
        Path many = experiment("many", 1, csv, model);
        int port = DataParallelTest.freePort();
        List<Process> ranks = new ArrayList<>();
        for (int r = 0; r < 2; r++) ranks.add(DataParallelTest.rank(many, r, 2, port, tmp.resolve("many.rank" + r + ".log")));
        finish(one, oneLog);
        for (int r = 0; r < 2; r++) finish(ranks.get(r), tmp.resolve("many.rank" + r + ".log"));

        String log0 = Files.readString(tmp.resolve("many.rank0.log"));
        assertTrue(log0.contains("global batch 4 (1 per device × 2 accumulation × 2 ranks)"), log0);
        Path a = tmp.resolve("one"), b = tmp.resolve("many");
        assertEquals(Math.log(2), DataParallelTest.metric(b, "loss").get(1L), 1e-6, "the first DPO loss on 2 ranks");
        StringBuilder report = new StringBuilder();
        for (String k : List.of("loss", "rewards/chosen", "rewards/rejected", "rewards/margins", "logps/chosen", "logps/rejected",
                "eval_loss", "eval_rewards/margins", "eval_rewards/accuracies")) {
            double worst = DataParallelTest.compare(DataParallelTest.metric(a, k), DataParallelTest.metric(b, k), k);
            report.append(String.format(Locale.ROOT, " %s %.1e", k, worst));
        }
        assertEquals(3, DataParallelTest.metric(b, "rewards/margins").size());
        System.out.println("PreferenceDataParallelTest: largest difference from one process:" + report);
    }

    private static void finish(Process p, Path log) throws Exception {
        if (!p.waitFor(240, TimeUnit.SECONDS)) {
            p.destroyForcibly();
            throw new AssertionError("did not finish: " + Files.readString(log));
        }
        assertEquals(0, p.exitValue(), Files.readString(log));
    }
}
