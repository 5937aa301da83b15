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
 * Preference tuning data parallel with REAL processes (DataParallelTest's child JVMs: torchrun's variables, Gloo over
 * the loopback): 2 ranks with accumulation 2 train as one process with twice the items per micro-batch, the same
 * global batch (DPO: 1 pair per rank's micro-batch; KTO: 2 examples, its minimum): the same losses, reward metrics (summed over the ranks before they are logged, as
 * TRL gathers them) and evaluation, up to the order of float sums. DPO with the frozen reference copy on every rank;
 * KTO, whose KL estimate is the mean over the KL rows of every rank's micro-batch (TRL's gather over the processes).
 * Both jobs and both single-process runs start together.
 */
class PreferenceDataParallelTest {
    @TempDir
    Path tmp;

    private Path experiment(String name, int batch, Path csv, Path model, String method, double validation) throws Exception {
        return Files.writeString(tmp.resolve(name + ".yaml"), String.join("\n", List.of("model:", "  path: " + model, "data:",
                "  train_file: " + csv, "  format: " + (method.equals("kto") ? "kto" : "preference"), "  validation_split: " + validation,
                "  max_seq_length: 40", "training:", "  output_dir: " + tmp.resolve(name), "  method: " + method, "  max_steps: 3",
                "  per_device_train_batch_size: " + batch, "  gradient_accumulation_steps: 2", "  per_device_eval_batch_size: 4",
                "  learning_rate: 5.0e-3", "  lr_scheduler_type: constant", "  logging_steps: 1", "  eval_steps: 3", "  save_steps: 3",
                "  device: cpu", "  precision: fp32", "  seed: 5", "  ddp_timeout: 60")) + "\n");
    }

    @Test
    void twoRanksTrainAsOneProcessWithTheSameGlobalBatch() throws Exception {
        Path model = tmp.resolve("base");
        TrainerTest.writeTinyLlama(model);
        StringBuilder pairs = new StringBuilder("prompt,chosen,rejected\n");
        for (int i = 0; i < 20; i++) pairs.append("what is ").append(i).append(" plus one?,it is ").append(i + 1).append(".,no idea ").append(i).append('\n');
        // KTO (TRL's minimum batch is 2): rows four by four share their completion, so the KL rows (each prompt with the
        // previous row's completion in chunks of per_device_train_batch_size rows) are the same for chunks of 2 (the
        // ranks) and of 4 (one process); 3 of 4 desirable, so training raises their log-probabilities and the KL
        // estimate (clamped at 0) turns positive
        StringBuilder kto = new StringBuilder("prompt,completion,label\n");
        for (int i = 0; i < 24; i++) kto.append("say something about ").append(i).append(",").append(i / 4 % 2 == 0 ? "a kind word " : "rubbish ")
                .append(i / 4).append(",").append(i % 4 != 3).append('\n');
        Path pairsCsv = Files.writeString(tmp.resolve("pairs.csv"), pairs.toString()), ktoCsv = Files.writeString(tmp.resolve("kto.csv"), kto.toString());

        List<Process> all = new ArrayList<>();
        List<Path> logs = new ArrayList<>();
        for (String method : List.of("dpo", "kto")) {
            Path csv = method.equals("dpo") ? pairsCsv : ktoCsv;
            double validation = method.equals("dpo") ? 0.25 : 0.0;   // KTO: the file's order, so the chunks stay as built
            logs.add(tmp.resolve(method + "-one.log"));
            int perRank = method.equals("dpo") ? 1 : 2;
            all.add(DataParallelTest.rank(experiment(method + "-one", 2 * perRank, csv, model, method, validation), 0, 0, 0, logs.get(logs.size() - 1)));
            Path many = experiment(method + "-many", perRank, csv, model, method, validation);
            int port = DataParallelTest.freePort();
            for (int r = 0; r < 2; r++) {
                logs.add(tmp.resolve(method + "-many.rank" + r + ".log"));
                all.add(DataParallelTest.rank(many, r, 2, port, logs.get(logs.size() - 1)));
            }
        }
        for (int i = 0; i < all.size(); i++) finish(all.get(i), logs.get(i));

        String log0 = Files.readString(tmp.resolve("dpo-many.rank0.log"));
        assertTrue(log0.contains("global batch 4 (1 per device × 2 accumulation × 2 ranks)"), log0);
        assertEquals(Math.log(2), DataParallelTest.metric(tmp.resolve("dpo-many"), "loss").get(1L), 1e-6, "the first DPO loss on 2 ranks");
        compare("dpo", List.of("loss", "rewards/chosen", "rewards/rejected", "rewards/margins", "logps/chosen", "logps/rejected",
                "eval_loss", "eval_rewards/margins", "eval_rewards/accuracies"));
        compare("kto", List.of("loss", "kl", "rewards/chosen", "rewards/rejected", "logps/chosen", "logps/rejected"));
        assertTrue(DataParallelTest.metric(tmp.resolve("kto-one"), "kl").values().stream().anyMatch(k -> k > 0),
                "a positive KL estimate, so its sum over the ranks is exercised");
    }

    private void compare(String method, List<String> keys) throws Exception {
        Path a = tmp.resolve(method + "-one"), b = tmp.resolve(method + "-many");
        StringBuilder report = new StringBuilder();
        for (String k : keys) {
            double worst = DataParallelTest.compare(DataParallelTest.metric(a, k), DataParallelTest.metric(b, k), method + " " + k);
            report.append(String.format(Locale.ROOT, " %s %.1e", k, worst));
        }
        assertEquals(3, DataParallelTest.metric(b, "loss").size());
        System.out.println("PreferenceDataParallelTest " + method + ": largest difference from one process:" + report);
    }

    private static void finish(Process p, Path log) throws Exception {
        if (!p.waitFor(300, TimeUnit.SECONDS)) {
            p.destroyForcibly();
            throw new AssertionError("did not finish: " + Files.readString(log));
        }
        assertEquals(0, p.exitValue(), Files.readString(log));
    }
}
